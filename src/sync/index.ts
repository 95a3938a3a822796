/// <reference types="@webgpu/types" preserve="true" />
/**
 * `webgpu-batchnorm/sync`: SyncBatchNorm, batch norm over a batch split across devices, threads or
 * machines, and the order-independent merges of what its shards exchange.
 * @packageDocumentation
 */
export { SyncBatchNorm, type GatheredRecords, type SyncEncodeForwardOptions, type SyncForwardOptions } from './sync-batch-norm.js';
export {
  mergeMoments,
  mergeGradSums,
  momentsToArray,
  momentsFromArray,
  gradSumsToArray,
  gradSumsFromArray,
  decodeMomentsRecords,
  mergeMomentsRecords,
  mergeGradRecords,
  MOMENTS_RECORD_BYTES,
  GRAD_RECORD_BYTES,
  type ChannelMoments,
  type GradSums,
} from './sync-merge.js';
