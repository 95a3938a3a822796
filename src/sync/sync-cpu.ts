import { cpuBatchStats } from '../batch-norm/cpu/cpu.js';
import { cpuBackwardSums, cpuGradInputElementwise, type NumberArray } from '../batch-norm/cpu/cpu-backward.js';
import type { Geometry } from '../batch-norm/geometry.js';
import type { ChannelMoments, GradSums } from './sync-merge.js';

// SyncBatchNorm on the CPU backend: the shard's partials from the library's float64 loops, and
// grad_input from merged sums. Generic over the element arrays like cpu-backward.ts.

/** The shard's moments, in float64: count = N × spatial, M2 = biased variance × count. */
export function cpuMoments(x: Float32Array, g: Geometry): ChannelMoments {
  const stats = cpuBatchStats(x, g);
  const count = new Float64Array(g.c).fill(stats.count);
  const m2 = new Float64Array(g.c);
  for (let c = 0; c < g.c; c++) m2[c] = (stats.biasedVar[c] as number) * stats.count;
  return { count, mean: stats.mean, m2 };
}

/** The shard's Σdy and Σdy·x̂ with the merged mean and invstd, in float64. */
export function cpuGradSums(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  mean: ArrayLike<number>,
  invstd: ArrayLike<number>,
  g: Geometry,
): GradSums {
  const { sumDy, sumDyXmu } = cpuBackwardSums(x, dy, mean, g);
  for (let c = 0; c < g.c; c++) sumDyXmu[c] = (sumDyXmu[c] as number) * (invstd[c] as number);
  return { sumDy, sumDyXhat: sumDyXmu };
}

/**
 * The shard's grad_input from the whole batch's sums, as torch's batch_norm_backward_elemt with
 * the global count M: dx = (dy − Σdy/M − x̂·Σdy·x̂/M) · invstd · weight, x̂ = (x − mean)·invstd,
 * with the products taken in float64 and one rounding per element.
 */
export function cpuSyncGradInput(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  g: Geometry,
  mean: ArrayLike<number>,
  invstd: ArrayLike<number>,
  weight: ArrayLike<number> | null,
  merged: GradSums,
  count: number,
  dx: NumberArray,
): void {
  const channels = g.c;
  // dx = dy·a − (x − mean)·b − d per channel.
  const a = new Float64Array(channels);
  const b = new Float64Array(channels);
  const d = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    const inv = invstd[c] as number;
    a[c] = inv * (weight ? (weight[c] as number) : 1);
    b[c] = ((merged.sumDyXhat[c] as number) / count) * inv * (a[c] as number);
    d[c] = ((merged.sumDy[c] as number) / count) * (a[c] as number);
  }
  cpuGradInputElementwise(x, dy, mean, g, { a, b, d }, dx);
}
