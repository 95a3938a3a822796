import { syncMerge } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/**
 * shaders/sync-merge.wgsl: SyncBatchNorm's GPU merge of S all-gathered shard records per channel
 * (moments in emulated binary64, gradient sums), the kernels behind `encodeForward` /
 * `encodeBackward`, bit-identical to their CPU twins in src/sync/sync-merge.ts.
 */
export const SYNC_MERGE = /* @__PURE__ */ defineStage(syncMerge);
