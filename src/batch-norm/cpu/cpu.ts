import { cpuActivate } from './cpu-epilogue.js';
import type { ResolvedActivation } from '../epilogue.js';
import type { Geometry } from '../geometry.js';
import type { NumberArray } from './cpu-backward.js';

// The CPU backend and the second oracle of the test suite: plain typed-array loops with float64
// accumulation. Statistics take one pass of shifted sums: Σ(x − K) and Σ(x − K)² around K = the
// channel's first value, in float64. With 53-bit sums the shift leaves cancellation of
// (1 + ((mean − K)/σ)²)·2⁻⁵³ — below float32 resolution unless the first value lies more than
// ~10⁴ standard deviations from the mean — so one pass is as exact here as two, and as fast as
// the plain Σx, Σx² loop a user would write.

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
  const shift = new Float64Array(channels);
  const sum = new Float64Array(channels);
  const sq = new Float64Array(channels);
  if (g.order === 'cf') {
    for (let c = 0; c < channels; c++) shift[c] = x[c * s] as number;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        const base = (i * channels + c) * s;
        const k = shift[c] as number;
        let a = 0;
        let b = 0;
        for (let j = 0; j < s; j++) {
          const v = (x[base + j] as number) - k;
          a += v;
          b += v * v;
        }
        sum[c] = (sum[c] as number) + a;
        sq[c] = (sq[c] as number) + b;
      }
    }
  } else {
    for (let c = 0; c < channels; c++) shift[c] = x[c] as number;
    const rows = n * s;
    for (let r = 0; r < rows; r++) {
      const base = r * channels;
      for (let c = 0; c < channels; c++) {
        const v = (x[base + c] as number) - (shift[c] as number);
        sum[c] = (sum[c] as number) + v;
        sq[c] = (sq[c] as number) + v * v;
      }
    }
  }
  const count = n * s;
  const mean = new Float64Array(channels);
  const biasedVar = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    const d = (sum[c] as number) / count;
    mean[c] = (shift[c] as number) + d;
    biasedVar[c] = Math.max((sq[c] as number) / count - d * d, 0);
    // Float32 data cannot overflow float64 sums, so a non-finite result means a NaN or an Inf in
    // the channel. The shifted sums turn an Inf into NaN (Inf − Inf); torch's mean is the plain
    // IEEE one (±Inf unless the channel also holds a NaN or both signs), its variance NaN.
    if (!Number.isFinite(mean[c] as number) || !Number.isFinite(biasedVar[c] as number)) {
      mean[c] = channelSum(x, g, c) / count;
      biasedVar[c] = Number.NaN;
    }
  }
  return { mean, biasedVar, count };
}

/** Σx over channel `c` in plain float64 IEEE arithmetic (Inf + finite = Inf, Inf − Inf = NaN). */
function channelSum(x: Float32Array, g: Geometry, c: number): number {
  let sum = 0;
  if (g.order === 'cf') {
    for (let i = 0; i < g.n; i++) {
      const base = (i * g.c + c) * g.s;
      for (let j = 0; j < g.s; j++) sum += x[base + j] as number;
    }
  } else {
    for (let r = 0; r < g.n * g.s; r++) sum += x[r * g.c + c] as number;
  }
  return sum;
}

/** The fused epilogue on the CPU: y = act(t + residual) with t the normalized value. */
export interface CpuEpilogue {
  readonly activation: ResolvedActivation;
  /** Same memory order as x; null for no residual. */
  readonly residual: ArrayLike<number> | null;
  /** PReLU: the slope tensor's values, [C] or [1] (one for every channel); null otherwise. */
  readonly preluSlope: ArrayLike<number> | null;
}

/** Per-channel y = x·scale + shift of a forward (float64), kept so backward can recompute t. */
export interface CpuAffine {
  readonly scale: Float64Array;
  readonly shift: Float64Array;
}

/**
 * y = (x − mean) · invstd · weight + bias, then the optional epilogue, computed in float64 and
 * rounded once to y's type: float32, or float64 for a half tensor's output, which is then rounded
 * once to its dtype. Returns the per-channel scale and shift it used.
 */
export function cpuNormalize(
  x: Float32Array,
  y: NumberArray,
  g: Geometry,
  mean: Float64Array,
  invstd: Float64Array,
  weight: Float32Array | null,
  bias: Float32Array | null,
  epilogue: CpuEpilogue | null = null,
): CpuAffine {
  const { n, c: channels, s } = g;
  // y = x·scale + shift with shift = bias − mean·scale, all in float64: the cancellation between
  // x·scale and mean·scale costs ~2⁻⁵³ of |x·scale|, invisible after rounding y to float32.
  const scale = new Float64Array(channels);
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = (invstd[c] as number) * (weight ? (weight[c] as number) : 1);
    shift[c] = (bias ? (bias[c] as number) : 0) - (mean[c] as number) * (scale[c] as number);
  }
  if (epilogue) {
    cpuNormalizeEpilogue(x, y, g, scale, shift, epilogue);
    return { scale, shift };
  }
  if (g.order === 'cf') {
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        const base = (i * channels + c) * s;
        const a = scale[c] as number;
        const b = shift[c] as number;
        for (let k = 0; k < s; k++) y[base + k] = (x[base + k] as number) * a + b;
      }
    }
  } else {
    const rows = n * s;
    for (let r = 0; r < rows; r++) {
      const base = r * channels;
      for (let c = 0; c < channels; c++) y[base + c] = (x[base + c] as number) * (scale[c] as number) + (shift[c] as number);
    }
  }
  return { scale, shift };
}

// The epilogue's own loop, so plain BN keeps its tight loops above.
function cpuNormalizeEpilogue(
  x: Float32Array,
  y: NumberArray,
  g: Geometry,
  scale: Float64Array,
  shift: Float64Array,
  e: CpuEpilogue,
): void {
  const z = e.residual;
  const act = e.activation;
  const channels = g.c;
  const s = g.order === 'cf' ? g.s : 1;
  const w = e.preluSlope;
  const shared = w !== null && w.length === 1;
  for (let j = 0; j < x.length; j++) {
    const c = g.order === 'cf' ? Math.floor(j / s) % channels : j % channels;
    const t = (x[j] as number) * (scale[c] as number) + (shift[c] as number) + (z ? (z[j] as number) : 0);
    y[j] = cpuActivate(act, t, w ? (w[shared ? 0 : c] as number) : 0);
  }
}

/** 1 / sqrt(var + eps) per channel, in float64. */
export function invstdOf(variance: ArrayLike<number>, eps: number): Float64Array {
  const out = new Float64Array(variance.length);
  for (let c = 0; c < variance.length; c++) out[c] = 1 / Math.sqrt((variance[c] as number) + eps);
  return out;
}

/** Weights of the batch values in one running update, and the variance estimator. */
export interface CpuRunningFactors {
  readonly meanFactor: number;
  readonly varFactor: number;
  /** Feed the biased batch variance (Keras 3, ONNX) instead of the unbiased one (PyTorch). */
  readonly biased: boolean;
}

/**
 * running ← (1 − factor) · running + factor · batch, in place on the float32 running buffers. The
 * unbiased variance divides by max(m − 1, 1), as TensorFlow's fused kernel; PyTorch never gets here
 * with m = 1.
 */
export function cpuUpdateRunning(runningMean: Float32Array, runningVar: Float32Array, stats: CpuBatchStats, f: CpuRunningFactors): void {
  const unbias = f.biased ? 1 : stats.count / Math.max(stats.count - 1, 1);
  const { meanFactor, varFactor } = f;
  for (let c = 0; c < runningMean.length; c++) {
    runningMean[c] = (1 - meanFactor) * (runningMean[c] as number) + meanFactor * (stats.mean[c] as number);
    runningVar[c] = (1 - varFactor) * (runningVar[c] as number) + varFactor * (stats.biasedVar[c] as number) * unbias;
  }
}
