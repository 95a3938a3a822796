import backwardElementwise from '../../shaders/backward-elementwise.wgsl?raw';
import backwardReduce from '../../shaders/backward-reduce.wgsl?raw';
import finalize from '../../shaders/finalize.wgsl?raw';
import fold from '../../shaders/fold.wgsl?raw';
import normalize from '../../shaders/normalize.wgsl?raw';
import stats from '../../shaders/stats.wgsl?raw';

/**
 * Every WGSL module of the library, by id. The `.wgsl` files are the single source: Vite inlines
 * them into the build, and vitest reads them through the same `?raw` import.
 */
export const shaderSources = {
  stats,
  finalize,
  normalize,
  'backward-reduce': backwardReduce,
  'backward-elementwise': backwardElementwise,
  fold,
} as const satisfies Record<string, string>;

export type ShaderId = keyof typeof shaderSources;
