import type { Geometry } from './geometry.js';

// The CPU backend and the second oracle of the test suite: plain typed-array loops, float64
// accumulation, two passes (mean, then the sum of squared deviations), so the statistics are exact
// to float64 rounding on any data the float32 inputs can hold.

/** Per-channel batch statistics in float64. */
export interface CpuBatchStats {
  readonly mean: Float64Array;
  /** Biased (population) variance: Σ(x − mean)² / (N·S). */
  readonly biasedVar: Float64Array;
  readonly count: number;
}

/** Per-channel mean and biased variance of `x` (in `g`'s memory order). */
export function cpuBatchStats(x: Float32Array, g: Geometry): CpuBatchStats {
  const { n, c: channels, s } = g;
  const sum = new Float64Array(channels);
  const sq = new Float64Array(channels);
  if (g.order === 'cf') {
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        const base = (i * channels + c) * s;
        let acc = 0;
        for (let k = 0; k < s; k++) acc += x[base + k] as number;
        sum[c] = (sum[c] as number) + acc;
      }
    }
  } else {
    const rows = n * s;
    for (let r = 0; r < rows; r++) {
      const base = r * channels;
      for (let c = 0; c < channels; c++) sum[c] = (sum[c] as number) + (x[base + c] as number);
    }
  }
  const count = n * s;
  const mean = sum.map((v) => v / count);
  if (g.order === 'cf') {
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        const base = (i * channels + c) * s;
        const m = mean[c] as number;
        let acc = 0;
        for (let k = 0; k < s; k++) {
          const d = (x[base + k] as number) - m;
          acc += d * d;
        }
        sq[c] = (sq[c] as number) + acc;
      }
    }
  } else {
    const rows = n * s;
    for (let r = 0; r < rows; r++) {
      const base = r * channels;
      for (let c = 0; c < channels; c++) {
        const d = (x[base + c] as number) - (mean[c] as number);
        sq[c] = (sq[c] as number) + d * d;
      }
    }
  }
  return { mean, biasedVar: sq.map((v) => v / count), count };
}

/** y = (x − mean) · invstd · weight + bias, computed in float64 and rounded once to float32. */
export function cpuNormalize(
  x: Float32Array,
  y: Float32Array,
  g: Geometry,
  mean: Float64Array,
  invstd: Float64Array,
  weight: Float32Array | null,
  bias: Float32Array | null,
): void {
  const { n, c: channels, s } = g;
  const scale = new Float64Array(channels);
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = (invstd[c] as number) * (weight ? (weight[c] as number) : 1);
    shift[c] = bias ? (bias[c] as number) : 0;
  }
  if (g.order === 'cf') {
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        const base = (i * channels + c) * s;
        const m = mean[c] as number;
        const a = scale[c] as number;
        const b = shift[c] as number;
        for (let k = 0; k < s; k++) y[base + k] = ((x[base + k] as number) - m) * a + b;
      }
    }
  } else {
    const rows = n * s;
    for (let r = 0; r < rows; r++) {
      const base = r * channels;
      for (let c = 0; c < channels; c++) {
        y[base + c] = ((x[base + c] as number) - (mean[c] as number)) * (scale[c] as number) + (shift[c] as number);
      }
    }
  }
}

/** 1 / sqrt(var + eps) per channel, in float64. */
export function invstdOf(variance: ArrayLike<number>, eps: number): Float64Array {
  const out = new Float64Array(variance.length);
  for (let c = 0; c < variance.length; c++) out[c] = 1 / Math.sqrt((variance[c] as number) + eps);
  return out;
}

/**
 * running ← (1 − factor) · running + factor · batch, with the unbiased variance for running_var,
 * in place on the float32 running buffers.
 */
export function cpuUpdateRunning(
  runningMean: Float32Array,
  runningVar: Float32Array,
  stats: CpuBatchStats,
  factor: number,
): void {
  const unbias = stats.count / (stats.count - 1);
  for (let c = 0; c < runningMean.length; c++) {
    runningMean[c] = (1 - factor) * (runningMean[c] as number) + factor * (stats.mean[c] as number);
    runningVar[c] = (1 - factor) * (runningVar[c] as number) + factor * (stats.biasedVar[c] as number) * unbias;
  }
}
