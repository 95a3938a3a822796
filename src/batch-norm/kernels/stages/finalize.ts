import { finalize } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/**
 * shaders/finalize.wgsl, the forward's second stage: Chan merge of a channel's partials into the
 * channelStats constants and the running-statistics update. Entries `finalize_train` (one
 * workgroup per channel) and `finalize_general` (channels queued as not finite or not ordinary in
 * scale, dispatched indirectly).
 */
export const FINALIZE = /* @__PURE__ */ defineStage(finalize);
