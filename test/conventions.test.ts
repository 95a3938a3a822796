/**
 * Framework conventions: for each preset, 3 training steps and an eval on both backends and both
 * layouts against float64 references written from that framework's published formulas
 * (test/helpers/convention-reference.ts cites them); a closed-form property test of the running
 * statistics; numpy-ml's backward; edge cases; state names; batch statistics as outputs.
 *
 * Tolerances (per quantity, float32 kernels vs float64 references):
 *   y (train and eval):      1e-5 · (1 + |y|)      observed ≤ 2e-6
 *   running mean / variance: 1e-6 · (1 + |r|)      three float32 roundings of O(1) values
 *   batch statistics:        1e-5 · (1 + |v|)
 *   numpy-ml gradients:      1e-4 · (1 + |g|)      sums over up to 32 values
 * Every wrong convention moves running_var by at least momentum·var/(m − 1) ≥ 1e-4 here (m ≤ 16).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ArgumentError,
  BatchNormError,
  BatchNorm1d,
  BatchNorm2d,
  CONVENTIONS,
  InsufficientValuesError,
  ShapeError,
  StateDictError,
  batchNorm,
  onnxBatchNormalization,
  type BatchNorm,
  type BatchNormContext,
  type ConventionName,
  type Layout,
  type Tensor,
} from '../src/index.js';
import { BindGroupCache } from '../src/gpu/object-caches.js';
import { BACKENDS, caseCounter, checkClose, contextFor, fromLayout, gaussian, rng, toLayout } from './helpers/backends.js';
import { evalRef, moments, numpyMlBackwardRef, trainStepRef, type RefHyper, type RefState } from './helpers/convention-reference.js';

const count = caseCounter('conventions');
const PRESETS = Object.keys(CONVENTIONS) as ConventionName[];
const LAYOUTS: readonly Layout[] = ['channels_first', 'channels_last'];
const maxErr: Record<string, number> = {};
afterAll(() => console.log(`[max error] conventions: ${JSON.stringify(maxErr)}`));

const Y_TOL = (ref: ArrayLike<number>) => (i: number) => 1e-5 * (1 + Math.abs(ref[i] as number));
const RUNNING_TOL = (ref: ArrayLike<number>) => (i: number) => 1e-6 * (1 + Math.abs(ref[i] as number));

/** The framework's numbers as its user types them: its defaults; MATLAB with VarianceDecay set apart. */
function hyperOf(name: ConventionName): RefHyper {
  const c = CONVENTIONS[name];
  return name === 'matlab' ? { eps: c.eps, momentum: c.momentum, varianceMomentum: 0.3 } : { eps: c.eps, momentum: c.momentum };
}

function close(key: string, what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: (i: number) => number): void {
  const r = checkClose(what, actual, expected, tol);
  expect(r.failure, r.failure ?? '').toBeNull();
  maxErr[key] = Math.max(maxErr[key] ?? 0, r.maxErr);
}

function randomData(next: () => number, size: number, c: number, s: number): Float64Array {
  // Channel offsets keep the means away from 0, so a wrong momentum meaning shows in running_mean.
  return Float64Array.from({ length: size }, (_, i) => 0.7 * ((Math.floor(i / s) % c) + 1) + 1.3 * gaussian(next));
}

function randomState(next: () => number, c: number): RefState {
  return {
    weight: Float64Array.from({ length: c }, () => 0.5 + next()),
    bias: Float64Array.from({ length: c }, () => next() - 0.5),
    runningMean: Float64Array.from({ length: c }, () => next() - 0.5),
    runningVar: Float64Array.from({ length: c }, () => 0.5 + next()),
  };
}

/** Loads `st` into `bn` under its convention's state names (float32-rounded in `st` too). */
function loadState(bn: BatchNorm, st: RefState): void {
  const names = bn.convention.stateNames;
  for (const k of ['weight', 'bias', 'runningMean', 'runningVar'] as const) st[k] = Float64Array.from(Float32Array.from(st[k]));
  const sd: Record<string, Float32Array | number> = {};
  if (bn.weight) sd[names.weight] = Float32Array.from(st.weight);
  if (bn.bias) sd[names.bias] = Float32Array.from(st.bias);
  sd[names.runningMean] = Float32Array.from(st.runningMean);
  sd[names.runningVar] = Float32Array.from(st.runningVar);
  if (names.tracked) sd[names.tracked] = 0;
  bn.loadStateDict(sd);
}

async function readState(bn: BatchNorm): Promise<{ runningMean: Float32Array; runningVar: Float32Array }> {
  const sd = await bn.stateDict();
  const names = bn.convention.stateNames;
  const rm = sd[names.runningMean];
  const rv = sd[names.runningVar];
  if (!(rm instanceof Float32Array) || !(rv instanceof Float32Array)) throw new Error('running stats missing from stateDict');
  return { runningMean: rm, runningVar: rv };
}

describe.each(BACKENDS)('conventions on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  const input = (logical: ArrayLike<number>, shape: number[], layout: Layout): Tensor =>
    ctx.tensor(toLayout(logical, shape, layout), shape, { layout, label: 'x' });

  /** 3 training steps and an eval of `bn` on `shape`, checked against the framework's formulas. */
  async function threeStepsAndEval(name: ConventionName, bn: BatchNorm, shape: number[], layout: Layout, seed: number): Promise<void> {
    const next = rng(seed);
    const c = shape[1] ?? 0;
    const s = shape.slice(2).reduce((a, b) => a * b, 1);
    const size = shape.reduce((a, b) => a * b, 1);
    const h = hyperOf(name);
    const st = randomState(next, c);
    loadState(bn, st);
    for (let step = 0; step < 3; step++) {
      const logical = Float64Array.from(Float32Array.from(randomData(next, size, c, s)));
      const x = input(logical, shape, layout);
      const y = bn.forward(x);
      const ref = trainStepRef(name, logical, shape, st, h);
      close(`${backend} y`, `${name} step ${step} y`, fromLayout(await y.read(), shape, layout), ref, Y_TOL(ref));
      x.destroy();
      y.destroy();
    }
    const state = await readState(bn);
    close(`${backend} running`, `${name} running_mean`, state.runningMean, st.runningMean, RUNNING_TOL(st.runningMean));
    close(`${backend} running`, `${name} running_var`, state.runningVar, st.runningVar, RUNNING_TOL(st.runningVar));
    bn.eval();
    const logical = Float64Array.from(Float32Array.from(randomData(next, size, c, s)));
    const x = input(logical, shape, layout);
    const y = bn.forward(x);
    const ref = evalRef(logical, shape, st, h.eps);
    close(`${backend} y`, `${name} eval y`, fromLayout(await y.read(), shape, layout), ref, Y_TOL(ref));
    x.destroy();
    y.destroy();
  }

  describe.each(PRESETS)('preset %s', (name) => {
    const h = hyperOf(name);
    const options = {
      convention: name,
      eps: h.eps,
      momentum: h.momentum,
      ...(h.varianceMomentum === undefined ? {} : { varianceMomentum: h.varianceMomentum }),
    };
    for (const n of [2, 7, 8]) {
      for (const layout of LAYOUTS) {
        it(`BatchNorm2d [${n}, 3, 1, 2] ${layout}: 3 training steps and eval match the framework`, async () => {
          const bn = new BatchNorm2d(ctx, 3, options);
          await threeStepsAndEval(name, bn, [n, 3, 1, 2], layout, 1000 * n + (layout === 'channels_last' ? 1 : 0));
          bn.destroy();
          count(backend);
        });
      }
      // tf.keras 2 takes its fused path only for rank 4 and 5 inputs.
      if (name === 'tf-keras2-fused') continue;
      it(`BatchNorm1d [${n}, 4]: 3 training steps and eval match the framework (m = n)`, async () => {
        const bn = new BatchNorm1d(ctx, 4, options);
        await threeStepsAndEval(name, bn, [n, 4], 'channels_first', 77 + n);
        bn.destroy();
        count(backend);
      });
    }

    it('property: running statistics after k steps equal the closed form of the framework’s update', async () => {
      // Closed form of r_t = a·r_{t−1} + (1 − a)·s_t (a = weight of the old value):
      //   r_k = a^k·r_0 + Σ_{t=1..k} (1 − a)·a^(k−t)·s_t,
      // with a and s_t as each framework defines them (see trainStepRef for the cited recursions).
      const conv = CONVENTIONS[name];
      const oldWeight = (m: number): number => (conv.momentumMeaning === 'running' ? m : 1 - m);
      const aMean = oldWeight(h.momentum);
      const aVar = oldWeight(h.varianceMomentum ?? h.momentum);
      for (const k of [1, 3, 6]) {
        const next = rng(31 * k + name.length);
        const shape = [5, 2];
        const bn = new BatchNorm1d(ctx, 2, options);
        const r0 = randomState(next, 2);
        loadState(bn, r0);
        const closedMean = r0.runningMean.map((v) => Math.pow(aMean, k) * v);
        const closedVar = r0.runningVar.map((v) => Math.pow(aVar, k) * v);
        for (let t = 1; t <= k; t++) {
          const logical = Float64Array.from(Float32Array.from(randomData(next, 10, 2, 1)));
          const mo = moments(logical, shape);
          const sVar = conv.varianceEstimator === 'biased' ? mo.popVar : mo.sampleVar;
          for (let ch = 0; ch < 2; ch++) {
            closedMean[ch] = (closedMean[ch] as number) + (1 - aMean) * Math.pow(aMean, k - t) * (mo.mean[ch] as number);
            closedVar[ch] = (closedVar[ch] as number) + (1 - aVar) * Math.pow(aVar, k - t) * (sVar[ch] as number);
          }
          const x = input(logical, shape, 'channels_first');
          bn.forward(x).destroy();
          x.destroy();
        }
        const state = await readState(bn);
        close(`${backend} running`, `${name} k=${k} running_mean`, state.runningMean, closedMean, RUNNING_TOL(closedMean));
        close(`${backend} running`, `${name} k=${k} running_var`, state.runningVar, closedVar, RUNNING_TOL(closedVar));
        bn.destroy();
      }
      count(backend);
    });

    it('stateDict and loadStateDict use the framework’s names, strictly', async () => {
      const names = CONVENTIONS[name].stateNames;
      const bn = new BatchNorm1d(ctx, 3, { convention: name });
      const sd = await bn.stateDict();
      const expected = [names.weight, names.bias, names.runningMean, names.runningVar, ...(names.tracked ? [names.tracked] : [])];
      expect(Object.keys(sd)).toEqual(expected);
      const { [names.runningVar]: _dropped, ...missing } = sd;
      expect(() => bn.loadStateDict(missing)).toThrow(StateDictError);
      expect(() => bn.loadStateDict(missing)).toThrow(
        new RegExp(`keys must be exactly \\[${expected.join(', ')}\\]; missing \\[${names.runningVar}\\]`),
      );
      bn.loadStateDict({ ...sd, [names.runningMean]: [1, 2, 3] });
      expect(Array.from((await bn.stateDict())[names.runningMean] as Float32Array)).toEqual([1, 2, 3]);
      bn.destroy();
      count(backend);
    });
  });

  it('numpy-ml backward: gradients match BatchNorm2D._bwd (layers.py L1192-1215), n = 2, 7, 8, both layouts', async () => {
    // Our backward differentiates the last forward; numpy-ml's layer sums the gradients of every
    // forward since its last update (layers.py L1182-1188). With one forward per update they agree.
    for (const n of [2, 7, 8]) {
      for (const layout of LAYOUTS) {
        const next = rng(500 + n);
        const shape = [n, 3, 2, 2];
        const size = n * 12;
        const bn = new BatchNorm2d(ctx, 3, { convention: 'numpy-ml' });
        const st = randomState(next, 3);
        loadState(bn, st);
        const logical = Float64Array.from(Float32Array.from(randomData(next, size, 3, 4)));
        const dyLogical = Float64Array.from(Float32Array.from({ length: size }, () => gaussian(next)));
        const x = input(logical, shape, layout);
        const dy = input(dyLogical, shape, layout);
        bn.forward(x).destroy();
        const g = bn.backward(dy);
        const ref = numpyMlBackwardRef(logical, dyLogical, shape, st.weight, CONVENTIONS['numpy-ml'].eps);
        const tol = (r: ArrayLike<number>) => (i: number) => 1e-4 * (1 + Math.abs(r[i] as number));
        if (!g.gradInput || !g.gradWeight || !g.gradBias) throw new Error('missing gradients');
        close(`${backend} numpy-ml grad`, `n=${n} ${layout} dX`, fromLayout(await g.gradInput.read(), shape, layout), ref.dX, tol(ref.dX));
        close(`${backend} numpy-ml grad`, `n=${n} ${layout} dScaler`, await g.gradWeight.read(), ref.dScaler, tol(ref.dScaler));
        close(`${backend} numpy-ml grad`, `n=${n} ${layout} dIntercept`, await g.gradBias.read(), ref.dIntercept, tol(ref.dIntercept));
        for (const t of [x, dy, g.gradInput, g.gradWeight, g.gradBias]) t.destroy();
        bn.destroy();
        count(backend);
      }
    }
  });

  describe('edge cases follow the convention', () => {
    it('one value per channel in training: Keras and ONNX give y = beta; PyTorch raises', async () => {
      const x = ctx.tensor([0.5, -2, 7], [1, 3]);
      for (const name of ['keras', 'tf-keras2-fused', 'onnx', 'numpy-ml', 'mathematica'] as const) {
        const bn = new BatchNorm1d(ctx, 3, { convention: name });
        const names = bn.convention.stateNames;
        bn.loadStateDict({
          [names.weight]: [2, 3, 4],
          [names.bias]: [0.25, -1, 3],
          [names.runningMean]: [1, 1, 1],
          [names.runningVar]: [2, 2, 2],
        });
        const y = bn.forward(x);
        expect(Array.from(await y.read()), name).toEqual([0.25, -1, 3]);
        // Variance 0 enters the running variance: r = m·2 + (1 − m)·0.
        const m = CONVENTIONS[name].momentum;
        close(
          `${backend} running`,
          `${name} single-value running_var`,
          (await readState(bn)).runningVar,
          [2 * m, 2 * m, 2 * m],
          () => 1e-6,
        );
        y.destroy();
        bn.destroy();
      }
      const torchBn = new BatchNorm1d(ctx, 3);
      expect(() => torchBn.forward(x)).toThrow(InsufficientValuesError);
      expect(() => batchNorm(ctx, x, { training: true })).toThrow(InsufficientValuesError);
      const y = batchNorm(ctx, x, { training: true, convention: 'onnx', bias: ctx.tensor([1, 2, 3], [3]) });
      expect(Array.from(await y.read())).toEqual([1, 2, 3]);
      y.destroy();
      torchBn.destroy();
      x.destroy();
      count(backend);
    });

    it('eps: 0 accepted by ONNX and Keras, rejected by PyTorch as before; MATLAB minimum; tf.keras floor', async () => {
      const x = ctx.tensor([1, 2, 3, 5], [4, 1]);
      const bn = new BatchNorm1d(ctx, 1, { convention: 'onnx', eps: 0 });
      const y = bn.forward(x);
      const ref = [1, 2, 3, 5].map((v) => (v - 2.75) / Math.sqrt(2.1875));
      close(`${backend} y`, 'onnx eps=0 y', await y.read(), ref, Y_TOL(ref));
      expect(() => new BatchNorm1d(ctx, 1, { convention: 'keras', eps: 0 })).not.toThrow();
      expect(() => new BatchNorm1d(ctx, 1, { eps: 0 })).toThrow(ArgumentError);
      expect(() => batchNorm(ctx, x, { training: true, eps: 0 })).toThrow(ArgumentError);
      // MATLAB: "Epsilon ... equal to or larger than 1e-5".
      expect(() => new BatchNorm1d(ctx, 1, { convention: 'matlab', eps: 1e-6 })).toThrow(
        /eps must be >= 0.00001 under the 'matlab' convention/,
      );
      // tf.nn.fused_batch_norm raises epsilon to 1.001e-5 (tensorflow/python/ops/nn_impl.py).
      const x4 = ctx.tensor([1, 2, 3, 5], [4, 1, 1, 1]);
      const fused = new BatchNorm2d(ctx, 1, { convention: 'tf-keras2-fused', eps: 0 });
      expect(fused.eps).toBe(0);
      const yf = fused.forward(x4);
      const refF = [1, 2, 3, 5].map((v) => (v - 2.75) / Math.sqrt(2.1875 + 1.001e-5));
      close(`${backend} y`, 'tf fused eps floor y', await yf.read(), refF, Y_TOL(refF));
      for (const t of [x4, yf]) t.destroy();
      fused.destroy();
      y.destroy();
      x.destroy();
      bn.destroy();
      count(backend);
    });

    it('empty batch: tf.keras skips the update; the others raise ShapeError', async () => {
      const x = ctx.tensor([], [0, 3, 2, 2], { layout: 'channels_last' });
      const bn = new BatchNorm2d(ctx, 3, { convention: 'tf-keras2-fused' });
      const before = await readState(bn);
      const y = bn.forward(x);
      expect(y.shape).toEqual([0, 3, 2, 2]);
      expect(y.layout).toBe('channels_last');
      const after = await readState(bn);
      expect(Array.from(after.runningMean)).toEqual(Array.from(before.runningMean));
      expect(Array.from(after.runningVar)).toEqual(Array.from(before.runningVar));
      y.destroy();
      for (const convention of ['keras', 'pytorch', 'onnx'] as const) {
        const other = new BatchNorm2d(ctx, 3, { convention });
        expect(() => other.forward(x)).toThrow(ShapeError);
        other.destroy();
      }
      bn.destroy();
      x.destroy();
      count(backend);
    });

    it('momentum options are validated in their meaning', () => {
      expect(() => new BatchNorm1d(ctx, 2, { convention: 'keras', momentum: null })).toThrow(/momentum must be a number in \[0, 1\]/);
      expect(() => new BatchNorm1d(ctx, 2, { momentum: null, varianceMomentum: 0.2 })).toThrow(ArgumentError);
      expect(() => new BatchNorm1d(ctx, 2, { momentumMeaning: 'new' as 'batch' })).toThrow(/momentumMeaning must be 'batch' or 'running'/);
      expect(() => new BatchNorm1d(ctx, 2, { varianceEstimator: 'sample' as 'biased' })).toThrow(
        /varianceEstimator must be 'unbiased' or 'biased'/,
      );
      expect(() => new BatchNorm1d(ctx, 2, { convention: 'caffe' as 'keras' })).toThrow(/convention must be one of 'pytorch', 'keras'/);
      const bn = new BatchNorm1d(ctx, 2, { convention: 'keras' });
      expect([bn.eps, bn.momentum, bn.momentumMeaning, bn.varianceEstimator]).toEqual([1e-3, 0.99, 'running', 'biased']);
      expect(() => {
        bn.momentum = null;
      }).toThrow(ArgumentError);
      bn.destroy();
      count(backend);
    });
  });

  it('malformed convention arguments: every one a typed error, thrown before anything is allocated', () => {
    const x = ctx.tensor(
      new Float32Array(8).map((_, i) => i),
      [2, 4],
    );
    const bn = new BatchNorm1d(ctx, 4, { convention: 'keras' });
    const bad = <T>(v: unknown): T => v as T;
    const c4 = ctx.tensor([1, 1, 1, 1], [4]);
    const cases: Array<() => unknown> = [
      () => new BatchNorm1d(ctx, 4, { convention: bad(5) }),
      () => new BatchNorm1d(ctx, 4, { scale: bad('no') }),
      () => new BatchNorm1d(ctx, 4, { varianceMomentum: bad('a') }),
      () => new BatchNorm1d(ctx, 4, { varianceMomentum: 2 }),
      () => bn.forward(x, { batchStats: bad(5) }),
      () => bn.forward(x, { batchStats: { mean: bad({}) } }),
      () => bn.forward(x, { batchStats: { mean: c4, invstd: c4 } }),
      () => batchNorm(ctx, x, { convention: bad('tf'), training: true }),
      () => batchNorm(ctx, x, { training: true, batchStats: { variance: x } }),
      () => onnxBatchNormalization(bad(null), bad(null)),
      () => onnxBatchNormalization(ctx, bad(null)),
      () => onnxBatchNormalization(ctx, { X: x, scale: c4, B: c4, inputMean: c4, inputVar: c4 }, bad(5)),
      () => onnxBatchNormalization(ctx, { X: x, scale: c4, B: c4, inputMean: c4, inputVar: c4 }, { trainingMode: bad(1) }),
    ];
    const buffers = ctx.stats.buffersCreated;
    const tracked = bn.numBatchesTracked;
    cases.forEach((fn, i) => {
      let thrown: unknown = 'nothing';
      try {
        fn();
      } catch (e) {
        thrown = e;
      }
      expect({ case: i, typed: thrown instanceof BatchNormError }).toEqual({ case: i, typed: true });
    });
    expect(ctx.stats.buffersCreated).toBe(buffers);
    expect(bn.numBatchesTracked).toBe(tracked);
    for (const t of [x, c4]) t.destroy();
    bn.destroy();
    count(backend);
  });

  it('scale and center independently (Keras scale/center): state, forward and backward', async () => {
    const shape = [4, 2];
    const logical = [1, 4, 2, -1, 0, 3, 5, 2];
    const x = ctx.tensor(logical, shape);
    const dy = ctx.tensor([1, -1, 0.5, 2, -0.5, 1, 0, 3], shape);
    const mo = moments(logical, shape);
    for (const [scale, center] of [
      [false, true],
      [true, false],
    ] as const) {
      const bn = new BatchNorm1d(ctx, 2, { convention: 'keras', scale, center });
      expect([bn.scale, bn.center, bn.affine, bn.weight === null, bn.bias === null]).toEqual([scale, center, false, !scale, !center]);
      const sd = await bn.stateDict();
      expect(Object.keys(sd)).toEqual([...(scale ? ['gamma'] : []), ...(center ? ['beta'] : []), 'moving_mean', 'moving_variance']);
      bn.loadStateDict({
        ...(scale ? { gamma: [2, 3] } : {}),
        ...(center ? { beta: [0.5, -0.5] } : {}),
        moving_mean: [0, 0],
        moving_variance: [1, 1],
      });
      const y = bn.forward(x);
      const st: RefState = {
        weight: Float64Array.from(scale ? [2, 3] : [1, 1]),
        bias: Float64Array.from(center ? [0.5, -0.5] : [0, 0]),
        runningMean: new Float64Array(2),
        runningVar: new Float64Array(2),
      };
      const ref = trainStepRef('keras', logical, shape, st, hyperOf('keras'));
      close(`${backend} y`, `scale=${scale} center=${center} y`, await y.read(), ref, Y_TOL(ref));
      expect(mo.m).toBe(4);
      const g = bn.backward(dy);
      expect(g.gradWeight === null).toBe(!scale);
      expect(g.gradBias === null).toBe(!center);
      if (g.gradBias) close(`${backend} grad`, 'gradBias', await g.gradBias.read(), [1, 5], () => 1e-5);
      for (const t of [y, g.gradInput, g.gradWeight, g.gradBias]) t?.destroy();
      bn.destroy();
    }
    x.destroy();
    dy.destroy();
    count(backend);
  });

  it('batch statistics as outputs: mean, invstd and biased variance of the batch, in the same passes', async () => {
    const next = rng(9);
    for (const layout of LAYOUTS) {
      const shape = [3, 5, 2, 3];
      const logical = Float64Array.from(Float32Array.from(randomData(next, 90, 5, 6)));
      const x = input(logical, shape, layout);
      const out = {
        mean: ctx.tensor(new Float32Array(5), [5]),
        invstd: ctx.tensor(new Float32Array(5), [5]),
        variance: ctx.tensor(new Float32Array(5), [5]),
      };
      const bn = new BatchNorm2d(ctx, 5, { convention: 'matlab' });
      bn.forward(x, { batchStats: out }).destroy();
      const mo = moments(logical, shape);
      const invstd = mo.popVar.map((v) => 1 / Math.sqrt(v + 1e-5));
      const tol = (r: ArrayLike<number>) => (i: number) => 1e-5 * (1 + Math.abs(r[i] as number));
      close(`${backend} batch stats`, `${layout} mean`, await out.mean.read(), mo.mean, tol(mo.mean));
      close(`${backend} batch stats`, `${layout} invstd`, await out.invstd.read(), invstd, tol(invstd));
      close(`${backend} batch stats`, `${layout} variance`, await out.variance.read(), mo.popVar, tol(mo.popVar));
      // The functional API writes the same outputs.
      const fm = ctx.tensor(new Float32Array(5), [5]);
      batchNorm(ctx, x, { training: true, batchStats: { mean: fm } }).destroy();
      close(`${backend} batch stats`, `${layout} functional mean`, await fm.read(), mo.mean, tol(mo.mean));
      bn.eval();
      expect(() => bn.forward(x, { batchStats: { mean: fm } })).toThrow(/batchStats needs a forward that computes batch statistics/);
      expect(() => batchNorm(ctx, x, { training: true, batchStats: { mean: ctx.tensor([0, 0], [2]) } })).toThrow(ShapeError);
      for (const t of [x, out.mean, out.invstd, out.variance, fm]) t.destroy();
      bn.destroy();
    }
    count(backend);
  });

  it('the functional API follows a convention: Keras momentum typed literally', async () => {
    const shape = [8, 3];
    const next = rng(4);
    const logical = Float64Array.from(Float32Array.from(randomData(next, 24, 3, 1)));
    const x = ctx.tensor(Float32Array.from(logical), shape);
    const rm = ctx.tensor([0, 0, 0], [3]);
    const rv = ctx.tensor([1, 1, 1], [3]);
    const y = batchNorm(ctx, x, { training: true, convention: 'keras', momentum: 0.9, runningMean: rm, runningVar: rv });
    const st: RefState = {
      weight: Float64Array.from([1, 1, 1]),
      bias: new Float64Array(3),
      runningMean: new Float64Array(3),
      runningVar: Float64Array.from([1, 1, 1]),
    };
    const ref = trainStepRef('keras', logical, shape, st, { eps: 1e-3, momentum: 0.9 });
    close(`${backend} y`, 'functional keras y', await y.read(), ref, Y_TOL(ref));
    close(`${backend} running`, 'functional keras running_mean', await rm.read(), st.runningMean, RUNNING_TOL(st.runningMean));
    close(`${backend} running`, 'functional keras running_var', await rv.read(), st.runningVar, RUNNING_TOL(st.runningVar));
    for (const t of [x, y, rm, rv]) t.destroy();
    count(backend);
  });
});

describe('conventions on webgpu: encodeForward', () => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
  });
  afterAll(() => ctx.destroy());

  function recordKernels(fn: () => void): string[] {
    const keys: string[] = [];
    const real = BindGroupCache.prototype.get;
    const spy = vi.spyOn(BindGroupCache.prototype, 'get').mockImplementation(function (this: BindGroupCache, kernel, resources) {
      keys.push(kernel.key);
      return real.call(this, kernel, resources);
    });
    try {
      fn();
    } finally {
      spy.mockRestore();
    }
    return keys;
  }

  it('records the same kernels as PyTorch for every preset, submits nothing, reads nothing back', async () => {
    const device = ctx.device;
    if (!device) throw new Error('no device');
    const shape = [8, 4, 2, 2];
    const logical = Float64Array.from(Float32Array.from(randomData(rng(3), 128, 4, 4)));
    const kernelsOf = (
      name: ConventionName,
      withStats: boolean,
    ): { keys: string[]; submits: number; y: Tensor; stats: Tensor; bn: BatchNorm } => {
      const layout = CONVENTIONS[name].layout;
      const x = ctx.tensor(toLayout(logical, shape, layout), shape, { layout });
      const y = ctx.tensor(new Float32Array(128), shape, { layout });
      const stats = ctx.tensor(new Float32Array(4), [4]);
      const bn = new BatchNorm2d(ctx, 4, { convention: name });
      const encoder = device.createCommandEncoder();
      const submits = ctx.stats.submits;
      const keys = recordKernels(() => bn.encodeForward(encoder, x, y, withStats ? { batchStats: { variance: stats } } : {}));
      const after = ctx.stats.submits;
      device.queue.submit([encoder.finish()]);
      return { keys, submits: after - submits, y, stats, bn };
    };
    const torch = kernelsOf('pytorch', false);
    for (const name of PRESETS) {
      const r = kernelsOf(name, true);
      const strip = (keys: string[]): string[] => keys.map((k) => (k.split('|')[0] ?? '').replace(/_c[fl]\d$/, ''));
      expect(strip(r.keys), name).toEqual(strip(torch.keys));
      expect(r.submits).toBe(0);
      const st: RefState = {
        weight: Float64Array.from([1, 1, 1, 1]),
        bias: new Float64Array(4),
        runningMean: new Float64Array(4),
        runningVar: Float64Array.from([1, 1, 1, 1]),
      };
      const ref = trainStepRef(name, logical, shape, st, { eps: CONVENTIONS[name].eps, momentum: CONVENTIONS[name].momentum });
      const layout = CONVENTIONS[name].layout;
      close('webgpu y', `${name} encodeForward y`, fromLayout(await r.y.read(), shape, layout), ref, Y_TOL(ref));
      const state = await readState(r.bn);
      close('webgpu running', `${name} encodeForward running_var`, state.runningVar, st.runningVar, RUNNING_TOL(st.runningVar));
      const popVar = moments(logical, shape).popVar;
      close(
        'webgpu batch stats',
        `${name} encodeForward variance`,
        await r.stats.read(),
        popVar,
        (i) => 1e-5 * (1 + (popVar[i] as number)),
      );
      r.bn.destroy();
      count('webgpu');
    }
  });

  it('batchStats in one caller buffer at offsets: each statistic lands at its own byteOffset', async () => {
    const device = ctx.device;
    if (!device) throw new Error('no device');
    const align = device.limits.minStorageBufferOffsetAlignment;
    const buffer = device.createBuffer({
      size: 3 * align,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
    });
    const mean = ctx.tensorFromBuffer(buffer, [3], { byteOffset: 0 });
    const variance = ctx.tensorFromBuffer(buffer, [3], { byteOffset: 2 * align });
    const shape = [5, 3, 2];
    const logical = Float64Array.from(Float32Array.from(randomData(rng(12), 30, 3, 2)));
    const x = ctx.tensor(Float32Array.from(logical), shape);
    const bn = new BatchNorm1d(ctx, 3, { convention: 'onnx' });
    bn.forward(x, { batchStats: { mean, variance } }).destroy();
    const mo = moments(logical, shape);
    close('webgpu batch stats', 'offset mean', await mean.read(), mo.mean, (i) => 1e-5 * (1 + Math.abs(mo.mean[i] as number)));
    close('webgpu batch stats', 'offset variance', await variance.read(), mo.popVar, (i) => 1e-5 * (1 + (mo.popVar[i] as number)));
    bn.destroy();
    x.destroy();
    buffer.destroy();
    count('webgpu');
  });

  it('batchStats on a buffer without COPY_DST is rejected before any GPU work', () => {
    const device = ctx.device;
    if (!device) throw new Error('no device');
    const buffer = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
    const t = ctx.tensorFromBuffer(buffer, [4]);
    const bn = new BatchNorm1d(ctx, 4);
    const x = ctx.tensor(
      new Float32Array(8).map((_, i) => i),
      [2, 4],
    );
    const submits = ctx.stats.submits;
    expect(() => bn.forward(x, { batchStats: { mean: t } })).toThrow(/batchStats.mean needs GPUBufferUsage.COPY_DST/);
    expect(ctx.stats.submits).toBe(submits);
    expect(bn.numBatchesTracked).toBe(0);
    bn.destroy();
    x.destroy();
    buffer.destroy();
    count('webgpu');
  });
});
