/**
 * float16 / bfloat16 storage (issue 14, part 1): tensors of either half dtype through the
 * modules' forward (training and evaluation), backward and fused epilogue on both backends.
 *
 * Reference: a float64 computation on the half-rounded inputs, its results rounded once to the
 * dtype (ties to even). torch 1.13 has no float16 batch norm on the CPU ("not implemented for
 * 'Half'"), so that is the float16 reference; for bfloat16 torch's own CPU result is checked too
 * (test/fixtures/half.json, from test/torch/generate_half_fixtures.py).
 *
 * Tolerances, per quantity: y, grad_input and grad_residual within 1 ulp of the dtype of the
 * float64 reference (the GPU computes in float32, so a value within float32 rounding of a
 * half-way point may round the other way; the CPU computes in float64); running statistics,
 * grad_weight and grad_bias (float32 outputs) within float32 accumulation error of the float64
 * reference.
 */
import { readFileSync } from 'node:fs';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { optionalFeatures, SHADER_F16, useNativeF16 } from '../src/gpu/features.js';
import { reflectShader } from '../src/gpu/reflect.js';
import { shaderSources, shaderSpecs } from '../src/gpu/shader-sources.js';
import { shaderFiles } from '../src/gpu/shader-manifest.js';
import { shippedWgsl } from '../build/wgsl-shaders.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BindGroupCache } from '../src/gpu/object-caches.js';
import {
  ArgumentError,
  BatchNorm1d,
  BatchNorm2d,
  batchNorm,
  createContext,
  batchNormBackward,
  type BatchNormContext,
  type Layout,
  onnxBatchNormalization,
  type Tensor,
} from '../src/index.js';
import { SyncBatchNorm } from '../src/sync/index.js';
import { foldBatchNormTensors } from '../src/fold/index.js';
import { bfloat16Bits, float16Bits, halfBits, halfValue, type HalfDType } from '../src/dtype.js';
import { BACKENDS, caseCounter, contextFor, gaussian, rng, type Backend } from './helpers/backends.js';

const count = caseCounter('half precision');
const DTYPES: readonly HalfDType[] = ['float16', 'bfloat16'];

/** Signed distance in units in the last place between two half bit patterns (±0 equal; NaN: Infinity unless both NaN). */
function ulps(dtype: HalfDType, a: number, b: number): number {
  const va = halfValue(dtype, a);
  const vb = halfValue(dtype, b);
  if (Number.isNaN(va) || Number.isNaN(vb)) return Number.isNaN(va) && Number.isNaN(vb) ? 0 : Infinity;
  const ord = (bits: number): number => (bits & 0x8000 ? -(bits & 0x7fff) : bits);
  return Math.abs(ord(a) - ord(b));
}

/** Largest ulp distance between two arrays of bit patterns, with the first index where it occurs. */
function maxUlps(dtype: HalfDType, actual: Uint16Array, expected: ArrayLike<number>): { ulps: number; at: number } {
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = ulps(dtype, actual[i] as number, expected[i] as number);
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  return { ulps: worst, at };
}

interface Shape {
  readonly shape: number[];
  readonly layout: Layout;
  /** What it exercises on WebGPU. */
  readonly what: string;
}

const SHAPES: readonly Shape[] = [
  { shape: [3, 4, 6], layout: 'channels_first', what: 'even spatial (cf2h)' },
  { shape: [4, 3, 5], layout: 'channels_first', what: 'odd spatial, odd size (anyh)' },
  { shape: [3, 6, 2, 2], layout: 'channels_last', what: 'even C (cl2h)' },
  { shape: [3, 5, 3], layout: 'channels_last', what: 'odd C, odd size (anyh)' },
  { shape: [7, 3], layout: 'channels_first', what: '(N, C), odd size' },
];

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Channel of memory index j. */
function channelAt(shape: readonly number[], layout: Layout, j: number): number {
  const c = shape[1] as number;
  const s = sizeOf(shape.slice(2));
  return layout === 'channels_last' || s === 1 ? j % c : Math.floor(j / s) % c;
}

/** Random values in memory order rounded to `dtype`, as bit patterns. */
function halfData(dtype: HalfDType, n: number, seed: number, offset = 2, scale = 3): Uint16Array {
  const next = rng(seed);
  return Uint16Array.from({ length: n }, () => halfBits(dtype, offset + scale * gaussian(next)));
}

function values(dtype: HalfDType, bits: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: bits.length }, (_, i) => halfValue(dtype, bits[i] as number));
}

/** Per-channel float64 mean and biased variance of memory-order values. */
function stats(x: Float64Array, shape: readonly number[], layout: Layout): { mean: Float64Array; variance: Float64Array; m: number } {
  const c = shape[1] as number;
  const sum = new Float64Array(c);
  const cnt = new Float64Array(c);
  for (let j = 0; j < x.length; j++) {
    const ch = channelAt(shape, layout, j);
    sum[ch] = (sum[ch] as number) + (x[j] as number);
    cnt[ch] = (cnt[ch] as number) + 1;
  }
  const mean = sum.map((v, ch) => v / (cnt[ch] as number));
  const sq = new Float64Array(c);
  for (let j = 0; j < x.length; j++) {
    const ch = channelAt(shape, layout, j);
    sq[ch] = (sq[ch] as number) + ((x[j] as number) - (mean[ch] as number)) ** 2;
  }
  return { mean, variance: sq.map((v, ch) => v / (cnt[ch] as number)), m: cnt[0] as number };
}

const EPS = 1e-5;
const WEIGHT = [1.5, -0.75, 2, 0.5, 1.25, -1, 0.875, 1.75];
const BIAS = [0.25, -1, 0.5, 2, -0.125, 0, 1.5, -0.5];

async function setParams(bn: BatchNorm1d | BatchNorm2d, c: number): Promise<void> {
  bn.weight?.write(WEIGHT.slice(0, c));
  bn.bias?.write(BIAS.slice(0, c));
}

function moduleFor(ctx: BatchNormContext, shape: readonly number[]): BatchNorm1d | BatchNorm2d {
  const c = shape[1] as number;
  return shape.length === 4 ? new BatchNorm2d(ctx, c) : new BatchNorm1d(ctx, c);
}

function expectRelClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number): void {
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    expect(Math.abs(a - e), `${what}[${i}]: ${a} vs ${e}`).toBeLessThanOrEqual(atol + rtol * Math.abs(e));
  }
}

describe.each(BACKENDS)('half-precision tensors on %s', (backend: Backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it.each(DTYPES)(
    'ctx.tensor(%s): numbers round to nearest even, Uint16Array is bits, read() and readBits() give the storage, readFloat32() widens',
    async (dtype) => {
      count(backend);
      // 1 + 2^-11 is half-way between two float16s (ties to even: 1); 65520 overflows float16 to Inf.
      const numbers = [1 + 2 ** -11, 1 + 3 * 2 ** -11, -2.5, 65520, 1e-8, Number.NaN, 0.1];
      const t = ctx.tensor(numbers, [numbers.length], { dtype });
      expect(t.dtype).toBe(dtype);
      const bits = await t.readBits();
      const round = dtype === 'float16' ? float16Bits : bfloat16Bits;
      expect(Array.from(bits)).toEqual(numbers.map(round));
      // read() returns the stored dtype: a half tensor's 16-bit patterns, as readBits() does.
      const read = await t.read();
      expect(read).toBeInstanceOf(Uint16Array);
      expect(Array.from(read)).toEqual(Array.from(bits));
      const widened = await t.readFloat32();
      expect(widened).toBeInstanceOf(Float32Array);
      expect(Array.from(widened)).toEqual(Array.from(bits, (b) => halfValue(dtype, b)));
      const raw = ctx.tensor(bits, [bits.length], { dtype });
      expect(Array.from(await raw.readBits())).toEqual(Array.from(bits));
      raw.write(Uint16Array.from([1, 2, 3, 4, 5, 6, 7]));
      expect(Array.from(await raw.readBits())).toEqual([1, 2, 3, 4, 5, 6, 7]);
      const copy = ctx.tensor(new Uint16Array(7), [7], { dtype });
      copy.writeFrom(t);
      expect(Array.from(await copy.readBits())).toEqual(Array.from(bits));
      expect(() => copy.writeFrom(ctx.tensor(new Float32Array(7), [7]))).toThrow(ArgumentError);
      await expect(ctx.tensor([1, 2], [2]).readBits()).rejects.toThrow(ArgumentError);
      expect(() => ctx.tensor([1], [1], { dtype: 'float8' as unknown as HalfDType })).toThrow(ArgumentError);
      for (const x of [t, raw, copy]) x.destroy();
    },
  );

  for (const dtype of DTYPES) {
    it.each(SHAPES)(`${dtype} forward, training then eval: %s`, async ({ shape, layout }) => {
      count(backend);
      const n = sizeOf(shape);
      const c = shape[1] as number;
      const bits = halfData(dtype, n, 11 + n);
      const x = ctx.tensor(bits, shape, { dtype, layout });
      const bn = moduleFor(ctx, shape);
      await setParams(bn, c);
      const y = bn.forward(x);
      expect(y.dtype).toBe(dtype);
      expect(y.layout).toBe(layout);
      const xv = values(dtype, bits);
      const st = stats(xv, shape, layout);
      const expected = Array.from(xv, (v, j) => {
        const ch = channelAt(shape, layout, j);
        return halfBits(
          dtype,
          ((v - (st.mean[ch] as number)) / Math.sqrt((st.variance[ch] as number) + EPS)) * (WEIGHT[ch] as number) + (BIAS[ch] as number),
        );
      });
      const got = await y.readBits();
      const worst = maxUlps(dtype, got, expected);
      expect(worst.ulps, `train y worst at ${worst.at}`).toBeLessThanOrEqual(1);
      // Running statistics stay float32, from the float64 statistics of the half inputs.
      const unbias = st.m / (st.m - 1);
      expectRelClose(
        'running_mean',
        await (bn.runningMean as Tensor).read(),
        Array.from(st.mean, (m) => 0.1 * m),
        1e-5,
        1e-6,
      );
      const rv = Array.from(st.variance, (v) => 0.9 + 0.1 * v * unbias);
      expectRelClose('running_var', await (bn.runningVar as Tensor).read(), rv, 1e-5, 1e-6);

      bn.eval();
      const y2 = bn.forward(x);
      const rm = Array.from(st.mean, (m) => Math.fround(0.1 * m));
      const rvf = rv.map((v) => Math.fround(v));
      const rmGot = await (bn.runningMean as Tensor).read();
      const rvGot = await (bn.runningVar as Tensor).read();
      const evalExpected = Array.from(xv, (v, j) => {
        const ch = channelAt(shape, layout, j);
        // From the module's own float32 running statistics (as torch's eval uses them).
        return halfBits(
          dtype,
          ((v - (rmGot[ch] as number)) / Math.sqrt((rvGot[ch] as number) + EPS)) * (WEIGHT[ch] as number) + (BIAS[ch] as number),
        );
      });
      expectRelClose('running_mean (float32)', rmGot, rm, 1e-5, 1e-6);
      expectRelClose('running_var (float32)', rvGot, rvf, 1e-5, 1e-6);
      const worstEval = maxUlps(dtype, await y2.readBits(), evalExpected);
      expect(worstEval.ulps, `eval y worst at ${worstEval.at}`).toBeLessThanOrEqual(1);
      for (const t of [x, y, y2]) t.destroy();
      bn.destroy();
    });
  }
});

/** Spacing of `dtype` numbers at |v| (above its rounded value: an upper bound of the rounding step). */
function spacing(dtype: HalfDType, v: number): number {
  const b = halfBits(dtype, Math.abs(v)) & 0x7fff;
  const above = halfValue(dtype, b + 1);
  return Number.isFinite(above) ? above - halfValue(dtype, b) : halfValue(dtype, b) - halfValue(dtype, b - 1);
}

/**
 * Every stored value within half a step of the float64 reference plus `computeErr[j]` (the
 * float32 arithmetic's error bound on WebGPU; 0 on the CPU, whose float64 rounding is invisible
 * here): the result of rounding, once, a value that close to the reference.
 */
function expectHalfClose(
  what: string,
  dtype: HalfDType,
  got: Uint16Array,
  ref: ArrayLike<number>,
  computeErr: (j: number) => number,
): void {
  for (let j = 0; j < ref.length; j++) {
    const r = ref[j] as number;
    const v = halfValue(dtype, got[j] as number);
    const tol = spacing(dtype, r) / 2 + computeErr(j);
    expect(Math.abs(v - r), `${what}[${j}]: ${v} vs ${r} (tol ${tol})`).toBeLessThanOrEqual(tol);
  }
}

const F32_EPS = 2 ** -24;

interface BackwardReference {
  readonly dx: Float64Array;
  readonly gradWeight: Float64Array;
  readonly gradBias: Float64Array;
  /** Per element: the magnitude the float32 arithmetic of dx works at. */
  readonly dxScale: Float64Array;
}

/** torch's batch_norm_backward in float64 on the dtype's values of x and d (= dL/dt). */
function backwardReference(
  x: Float64Array,
  d: ArrayLike<number>,
  shape: readonly number[],
  layout: Layout,
  mean: Float64Array,
  invstd: Float64Array,
  training: boolean,
  weights: readonly number[] = WEIGHT,
): BackwardReference {
  const c = shape[1] as number;
  const sumDy = new Float64Array(c);
  const sumDyXmu = new Float64Array(c);
  for (let j = 0; j < x.length; j++) {
    const ch = channelAt(shape, layout, j);
    sumDy[ch] = (sumDy[ch] as number) + (d[j] as number);
    sumDyXmu[ch] = (sumDyXmu[ch] as number) + (d[j] as number) * ((x[j] as number) - (mean[ch] as number));
  }
  const m = x.length / c;
  const dx = new Float64Array(x.length);
  const dxScale = new Float64Array(x.length);
  for (let j = 0; j < x.length; j++) {
    const ch = channelAt(shape, layout, j);
    const inv = invstd[ch] as number;
    const a = inv * (weights[ch] as number);
    const dj = d[j] as number;
    if (!training) {
      dx[j] = dj * a;
      dxScale[j] = Math.abs(dj * a);
      continue;
    }
    const xmu = (x[j] as number) - (mean[ch] as number);
    const proj = ((sumDyXmu[ch] as number) / m) * inv * inv;
    dx[j] = (dj - (sumDy[ch] as number) / m - xmu * proj) * a;
    dxScale[j] = (Math.abs(dj) + Math.abs((sumDy[ch] as number) / m) + Math.abs(xmu * proj)) * Math.abs(a);
  }
  return { dx, gradWeight: sumDyXmu.map((v, ch) => v * (invstd[ch] as number)), gradBias: sumDy, dxScale };
}

describe.each(BACKENDS)('half-precision backward on %s', (backend: Backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());
  // WebGPU computes in float32: a few roundings of the largest term; the CPU in float64.
  const computeErr = (scale: number): number => (backend === 'webgpu' ? 16 * F32_EPS * scale : 0);

  for (const dtype of DTYPES) {
    for (const training of [true, false]) {
      it.each(SHAPES)(`${dtype} ${training ? 'training' : 'eval'} backward: %s`, async ({ shape, layout }) => {
        count(backend);
        const n = sizeOf(shape);
        const c = shape[1] as number;
        const xBits = halfData(dtype, n, 101 + n);
        const dyBits = halfData(dtype, n, 202 + n, 0, 1);
        const x = ctx.tensor(xBits, shape, { dtype, layout });
        const dy = ctx.tensor(dyBits, shape, { dtype, layout });
        const bn = moduleFor(ctx, shape);
        await setParams(bn, c);
        if (!training) {
          bn.runningMean?.write(Array.from({ length: c }, (_, i) => 0.5 * i - 1));
          bn.runningVar?.write(Array.from({ length: c }, (_, i) => 0.75 + i));
          bn.eval();
        }
        const y = bn.forward(x);
        const { gradInput, gradWeight, gradBias } = bn.backward(dy);
        expect(gradInput?.dtype).toBe(dtype);
        expect(gradWeight?.dtype).toBe('float32');
        const xv = values(dtype, xBits);
        const dyv = values(dtype, dyBits);
        let mean: Float64Array;
        let invstd: Float64Array;
        if (training) {
          const st = stats(xv, shape, layout);
          mean = st.mean;
          invstd = st.variance.map((v) => 1 / Math.sqrt(v + EPS));
        } else {
          mean = Float64Array.from(await (bn.runningMean as Tensor).read());
          invstd = Float64Array.from(await (bn.runningVar as Tensor).read(), (v) => 1 / Math.sqrt(v + EPS));
        }
        const ref = backwardReference(xv, dyv, shape, layout, mean, invstd, training);
        expectHalfClose('grad_input', dtype, await (gradInput as Tensor).readBits(), ref.dx, (j) => computeErr(ref.dxScale[j] as number));
        const sumAbs = (ch: number, f: (j: number) => number): number => {
          let s = 0;
          for (let j = 0; j < n; j++) if (channelAt(shape, layout, j) === ch) s += Math.abs(f(j));
          return s;
        };
        const gw = await (gradWeight as Tensor).read();
        const gb = await (gradBias as Tensor).read();
        for (let ch = 0; ch < c; ch++) {
          // float32 accumulation over the channel's values: a few ε of Σ|terms|.
          const wScale = sumAbs(ch, (j) => (dyv[j] as number) * ((xv[j] as number) - (mean[ch] as number)) * (invstd[ch] as number));
          const bScale = sumAbs(ch, (j) => dyv[j] as number);
          expect(Math.abs((gw[ch] as number) - (ref.gradWeight[ch] as number)), `grad_weight[${ch}]`).toBeLessThanOrEqual(
            64 * F32_EPS * wScale,
          );
          expect(Math.abs((gb[ch] as number) - (ref.gradBias[ch] as number)), `grad_bias[${ch}]`).toBeLessThanOrEqual(
            64 * F32_EPS * bScale,
          );
        }
        for (const t of [x, dy, y, gradInput, gradWeight, gradBias]) t?.destroy();
        bn.destroy();
      });
    }
  }
});

type HalfActivation = 'relu' | 'silu' | 'prelu';
const SLOPES = [0.25, -0.5, 0.1, 0.75, 0.3, 0.05];

function activate(a: HalfActivation, t: number, slope: number): number {
  if (a === 'relu') return Math.max(t, 0);
  if (a === 'silu') return t / (1 + Math.exp(-t));
  return t > 0 ? t : slope * t;
}

/** dL/dt from dL/dy = g: relu masks with the stored (half) output y, as torch's threshold_backward. */
function activationGrad(a: HalfActivation, g: number, t: number, y: number, slope: number): number {
  if (a === 'relu') return y > 0 ? g : 0;
  if (a === 'silu') {
    const s = 1 / (1 + Math.exp(-t));
    return g * s * (1 + t * (1 - s));
  }
  return t > 0 ? g : slope * g;
}

describe.each(BACKENDS)('half-precision fused epilogue on %s', (backend: Backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());
  // float32 arithmetic with WGSL's exp (3 + 2|x| ulp) on WebGPU; float64 on the CPU.
  const computeErr = (scale: number): number => (backend === 'webgpu' ? 32 * F32_EPS * scale : 0);
  const shapes = [SHAPES[1], SHAPES[2], SHAPES[3]] as Shape[];

  for (const dtype of DTYPES) {
    for (const activation of ['relu', 'silu', 'prelu'] as const) {
      it.each(shapes)(`${dtype} ${activation}(bn(x) + residual), forward and backward: %s`, async ({ shape, layout }) => {
        count(backend);
        const n = sizeOf(shape);
        const c = shape[1] as number;
        const xBits = halfData(dtype, n, 301 + n);
        const zBits = halfData(dtype, n, 302 + n, 0, 1);
        const dyBits = halfData(dtype, n, 303 + n, 0, 1);
        const x = ctx.tensor(xBits, shape, { dtype, layout });
        const z = ctx.tensor(zBits, shape, { dtype, layout });
        const dy = ctx.tensor(dyBits, shape, { dtype, layout });
        const slopes = ctx.tensor(SLOPES.slice(0, c), [c]);
        const bn = moduleFor(ctx, shape);
        await setParams(bn, c);
        const act = activation === 'prelu' ? { kind: 'prelu' as const, weight: slopes } : activation;
        const y = bn.forward(x, { epilogue: { activation: act, residual: z } });
        const g = bn.backward(dy);
        expect(y.dtype).toBe(dtype);
        expect(g.gradResidual?.dtype).toBe(dtype);

        const xv = values(dtype, xBits);
        const zv = values(dtype, zBits);
        const dyv = values(dtype, dyBits);
        const st = stats(xv, shape, layout);
        const invstd = st.variance.map((v) => 1 / Math.sqrt(v + EPS));
        const t = Array.from(xv, (v, j) => {
          const ch = channelAt(shape, layout, j);
          return (v - (st.mean[ch] as number)) * (invstd[ch] as number) * (WEIGHT[ch] as number) + (BIAS[ch] as number) + (zv[j] as number);
        });
        const slopeOf = (j: number): number => SLOPES[channelAt(shape, layout, j)] as number;
        const yRef = t.map((tj, j) => activate(activation, tj, slopeOf(j)));
        const yBits = await y.readBits();
        const tScale = (j: number): number => 1 + Math.abs(t[j] as number) + Math.abs(zv[j] as number);
        expectHalfClose('y', dtype, yBits, yRef, (j) => computeErr(tScale(j)));

        // Backward: dL/dt (relu masked by the stored output), which is also the residual's gradient.
        const yStored = values(dtype, yBits);
        const d = t.map((tj, j) => activationGrad(activation, dyv[j] as number, tj, yStored[j] as number, slopeOf(j)));
        // A value within float32 error of relu's threshold can take either side: the mask uses the stored y.
        expectHalfClose('grad_residual', dtype, await (g.gradResidual as Tensor).readBits(), d, (j) =>
          computeErr(tScale(j) * (1 + Math.abs(dyv[j] as number))),
        );
        const ref = backwardReference(xv, d, shape, layout, st.mean, invstd, true);
        expectHalfClose('grad_input', dtype, await (g.gradInput as Tensor).readBits(), ref.dx, (j) =>
          computeErr(4 * (ref.dxScale[j] as number) + tScale(j)),
        );
        const gb = await (g.gradBias as Tensor).read();
        for (let ch = 0; ch < c; ch++) {
          let scale = 0;
          for (let j = 0; j < n; j++)
            if (channelAt(shape, layout, j) === ch) scale += Math.abs(d[j] as number) + Math.abs(dyv[j] as number);
          expect(Math.abs((gb[ch] as number) - (ref.gradBias[ch] as number)), `grad_bias[${ch}]`).toBeLessThanOrEqual(
            64 * F32_EPS * scale + computeErr(scale),
          );
        }
        if (activation === 'prelu') {
          const gp = await (g.gradPreluWeight as Tensor).read();
          for (let ch = 0; ch < c; ch++) {
            let sum = 0;
            let scale = 0;
            for (let j = 0; j < n; j++) {
              if (channelAt(shape, layout, j) !== ch || (t[j] as number) > 0) continue;
              sum += (dyv[j] as number) * (t[j] as number);
              scale += Math.abs((dyv[j] as number) * (t[j] as number));
            }
            expect(Math.abs((gp[ch] as number) - sum), `grad_prelu_weight[${ch}]`).toBeLessThanOrEqual(64 * F32_EPS * scale + 1e-6);
          }
        }
        for (const tt of [x, z, dy, slopes, y, g.gradInput, g.gradWeight, g.gradBias, g.gradResidual, g.gradPreluWeight]) tt?.destroy();
        bn.destroy();
      });
    }
  }
});

describe('half-precision special values: WebGPU (finalize rescan over half x) matches the CPU oracle', () => {
  let gpu: BatchNormContext;
  let cpu: BatchNormContext;
  beforeAll(async () => {
    gpu = await contextFor('webgpu');
    cpu = await contextFor('cpu');
  });
  afterAll(() => {
    gpu.destroy();
    cpu.destroy();
  });

  it.each(DTYPES)('%s: NaN, ±Inf and (bfloat16) values past float32 sums', async (dtype) => {
    count('webgpu');
    count('cpu');
    const shape = [4, 4, 3];
    const n = sizeOf(shape);
    const bits = halfData(dtype, n, 7);
    const at = (nn: number, c: number, k: number): number => (nn * 4 + c) * 3 + k;
    bits[at(1, 0, 2)] = halfBits(dtype, Number.NaN);
    bits[at(2, 1, 0)] = halfBits(dtype, Number.POSITIVE_INFINITY);
    bits[at(0, 2, 1)] = halfBits(dtype, Number.POSITIVE_INFINITY);
    bits[at(3, 2, 1)] = halfBits(dtype, Number.NEGATIVE_INFINITY);
    // bfloat16 reaches float32's range: squares of 1e30 overflow float32 sums (the scaled rescan).
    if (dtype === 'bfloat16') for (let k = 0; k < 3; k++) bits[at(k, 3, k)] = halfBits(dtype, (k % 2 ? -1 : 1) * 1e30 * (k + 1));
    const run = async (ctx: BatchNormContext): Promise<[Uint16Array, Float32Array, Float32Array]> => {
      const bn = new BatchNorm1d(ctx, 4);
      const y = bn.forward(ctx.tensor(bits, shape, { dtype }));
      return [await y.readBits(), await (bn.runningMean as Tensor).readFloat32(), await (bn.runningVar as Tensor).readFloat32()];
    };
    const [yg, mg, vg] = await run(gpu);
    const [yc, mc, vc] = await run(cpu);
    // Non-finite statistics exactly as the CPU's (torch's: NaN, or ±Inf means), finite ones float32-close.
    const finite = (a: Float32Array): string[] => Array.from(a, (v) => (Number.isFinite(v) ? 'finite' : String(v)));
    expect(finite(mg)).toEqual(finite(mc));
    expect(finite(vg)).toEqual(finite(vc));
    const keep = (a: Float32Array): number[] => Array.from(a, (v) => (Number.isFinite(v) ? v : 0));
    expectRelClose('running_mean', keep(mg), keep(mc), 1e-5, 0);
    expectRelClose('running_var', keep(vg), keep(vc), 1e-5, 0);
    expect(maxUlps(dtype, yg, yc).ulps).toBeLessThanOrEqual(1);
    // The NaN channel normalizes to NaN everywhere; +Inf and −Inf together make channel 2 NaN too.
    for (let j = 0; j < n; j++) {
      const ch = Math.floor(j / 3) % 4;
      if (ch <= 2) expect(Number.isNaN(halfValue(dtype, yc[j] as number)), `y[${j}]`).toBe(true);
    }
  });
});

interface HalfFixture {
  readonly name: string;
  readonly dtype: HalfDType;
  readonly reference: string;
  readonly shape: number[];
  readonly eps: number;
  readonly momentum: number;
  readonly weight: number[];
  readonly bias: number[];
  readonly input: number[];
  readonly grad_output: number[];
  readonly output: number[];
  readonly running_mean: number[];
  readonly running_var: number[];
  readonly eval_output: number[];
  readonly grad_input: number[];
  readonly grad_weight: number[];
  readonly grad_bias: number[];
}

const HALF_FILE = JSON.parse(readFileSync(new URL('./fixtures/half.json', import.meta.url), 'utf8')) as {
  conversions: { values: number[]; float16: number[]; bfloat16: number[] };
  cases: HalfFixture[];
};
const HALF_FIXTURES = HALF_FILE.cases;

describe('conversions against torch, and exact widening', () => {
  it('float16Bits / bfloat16Bits equal torch (Tensor.to(float16 / bfloat16) from float64) on 500 values', () => {
    const { values: v, float16, bfloat16 } = HALF_FILE.conversions;
    expect(v.map(float16Bits)).toEqual(float16);
    expect(v.map(bfloat16Bits)).toEqual(bfloat16);
    expect(v.map((x) => float16Bits(-x))).toEqual(float16.map((b) => (b ^ 0x8000) & 0xffff));
  });

  it('every 16-bit pattern widens exactly and rounds back to itself (NaN to the quiet NaN), Infinity to Inf', () => {
    for (let b = 0; b < 0x10000; b++) {
      for (const dtype of DTYPES) {
        const v = halfValue(dtype, b);
        if (Number.isNaN(v)) {
          expect(halfBits(dtype, v)).toBe(dtype === 'float16' ? 0x7e00 : 0x7fc0);
          continue;
        }
        expect(Math.fround(v)).toBe(v);
        if (halfBits(dtype, v) !== b) expect.fail(`${dtype} 0x${b.toString(16)} -> ${v} -> 0x${halfBits(dtype, v).toString(16)}`);
      }
    }
    expect(float16Bits(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(bfloat16Bits(Number.NEGATIVE_INFINITY)).toBe(0xff80);
  });

  it('ctx.tensor takes a Float16Array as its bit patterns (simulated: this runtime has none)', async () => {
    // A Uint16Array tagged as Float16Array stands in for the ES2025 type: its bytes are float16s.
    class FakeFloat16Array extends Uint16Array {
      override get [Symbol.toStringTag](): 'Uint16Array' {
        return 'Float16Array' as 'Uint16Array';
      }
    }
    const ctx = await contextFor('cpu');
    const fake = FakeFloat16Array.from([0x3c00, 0xc100, 0x7c00]);
    expect(Object.prototype.toString.call(fake)).toBe('[object Float16Array]');
    const t = ctx.tensor(fake, [3], { dtype: 'float16' });
    expect(Array.from(await t.readBits())).toEqual([0x3c00, 0xc100, 0x7c00]);
    expect(Array.from(await t.read())).toEqual([0x3c00, 0xc100, 0x7c00]);
    expect(Array.from(await t.readFloat32())).toEqual([1, -2.5, Number.POSITIVE_INFINITY]);
    ctx.destroy();
  });
});

/** Logical-order values → memory order of `layout` (a permutation, so bit patterns survive). */
function permute(logical: readonly number[], shape: readonly number[], layout: Layout, toMemory: boolean): number[] {
  if (layout === 'channels_first' || shape.length < 3) return [...logical];
  const n = shape[0] as number;
  const c = shape[1] as number;
  const s = logical.length / (n * c);
  const out = new Array<number>(logical.length);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let k = 0; k < s; k++) {
        const l = (i * c + ch) * s + k;
        const m = (i * s + k) * c + ch;
        if (toMemory) out[m] = logical[l] as number;
        else out[l] = logical[m] as number;
      }
  return out;
}

describe.each(BACKENDS)('half precision against PyTorch (test/fixtures/half.json) on %s', (backend: Backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  const cases = HALF_FIXTURES.flatMap((f) =>
    (f.shape.length >= 3 ? (['channels_first', 'channels_last'] as const) : (['channels_first'] as const)).map((layout) => ({ f, layout })),
  );
  it.each(cases)('$f.name ($layout)', async ({ f, layout }) => {
    count(backend);
    const { dtype, shape } = f;
    const c = shape[1] as number;
    const mem = (a: readonly number[]): Uint16Array => Uint16Array.from(permute(a, shape, layout, true));
    const logical = (a: Uint16Array): number[] => permute(Array.from(a), shape, layout, false);
    const bn = moduleFor(ctx, shape);
    bn.weight?.write(f.weight);
    bn.bias?.write(f.bias);
    const x = ctx.tensor(mem(f.input), shape, { dtype, layout });
    const dy = ctx.tensor(mem(f.grad_output), shape, { dtype, layout });
    const y = bn.forward(x);
    const g = bn.backward(dy);
    const yBits = Uint16Array.from(logical(await y.readBits()));
    const worst = maxUlps(dtype, yBits, f.output);
    expect(worst.ulps, `y vs torch (${f.reference}), worst at ${worst.at}`).toBeLessThanOrEqual(1);
    expectRelClose('running_mean', await (bn.runningMean as Tensor).read(), f.running_mean, 1e-5, 1e-6);
    expectRelClose('running_var', await (bn.runningVar as Tensor).read(), f.running_var, 1e-5, 1e-6);

    // grad_input: within one step of torch's, plus float32 arithmetic on both sides (torch's
    // bfloat16 path computes in float32 too); the scale from a float64 reference.
    const xv = values(dtype, f.input);
    const dyv = values(dtype, f.grad_output);
    const st = stats(xv, shape, 'channels_first');
    const invstd = st.variance.map((v) => 1 / Math.sqrt(v + f.eps));
    const ref = backwardReference(xv, dyv, shape, 'channels_first', st.mean, invstd, true, f.weight);
    const scale = (j: number): number => ref.dxScale[j] as number;
    const gi = Uint16Array.from(logical(await (g.gradInput as Tensor).readBits()));
    for (let j = 0; j < gi.length; j++) {
      const torchValue = halfValue(dtype, f.grad_input[j] as number);
      const v = halfValue(dtype, gi[j] as number);
      const tol = spacing(dtype, torchValue) + 64 * F32_EPS * scale(j);
      expect(Math.abs(v - torchValue), `grad_input[${j}] ${v} vs torch ${torchValue}`).toBeLessThanOrEqual(tol);
    }
    const gw = await (g.gradWeight as Tensor).read();
    const gb = await (g.gradBias as Tensor).read();
    for (let ch = 0; ch < c; ch++) {
      let ws = 0;
      let bs = 0;
      for (let j = 0; j < xv.length; j++) {
        if (channelAt(shape, 'channels_first', j) !== ch) continue;
        ws += Math.abs((dyv[j] as number) * ((xv[j] as number) - (st.mean[ch] as number)) * (invstd[ch] as number));
        bs += Math.abs(dyv[j] as number);
      }
      expect(Math.abs((gw[ch] as number) - (f.grad_weight[ch] as number)), `grad_weight[${ch}]`).toBeLessThanOrEqual(128 * F32_EPS * ws);
      expect(Math.abs((gb[ch] as number) - (f.grad_bias[ch] as number)), `grad_bias[${ch}]`).toBeLessThanOrEqual(128 * F32_EPS * bs);
    }

    bn.eval();
    const ye = bn.forward(x);
    const worstEval = maxUlps(dtype, Uint16Array.from(logical(await ye.readBits())), f.eval_output);
    expect(worstEval.ulps, `eval y vs torch, worst at ${worstEval.at}`).toBeLessThanOrEqual(1);
    for (const t of [x, dy, y, ye, g.gradInput, g.gradWeight, g.gradBias]) t?.destroy();
    bn.destroy();
  });
});

describe('native f16 (shader-f16): checked statically, since SwiftShader lacks the feature', () => {
  it('the feature selection: native f16 only for float16 on a device with shader-f16; requested when the adapter has it', () => {
    const none = new Set<string>();
    const f16 = new Set<string>([SHADER_F16]);
    expect(useNativeF16(f16, 'float16')).toBe(true);
    expect(useNativeF16(none, 'float16')).toBe(false);
    // WGSL has no bfloat16 type: bfloat16 is always packed.
    expect(useNativeF16(f16, 'bfloat16')).toBe(false);
    expect(useNativeF16(f16, 'float32')).toBe(false);
    expect(optionalFeatures(new Set(['shader-f16', 'timestamp-query', 'float32-filterable']))).toEqual(['timestamp-query', 'shader-f16']);
    expect(optionalFeatures(none)).toEqual([]);
  });

  it('normalize-f16 parses with wgsl_reflect (enable f16, vec2<f16> storage) and its entries bind what the packed ones do', () => {
    expect(shaderSources['normalize-f16'].trimStart().startsWith('enable f16;')).toBe(true);
    // The names are the source's: the shipped module is the same one minified (its layouts are
    // checked against the source's in test/wgsl-static.test.ts).
    const { compacted } = shippedWgsl();
    const reflect = new WgslReflect(shaderFiles('normalize-f16').map((f) => compacted.get(f)).join('\n'));
    const runtime = reflectShader(shaderSpecs['normalize-f16']);
    const packed = reflectShader(shaderSpecs.normalize);
    for (const order of ['cf', 'cl']) {
      const fn = reflect.entry.compute.find((e) => e.name === `normalize_${order}2n`);
      expect(fn, `normalize_${order}2n`).toBeDefined();
      const native = runtime.get(`normalize_${order}2n`);
      const twin = packed.get(`normalize_${order}2h`);
      if (!native || !twin || !fn) throw new Error('missing entry');
      // The build-time reflection is what wgsl_reflect reads now.
      expect(native.bindings.map((b) => [b.name, b.binding]).sort()).toEqual(fn.resources.map((r) => [r.name, r.binding]).sort());
      // Same binding numbers and kinds as the packed twin, tensors renamed *Half → *F16: what
      // encodeElementwise binds (tensor views `${name}F16`, the other resources by their names).
      expect(native.bindings.map((b) => [b.name.replace(/F16$/, 'Half'), b.binding, b.type])).toEqual(
        twin.bindings.map((b) => [b.name, b.binding, b.type]),
      );
      expect(native.bindings.map((b) => b.name).sort()).toEqual(
        ['params', 'xF16', 'yF16', 'residualF16', 'channelStats', 'weight', 'bias', 'runningMean', 'runningVar'].sort(),
      );
      const storage = fn.resources.filter((r) => r.name.endsWith('F16'));
      type Format = { name?: string; format?: Format };
      expect(
        storage.map((r) => {
          const t = r.type as Format;
          return `${t.name}<${t.format?.name}<${t.format?.format?.name}>>`;
        }),
      ).toEqual(Array(3).fill('array<vec2<f16>>'));
      // One uniform layout for both: the host fills it once.
      expect(native.uniform).toEqual(twin.uniform);
      // The override set the host passes (no HALF_FORMAT: f16 is the storage type).
      expect(native.overrides).toEqual(expect.arrayContaining(['ACTIVATION', 'RESIDUAL', 'CONTIGUOUS', 'WORKGROUP_SIZE']));
    }
  });
});

describe('float16 kernel selection on this device', () => {
  let gpu: BatchNormContext;
  let cpu: BatchNormContext;
  beforeAll(async () => {
    gpu = await contextFor('webgpu');
    cpu = await contextFor('cpu');
  });
  afterAll(() => {
    gpu.destroy();
    cpu.destroy();
  });

  it.each([SHAPES[0], SHAPES[2]] as Shape[])(
    'native f16 exactly when the device has shader-f16, packed otherwise; y within 1 ulp of the CPU oracle: %s',
    async ({ shape, layout }) => {
      count('webgpu');
      const device = gpu.device as GPUDevice;
      const native = device.features.has(SHADER_F16);
      const keys: string[] = [];
      const realGet = BindGroupCache.prototype.get;
      const spy = vi.spyOn(BindGroupCache.prototype, 'get').mockImplementation(function (this: BindGroupCache, kernel, resources) {
        keys.push(kernel.key.split('|')[0] ?? '');
        return realGet.call(this, kernel, resources);
      });
      const bits = halfData('float16', sizeOf(shape), 77);
      const run = async (ctx: BatchNormContext): Promise<Uint16Array> => {
        const bn = moduleFor(ctx, shape);
        await setParams(bn, shape[1] as number);
        const x = ctx.tensor(bits, shape, { dtype: 'float16', layout });
        const y = bn.forward(x);
        const out = await y.readBits();
        for (const t of [x, y]) t.destroy();
        bn.destroy();
        return out;
      };
      let yGpu: Uint16Array;
      try {
        yGpu = await run(gpu);
      } finally {
        spy.mockRestore();
      }
      const order = layout === 'channels_last' ? 'cl' : 'cf';
      expect(keys).toContain(native ? `normalize-f16.normalize_${order}2n` : `normalize.normalize_${order}2h`);
      expect(maxUlps('float16', yGpu, await run(cpu)).ulps).toBeLessThanOrEqual(1);
    },
  );
});

describe.each(BACKENDS)('half-precision argument checks on %s (typed errors before any work)', (backend: Backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it('parameters stay float32; outputs, gradients and the residual follow the input; SyncBatchNorm, ONNX and fold are float32-only', async () => {
    count(backend);
    const shape = [2, 3, 4];
    const x = ctx.tensor(new Uint16Array(24).fill(0x3c00), shape, { dtype: 'float16' });
    const x32 = ctx.tensor(new Float32Array(24).fill(1), shape);
    const xb = ctx.tensor(new Uint16Array(24).fill(0x3f80), shape, { dtype: 'bfloat16' });
    const c16 = ctx.tensor([1, 1, 1], [3], { dtype: 'float16' });
    const c32 = ctx.tensor([1, 1, 1], [3]);
    const bn = new BatchNorm1d(ctx, 3);
    const submits = ctx.stats.submits;
    expect(() => bn.forward(x, { out: x32 })).toThrow(/output .*must have the input's dtype 'float16', got 'float32'/);
    expect(() => bn.forward(x, { epilogue: { residual: xb } })).toThrow(ArgumentError);
    expect(() => bn.forward(x, { epilogue: { activation: { kind: 'prelu', weight: c16 } } })).toThrow(/must have dtype 'float32'/);
    expect(() => bn.forward(x, { batchStats: { mean: c16 } })).toThrow(ArgumentError);
    expect(() => batchNorm(ctx, x, { runningMean: c16, runningVar: c32, training: false })).toThrow(
      /runningMean .*must have dtype 'float32'/,
    );
    expect(() => onnxBatchNormalization(ctx, { X: x, scale: c32, B: c32, inputMean: c32, inputVar: c32 })).toThrow(ArgumentError);
    const sync = new SyncBatchNorm(ctx, 3);
    await expect(sync.momentsPartial(x)).rejects.toThrow(/input .*must have dtype 'float32', got 'float16'/);
    expect(() => foldBatchNormTensors(bn.eval(), { weight: ctx.tensor(new Uint16Array(3), [3, 1], { dtype: 'float16' }) })).toThrow(
      ArgumentError,
    );
    bn.train();
    const y = bn.forward(x);
    expect(() => bn.backward(x32)).toThrow(/gradOutput .*must have the input's dtype 'float16'/);
    expect(() => batchNormBackward(ctx, { gradOutput: xb, input: x, saveMean: c32, saveInvstd: c32 })).toThrow(ArgumentError);
    expect(() => batchNormBackward(ctx, { gradOutput: x, input: x, saveMean: c16, saveInvstd: c32 })).toThrow(ArgumentError);
    // Nothing of the rejected calls reached the GPU.
    expect(ctx.stats.submits).toBe(submits + (backend === 'webgpu' ? 1 : 0));
    const fwd = batchNorm(ctx, xb, { training: true });
    expect(fwd.dtype).toBe('bfloat16');
    for (const t of [x, x32, xb, c16, c32, y, fwd]) t.destroy();
    bn.destroy();
    sync.destroy();
  });
});

describe("half-precision stores on WebGPU: overflow, subnormals and ties round as the CPU oracle (torch's rounding)", () => {
  let gpu: BatchNormContext;
  let cpu: BatchNormContext;
  beforeAll(async () => {
    gpu = await contextFor('webgpu');
    cpu = await contextFor('cpu');
  });
  afterAll(() => {
    gpu.destroy();
    cpu.destroy();
  });

  // Eval with running mean 0 and variance 1 − eps·(…) ≈ 1: y ≈ x·weight, so the weights push the
  // outputs past the format's range (to ±Inf) and (float16) deep into its subnormals.
  it.each([
    ['float16', [4e4, 1e-6, 3e-5, 1]],
    ['bfloat16', [1e38, 3, 1e-3, 1]],
  ] as Array<[HalfDType, number[]]>)('%s', async (dtype, weights) => {
    count('webgpu');
    const shape = [16, 4, 3];
    const bits = halfData(dtype, sizeOf(shape), 5, 0, 3);
    const run = async (ctx: BatchNormContext): Promise<Uint16Array> => {
      const bn = new BatchNorm1d(ctx, 4).eval();
      bn.weight?.write(weights);
      bn.bias?.write([0, 0, 0, 0]);
      bn.runningVar?.write([1, 1, 1, 1]);
      const x = ctx.tensor(bits, shape, { dtype });
      const y = bn.forward(x);
      const out = await y.readBits();
      for (const t of [x, y]) t.destroy();
      bn.destroy();
      return out;
    };
    const yg = await run(gpu);
    const yc = await run(cpu);
    const worst = maxUlps(dtype, yg, yc);
    expect(worst.ulps, `worst at ${worst.at}`).toBeLessThanOrEqual(1);
    const vals = Array.from(yc, (b) => halfValue(dtype, b));
    // The cases are there: infinities, and (float16) subnormal outputs.
    expect(vals.some((v) => v === Number.POSITIVE_INFINITY) && vals.some((v) => v === Number.NEGATIVE_INFINITY)).toBe(true);
    if (dtype === 'float16') expect(vals.some((v) => v !== 0 && Math.abs(v) < 2 ** -14)).toBe(true);
    // Infinities are exactly where the CPU has them (no finite garbage from an out-of-range store).
    for (let j = 0; j < vals.length; j++) {
      if (!Number.isFinite(vals[j] as number)) expect(halfValue(dtype, yg[j] as number), `y[${j}]`).toBe(vals[j]);
    }
  });
});

describe('half precision with either access pattern on WebGPU (coalesced: real GPUs; contiguous: fallback adapters)', () => {
  const contexts: BatchNormContext[] = [];
  afterAll(() => {
    for (const c of contexts) c.destroy();
  });

  it.each(['coalesced', 'contiguous'] as const)(
    '%s: forward and backward within 1 ulp of the CPU oracle, every shape and dtype',
    async (accessPattern) => {
      const gpu = await createContext({ backend: 'webgpu', accessPattern });
      const cpu = await contextFor('cpu');
      contexts.push(gpu, cpu);
      // [64, 4, 8]: enough rows that the coalesced walk's lane count is a multiple of C (laneChannelStep 0).
      // [4, 8, 3, 3] channels-last: C / 2 words a multiple of 4, the contiguous walk's 8-channel groups.
      const shapes: Shape[] = [
        ...SHAPES,
        { shape: [64, 4, 8], layout: 'channels_first', what: 'fixed channel per lane' },
        { shape: [4, 8, 3, 3], layout: 'channels_last', what: 'contiguous channels-last quads' },
      ];
      for (const dtype of DTYPES) {
        for (const { shape, layout } of shapes) {
          count('webgpu');
          const n = sizeOf(shape);
          const xBits = halfData(dtype, n, 900 + n);
          const dyBits = halfData(dtype, n, 901 + n, 0, 1);
          const run = async (ctx: BatchNormContext): Promise<Uint16Array[]> => {
            const bn = moduleFor(ctx, shape);
            await setParams(bn, shape[1] as number);
            const x = ctx.tensor(xBits, shape, { dtype, layout });
            const dy = ctx.tensor(dyBits, shape, { dtype, layout });
            const y = bn.forward(x);
            const g = bn.backward(dy);
            const yEval = bn.eval().forward(x);
            const out = [await y.readBits(), await (g.gradInput as Tensor).readBits(), await yEval.readBits()];
            for (const t of [x, dy, y, yEval, g.gradInput, g.gradWeight, g.gradBias]) t?.destroy();
            bn.destroy();
            return out;
          };
          const [yg, gg, eg] = await run(gpu);
          const [yc, gc, ec] = await run(cpu);
          const what = `${dtype} [${shape.join(',')}] ${layout}`;
          expect(maxUlps(dtype, yg as Uint16Array, yc as Uint16Array).ulps, `${what} y`).toBeLessThanOrEqual(1);
          expect(maxUlps(dtype, eg as Uint16Array, ec as Uint16Array).ulps, `${what} eval y`).toBeLessThanOrEqual(1);
          // grad_input: the float32 cancellation bound of the backward tests, relative to the CPU's float64 result.
          const gv = values(dtype, gg as Uint16Array);
          const cv = values(dtype, gc as Uint16Array);
          for (let j = 0; j < n; j++) {
            const tol = 2 * spacing(dtype, cv[j] as number) + 64 * F32_EPS * 8;
            expect(Math.abs((gv[j] as number) - (cv[j] as number)), `${what} grad_input[${j}]`).toBeLessThanOrEqual(tol);
          }
        }
      }
    },
  );
});

describe('half-precision tensors over caller GPUBuffers at unaligned offsets', () => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
  });
  afterAll(() => ctx.destroy());

  it.each(DTYPES)(
    "%s: encodeForward / encodeBackward in place; the odd count's padding half and the neighbours stay untouched",
    async (dtype) => {
      count('webgpu');
      const device = ctx.device as GPUDevice;
      const shape = [3, 3, 5];
      const n = sizeOf(shape);
      // Element 0 at byte 12 (not a multiple of the binding alignment), sentinels around the values.
      const byteOffset = 12;
      const halves = 64;
      const sentinel = 0x5a5a;
      const xBits = halfData(dtype, n, 41);
      const dyBits = halfData(dtype, n, 42, 0, 1);
      const buffers = [xBits, null, dyBits, null].map((values, i) => {
        const init = new Uint16Array(halves).fill(sentinel);
        if (values) init.set(values, byteOffset / 2);
        const b = device.createBuffer({ label: `test.half.caller${i}`, size: halves * 2, usage: 0x80 | 0x04 | 0x08 });
        device.queue.writeBuffer(b, 0, init);
        return b;
      });
      const [x, y, dy, dx] = buffers.map((b, i) => ctx.tensorFromBuffer(b, shape, { dtype, byteOffset, label: `t${i}` })) as [
        Tensor,
        Tensor,
        Tensor,
        Tensor,
      ];
      const bn = new BatchNorm1d(ctx, 3);
      const encoder = device.createCommandEncoder();
      bn.encodeForward(encoder, x, y);
      bn.encodeBackward(encoder, dy, { gradInput: dx });
      device.queue.submit([encoder.finish()]);
      await ctx.sync();
      const whole = await Promise.all(buffers.map((b) => ctx.tensorFromBuffer(b, [halves], { dtype }).readBits()));
      const cpu = await contextFor('cpu');
      const bnc = new BatchNorm1d(cpu, 3);
      const yRef = await bnc.forward(cpu.tensor(xBits, shape, { dtype })).readBits();
      const dxRef = await (bnc.backward(cpu.tensor(dyBits, shape, { dtype })).gradInput as Tensor).readBits();
      cpu.destroy();
      const valuesOf = (i: number): Uint16Array => (whole[i] as Uint16Array).subarray(byteOffset / 2, byteOffset / 2 + n);
      expect(maxUlps(dtype, valuesOf(1), yRef).ulps).toBeLessThanOrEqual(1);
      expect(Array.from(valuesOf(0))).toEqual(Array.from(xBits));
      const gv = values(dtype, valuesOf(3));
      const cv = values(dtype, dxRef);
      // dx against the CPU's float64 result: a step of rounding on each side plus float32 cancellation.
      for (let j = 0; j < n; j++)
        expect(Math.abs((gv[j] as number) - (cv[j] as number))).toBeLessThanOrEqual(2 * spacing(dtype, cv[j] as number) + 1e-5);
      // Outside the values (before them, the odd count's padding half, after), every half is the sentinel.
      for (const [i, w] of whole.entries()) {
        for (let h = 0; h < halves; h++) {
          if (h >= byteOffset / 2 && h < byteOffset / 2 + n) continue;
          expect(w[h], `buffer ${i} half ${h}`).toBe(sentinel);
        }
      }
      bn.destroy();
      for (const b of buffers) b.destroy();
    },
  );
});
