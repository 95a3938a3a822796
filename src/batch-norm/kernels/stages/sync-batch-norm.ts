import { syncBatchNorm } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/**
 * shaders/sync-batch-norm.wgsl: SyncBatchNorm's per-channel stages. Entries `sync_moments` (a
 * shard's moments records), `sync_forward_constants` (channelStats from the merged records, the
 * running update) and `sync_backward_constants` (grad_input constants from the merged sums).
 */
export const SYNC_BATCH_NORM = /* @__PURE__ */ defineStage(syncBatchNorm);
