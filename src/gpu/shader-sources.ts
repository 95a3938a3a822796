import backwardElementwise from '../../shaders/backward-elementwise.wgsl?raw';
import backwardReduce from '../../shaders/backward-reduce.wgsl?raw';
import channelStatsRead from '../../shaders/common/channel-stats-read.wgsl?raw';
import channelStatsWrite from '../../shaders/common/channel-stats-write.wgsl?raw';
import epilogue from '../../shaders/common/epilogue.wgsl?raw';
import nonFinite from '../../shaders/common/non-finite.wgsl?raw';
import laneColumns from '../../shaders/common/lane-columns.wgsl?raw';
import prelude from '../../shaders/common/prelude.wgsl?raw';
import finalize from '../../shaders/finalize.wgsl?raw';
import fold from '../../shaders/fold.wgsl?raw';
import normalize from '../../shaders/normalize.wgsl?raw';
import stats from '../../shaders/stats.wgsl?raw';
import syncBatchNorm from '../../shaders/sync-batch-norm.wgsl?raw';

/**
 * One shader module: the stage's own file, then the prelude (contracts shared with TS:
 * `common/prelude.wgsl`), then the helper files the stage uses. WGSL resolves module-scope names in
 * any order, so appending after the stage keeps the line numbers of Dawn's messages equal to the
 * stage file's; each file is whole declarations, never text spliced into code.
 */
function compose(stage: string, ...helpers: string[]): string {
  return [stage, prelude, ...helpers].join('\n');
}

/**
 * Every WGSL module of the library, by id. The `.wgsl` files are the single source: Vite inlines
 * them into the build, and vitest reads them through the same `?raw` import. The shaders that
 * write or differentiate BN's output also get the fused-epilogue helpers (`common/epilogue.wgsl`).
 */
export const shaderSources = {
  stats: compose(stats, laneColumns, nonFinite),
  finalize: compose(finalize, channelStatsWrite, nonFinite),
  normalize: compose(normalize, channelStatsRead, channelStatsWrite, nonFinite, epilogue),
  'backward-reduce': compose(backwardReduce, laneColumns, channelStatsRead, channelStatsWrite, nonFinite, epilogue),
  'backward-elementwise': compose(backwardElementwise, channelStatsRead, epilogue),
  fold: compose(fold),
  'sync-batch-norm': compose(syncBatchNorm, channelStatsRead, channelStatsWrite),
} as const satisfies Record<string, string>;

export type ShaderId = keyof typeof shaderSources;

/** The shared WGSL prelude alone, for the check that it agrees with `contracts.ts`. */
export const wgslPrelude: string = prelude;
