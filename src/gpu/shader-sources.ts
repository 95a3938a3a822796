import backwardElementwise from '../../shaders/backward-elementwise.wgsl?raw';
import backwardReduce from '../../shaders/backward-reduce.wgsl?raw';
import nonFinite from '../../shaders/common/non-finite.wgsl?raw';
import finalize from '../../shaders/finalize.wgsl?raw';
import normalize from '../../shaders/normalize.wgsl?raw';
import stats from '../../shaders/stats.wgsl?raw';

/**
 * A stage's file followed by the helper files it uses (`shaders/common/`). WGSL resolves
 * module-scope names in any order, so appending keeps Dawn's line numbers equal to the stage file's.
 */
function withHelpers(stage: string, ...helpers: string[]): string {
  return [stage, ...helpers].join('\n');
}

/**
 * Every WGSL module of the library, by id. The `.wgsl` files are the single source: Vite inlines
 * them into the build, and vitest reads them through the same `?raw` import.
 */
export const shaderSources = {
  stats: withHelpers(stats, nonFinite),
  finalize: withHelpers(finalize, nonFinite),
  normalize: withHelpers(normalize, nonFinite),
  'backward-reduce': withHelpers(backwardReduce, nonFinite),
  'backward-elementwise': backwardElementwise,
} as const satisfies Record<string, string>;

export type ShaderId = keyof typeof shaderSources;
