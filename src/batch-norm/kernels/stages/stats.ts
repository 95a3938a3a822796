import { stats } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/**
 * shaders/stats.wgsl, the forward's first stage: per-channel shifted Welford partials
 * vec4f(bitcast count, mean − K, M2, K) in one read of x. Entries `stats_{cf,cl}{1,4}` (access
 * order × vector width); overrides `BLOCK` (STATS_BLOCK) and `CONTIGUOUS` (fallback adapters).
 */
export const STATS = /* @__PURE__ */ defineStage(stats);
