/**
 * The library's shader modules, one export each, so that each stage imports only what it
 * dispatches and a bundler leaves out the rest (an app that never folds ships no fold.wgsl).
 * Composed and reflected at build time from the files `shader-manifest.ts` lists.
 */
export {
  backwardElementwise as BACKWARD_ELEMENTWISE_SHADER,
  backwardReduce as BACKWARD_REDUCE_SHADER,
  finalize as FINALIZE_SHADER,
  fold as FOLD_SHADER,
  normalize as NORMALIZE_SHADER,
  stats as STATS_SHADER,
  syncBatchNorm as SYNC_BATCH_NORM_SHADER,
  syncMerge as SYNC_MERGE_SHADER,
} from 'virtual:bn-shaders';
export type { ShaderSpec } from './reflect.js';
