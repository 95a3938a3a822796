/**
 * Deterministic inputs and the float64 references every implementation is checked against before
 * it is timed. Plain loops, independent of the library's own CPU path (which is itself under test).
 */
import type { LayoutName } from './types.js';

/** (N, C, S) view of a logical shape, plus where the channel sits in memory. */
export interface CaseGeometry {
  readonly n: number;
  readonly c: number;
  /** Product of the spatial dims (1 for rank 2). */
  readonly s: number;
  readonly size: number;
  /** True when channels are the fastest-moving index in memory: channels_last, or rank 2. */
  readonly channelInner: boolean;
}

export function geometryOf(shape: readonly number[], layout: LayoutName): CaseGeometry {
  const [n = 1, c = 1, ...rest] = shape;
  const s = rest.reduce((a, b) => a * b, 1);
  return { n, c, s, size: n * c * s, channelInner: layout === 'channels_last' || s === 1 };
}

/** mulberry32: small, fast, good enough for benchmark data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Everything a case needs: inputs in memory order, parameters, and the float64 references. */
export interface CaseData {
  readonly geometry: CaseGeometry;
  readonly eps: number;
  readonly momentum: number;
  /** x in the case's memory layout. */
  readonly x: Float32Array;
  /** dL/dy for backward, same layout. */
  readonly dy: Float32Array;
  readonly weight: Float32Array;
  readonly bias: Float32Array;
  readonly runningMean: Float32Array;
  readonly runningVar: Float32Array;
  /** Batch statistics of x in float64: mean and 1/sqrt(biased var + eps). */
  readonly mean: Float64Array;
  readonly invstd: Float64Array;
  /** References, in x's memory layout. */
  readonly refTrain: Float64Array;
  readonly refEval: Float64Array;
  readonly refGradInput: Float64Array;
  readonly refGradWeight: Float64Array;
  readonly refGradBias: Float64Array;
}

/** Maps a memory index to its channel. */
function channelOf(g: CaseGeometry): (i: number) => number {
  if (g.channelInner) return (i) => i % g.c;
  return (i) => Math.floor(i / g.s) % g.c;
}

/**
 * Builds inputs with a per-channel offset and spread (so a naive one-pass variance would lose
 * digits) and computes the float64 references.
 */
export function makeCaseData(shape: readonly number[], layout: LayoutName, seed = 1234): CaseData {
  const g = geometryOf(shape, layout);
  const r = rng(seed + shape.reduce((a, b) => a * 31 + b, 7) + (layout === 'channels_last' ? 17 : 0));
  const c = g.c;
  const eps = 1e-5;
  const weight = new Float32Array(c);
  const bias = new Float32Array(c);
  const runningMean = new Float32Array(c);
  const runningVar = new Float32Array(c);
  const mu = new Float64Array(c);
  const sigma = new Float64Array(c);
  for (let k = 0; k < c; k++) {
    weight[k] = 0.5 + r();
    bias[k] = r() - 0.5;
    runningMean[k] = 2 * r() - 1;
    runningVar[k] = 0.5 + 1.5 * r();
    mu[k] = 4 * r() - 2;
    sigma[k] = 0.5 + 1.5 * r();
  }
  const x = new Float32Array(g.size);
  const dy = new Float32Array(g.size);
  const chan = channelOf(g);
  const root3 = Math.sqrt(3);
  for (let i = 0; i < g.size; i++) {
    const k = chan(i);
    x[i] = (mu[k] as number) + (sigma[k] as number) * root3 * (2 * r() - 1);
    dy[i] = 2 * r() - 1;
  }

  return {
    geometry: g,
    eps,
    momentum: 0.1,
    x,
    dy,
    weight,
    bias,
    runningMean,
    runningVar,
    ...referencesFor(g, x, dy, weight, bias, runningMean, runningVar, eps),
  };
}

/** The statistics and float64 references of a case's inputs (also of their float16-rounded copies). */
export function referencesFor(
  g: CaseGeometry,
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  weight: Float32Array,
  bias: Float32Array,
  runningMean: Float32Array,
  runningVar: Float32Array,
  eps: number,
): Pick<CaseData, 'mean' | 'invstd' | 'refTrain' | 'refEval' | 'refGradInput' | 'refGradWeight' | 'refGradBias'> {
  const c = g.c;
  // Statistics: two passes in float64.
  const count = g.n * g.s;
  const sum = new Float64Array(c);
  forEachElement(g, (i, k) => {
    sum[k] = (sum[k] as number) + (x[i] as number);
  });
  const mean = sum.map((v) => v / count);
  const sq = new Float64Array(c);
  forEachElement(g, (i, k) => {
    const d = (x[i] as number) - (mean[k] as number);
    sq[k] = (sq[k] as number) + d * d;
  });
  const invstd = sq.map((v) => 1 / Math.sqrt(v / count + eps));

  const refTrain = new Float64Array(g.size);
  const refEval = new Float64Array(g.size);
  const evalScale = new Float64Array(c);
  for (let k = 0; k < c; k++) evalScale[k] = (weight[k] as number) / Math.sqrt((runningVar[k] as number) + eps);
  const sumDy = new Float64Array(c);
  const sumDyXhat = new Float64Array(c);
  forEachElement(g, (i, k) => {
    const xhat = ((x[i] as number) - (mean[k] as number)) * (invstd[k] as number);
    refTrain[i] = xhat * (weight[k] as number) + (bias[k] as number);
    refEval[i] = ((x[i] as number) - (runningMean[k] as number)) * (evalScale[k] as number) + (bias[k] as number);
    sumDy[k] = (sumDy[k] as number) + (dy[i] as number);
    sumDyXhat[k] = (sumDyXhat[k] as number) + (dy[i] as number) * xhat;
  });
  // Training-mode backward (gradient flows through the batch statistics), as ATen:
  // dx = w·invstd·(dy − mean(dy) − xhat·mean(dy·xhat)); dw = Σ dy·xhat; db = Σ dy.
  const refGradInput = new Float64Array(g.size);
  forEachElement(g, (i, k) => {
    const is = invstd[k] as number;
    const xhat = ((x[i] as number) - (mean[k] as number)) * is;
    refGradInput[i] =
      (weight[k] as number) * is * ((dy[i] as number) - (sumDy[k] as number) / count - (xhat * (sumDyXhat[k] as number)) / count);
  });
  return { mean, invstd, refTrain, refEval, refGradInput, refGradWeight: sumDyXhat, refGradBias: sumDy };
}

/** Visits every element with its channel, in memory order. */
export function forEachElement(g: CaseGeometry, f: (index: number, channel: number) => void): void {
  if (g.channelInner) {
    const rows = g.size / g.c;
    let i = 0;
    for (let r = 0; r < rows; r++) for (let k = 0; k < g.c; k++) f(i++, k);
  } else {
    let i = 0;
    for (let n = 0; n < g.n; n++) for (let k = 0; k < g.c; k++) for (let s = 0; s < g.s; s++) f(i++, k);
  }
}

/** max |a − ref| / max(1, max |ref|); NaN if any output is not finite or the lengths differ. */
export function relativeError(actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (actual.length !== ref.length) return Number.NaN;
  let maxErr = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = actual[i] as number;
    const b = ref[i] as number;
    if (!Number.isFinite(a)) return Number.NaN;
    const e = Math.abs(a - b);
    if (e > maxErr) maxErr = e;
    const m = Math.abs(b);
    if (m > maxRef) maxRef = m;
  }
  return maxErr / Math.max(1, maxRef);
}

/** The worst of several errors, NaN-propagating. */
export function worstError(...errors: number[]): number {
  let worst = 0;
  for (const e of errors) {
    if (Number.isNaN(e)) return Number.NaN;
    if (e > worst) worst = e;
  }
  return worst;
}
