import backwardElementwise from '../../shaders/backward-elementwise.wgsl?raw';
import backwardReduce from '../../shaders/backward-reduce.wgsl?raw';
import epilogue from '../../shaders/common/epilogue.wgsl?raw';
import finalize from '../../shaders/finalize.wgsl?raw';
import normalize from '../../shaders/normalize.wgsl?raw';
import stats from '../../shaders/stats.wgsl?raw';

/**
 * Every WGSL module of the library, by id. The `.wgsl` files are the single source: Vite inlines
 * them into the build, and vitest reads them through the same `?raw` import. The shaders that
 * write or differentiate BN's output get the fused-epilogue helpers of `shaders/common/` prepended.
 */
export const shaderSources = {
  stats,
  finalize,
  normalize: `${epilogue}\n${normalize}`,
  'backward-reduce': `${epilogue}\n${backwardReduce}`,
  'backward-elementwise': `${epilogue}\n${backwardElementwise}`,
} as const satisfies Record<string, string>;

export type ShaderId = keyof typeof shaderSources;
