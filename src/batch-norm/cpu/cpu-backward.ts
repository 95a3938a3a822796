import { cpuGradFromOutput, cpuGradFromPreActivation } from './cpu-epilogue.js';
import { usesPreActivation, type ResolvedActivation } from '../epilogue.js';
import type { Geometry } from '../geometry.js';

// The CPU backward and the second oracle of the test suite: PyTorch's batch_norm_backward
// (aten/src/ATen/native/Normalization.cpp) as plain typed-array loops with float64 accumulation.
//   sumDy[c]    = Σ dy                       sumDyXmu[c] = Σ dy · (x − mean[c])
//   grad_bias   = sumDy                      grad_weight = sumDyXmu · invstd
//   batch statistics:   grad_input = (dy − sumDy / M − (x − mean) · invstd² · sumDyXmu / M) · invstd · w
//   running statistics: grad_input = dy · invstd · w
// Generic over the element arrays so the finite-difference check can run it wholly in float64.

/** A writable array of numbers: Float32Array for the library, Float64Array for gradient checks. */
export type NumberArray = Float32Array | Float64Array;

/** Inputs of {@link cpuBackward}, all in `g`'s memory order. */
export interface CpuBackwardInputs {
  readonly x: ArrayLike<number>;
  readonly dy: ArrayLike<number>;
  /** Per-channel mean used by the forward (batch or running). */
  readonly mean: ArrayLike<number>;
  /** Per-channel 1 / sqrt(var + eps) used by the forward. */
  readonly invstd: ArrayLike<number>;
  /** null: an implicit weight of 1. */
  readonly weight: ArrayLike<number> | null;
  /** Training formula (batch statistics) when true; running statistics when false. */
  readonly useBatchStats: boolean;
}

/** Outputs of {@link cpuBackward}; null = not requested, and its work is skipped. */
export interface CpuBackwardOutputs {
  readonly gradInput: NumberArray | null;
  readonly gradWeight: NumberArray | null;
  readonly gradBias: NumberArray | null;
}

/** Per-channel Σdy and Σdy·(x − mean) in float64, in one pass over x and dy. */
export function cpuBackwardSums(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  mean: ArrayLike<number>,
  g: Geometry,
): { sumDy: Float64Array; sumDyXmu: Float64Array } {
  const { n, c: channels, s } = g;
  const sumDy = new Float64Array(channels);
  const sumDyXmu = new Float64Array(channels);
  if (g.order === 'cf') {
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        const base = (i * channels + c) * s;
        const m = mean[c] as number;
        let a = 0;
        let b = 0;
        for (let k = 0; k < s; k++) {
          const d = dy[base + k] as number;
          a += d;
          b += d * ((x[base + k] as number) - m);
        }
        sumDy[c] = (sumDy[c] as number) + a;
        sumDyXmu[c] = (sumDyXmu[c] as number) + b;
      }
    }
  } else {
    const rows = n * s;
    for (let r = 0; r < rows; r++) {
      const base = r * channels;
      for (let c = 0; c < channels; c++) {
        const d = dy[base + c] as number;
        sumDy[c] = (sumDy[c] as number) + d;
        sumDyXmu[c] = (sumDyXmu[c] as number) + d * ((x[base + c] as number) - (mean[c] as number));
      }
    }
  }
  return { sumDy, sumDyXmu };
}

/** Computes the requested gradients into `out`. Does nothing when nothing is requested. */
export function cpuBackward(inp: CpuBackwardInputs, g: Geometry, out: CpuBackwardOutputs): void {
  const { n, c: channels, s } = g;
  const needSums = out.gradWeight !== null || out.gradBias !== null || (out.gradInput !== null && inp.useBatchStats);
  let sums: { sumDy: Float64Array; sumDyXmu: Float64Array } | null = null;
  if (needSums) {
    sums = cpuBackwardSums(inp.x, inp.dy, inp.mean, g);
    for (let c = 0; c < channels; c++) {
      if (out.gradWeight) out.gradWeight[c] = (sums.sumDyXmu[c] as number) * (inp.invstd[c] as number);
      if (out.gradBias) out.gradBias[c] = sums.sumDy[c] as number;
    }
  }
  const dx = out.gradInput;
  if (!dx) return;

  // Per channel: dx = dy · a − (x − mean) · b − d, i.e. PyTorch's
  // (dy − meanDy − (x − mean) · projScale) · gradScale with the products taken in float64.
  const a = new Float64Array(channels);
  const b = new Float64Array(channels);
  const d = new Float64Array(channels);
  const count = g.perChannel;
  for (let c = 0; c < channels; c++) {
    const invstd = inp.invstd[c] as number;
    const gradScale = invstd * (inp.weight ? (inp.weight[c] as number) : 1);
    a[c] = gradScale;
    if (sums) {
      b[c] = ((sums.sumDyXmu[c] as number) / count) * invstd * invstd * gradScale;
      d[c] = ((sums.sumDy[c] as number) / count) * gradScale;
    }
  }
  const x = inp.x;
  const dy = inp.dy;
  const mean = inp.mean;
  if (!inp.useBatchStats) {
    // Running statistics are constants: x does not enter (so a NaN in x stays out, as in PyTorch).
    if (g.order === 'cf') {
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < channels; c++) {
          const base = (i * channels + c) * s;
          const ac = a[c] as number;
          for (let k = 0; k < s; k++) dx[base + k] = (dy[base + k] as number) * ac;
        }
      }
    } else {
      for (let j = 0; j < dx.length; j++) dx[j] = (dy[j] as number) * (a[j % channels] as number);
    }
    return;
  }
  cpuGradInputElementwise(x, dy, mean, g, { a, b, d }, dx);
}

/** Per-channel coefficients of grad_input = dy·a − (x − mean)·b − d (float64). */
export interface GradInputCoefficients {
  readonly a: ArrayLike<number>;
  readonly b: ArrayLike<number>;
  readonly d: ArrayLike<number>;
}

/**
 * The one elementwise grad_input kernel of the CPU backends (plain and synchronized):
 * dx = dy·a − (x − mean)·b − d per channel, products in float64, one rounding per element.
 */
export function cpuGradInputElementwise(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  mean: ArrayLike<number>,
  g: Geometry,
  k: GradInputCoefficients,
  dx: NumberArray,
): void {
  const { n, c: channels, s } = g;
  const { a, b, d } = k;
  if (g.order === 'cf') {
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        const base = (i * channels + c) * s;
        const ac = a[c] as number;
        const bc = b[c] as number;
        const dc = d[c] as number;
        const m = mean[c] as number;
        for (let j = 0; j < s; j++) dx[base + j] = (dy[base + j] as number) * ac - ((x[base + j] as number) - m) * bc - dc;
      }
    }
    return;
  }
  const rows = n * s;
  for (let r = 0; r < rows; r++) {
    const base = r * channels;
    for (let c = 0; c < channels; c++) {
      dx[base + c] =
        (dy[base + c] as number) * (a[c] as number) - ((x[base + c] as number) - (mean[c] as number)) * (b[c] as number) - (d[c] as number);
    }
  }
}

/** The fused epilogue's side of a CPU backward (see shaders/common/epilogue.wgsl). */
export interface CpuEpilogueBackward {
  readonly activation: ResolvedActivation;
  /** The forward's output: the ReLU family's mask. */
  readonly output: ArrayLike<number> | null;
  /**
   * Pre-activation epilogues (usesPreActivation): the forward's residual (null: none), and its
   * per-channel t = x·scale + shift + residual.
   */
  readonly residual: ArrayLike<number> | null;
  readonly scale: ArrayLike<number> | null;
  readonly shift: ArrayLike<number> | null;
  /** PReLU: the slope tensor's values, [C] or [1]; null otherwise. */
  readonly preluSlope: ArrayLike<number> | null;
  /** PReLU: receives Σ dy·min(t, 0) per slope ([C], or [1] summed over every channel); null = not requested. */
  readonly gradPreluWeight: Float32Array | null;
}

/**
 * dL/dt = act'(t)·dy for every element (memory order of `g`), in float64: the gradient that
 * reaches batch norm's output and, unchanged, the residual.
 */
export function cpuEpilogueGrad(x: ArrayLike<number>, dy: ArrayLike<number>, g: Geometry, e: CpuEpilogueBackward): Float64Array {
  const out = new Float64Array(dy.length);
  const act = e.activation;
  if (usesPreActivation(act)) {
    const { scale, shift, residual: z, preluSlope: w, gradPreluWeight } = e;
    if (!scale || !shift) throw new Error(`internal: ${act.kind} backward without the forward constants`);
    const s = g.order === 'cf' ? g.s : 1;
    const shared = w !== null && w.length === 1;
    // PReLU's weight gradient, accumulated in float64 and rounded once.
    const gw = gradPreluWeight ? new Float64Array(gradPreluWeight.length) : null;
    for (let j = 0; j < out.length; j++) {
      const c = g.order === 'cf' ? Math.floor(j / s) % g.c : j % g.c;
      const t = (x[j] as number) * (scale[c] as number) + (shift[c] as number) + (z ? (z[j] as number) : 0);
      out[j] = cpuGradFromPreActivation(act, dy[j] as number, t, w ? (w[shared ? 0 : c] as number) : 0);
      if (gw && t <= 0) {
        const k = shared ? 0 : c;
        gw[k] = (gw[k] as number) + (dy[j] as number) * t;
      }
    }
    if (gradPreluWeight && gw) gradPreluWeight.set(gw);
    return out;
  }
  if (act.kind === 'none') {
    for (let j = 0; j < out.length; j++) out[j] = dy[j] as number;
    return out;
  }
  const y = e.output;
  if (!y) throw new Error('internal: masked backward without the forward output');
  for (let j = 0; j < out.length; j++) out[j] = cpuGradFromOutput(act, dy[j] as number, y[j] as number);
  return out;
}
