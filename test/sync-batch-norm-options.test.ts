/**
 * SyncBatchNorm takes BatchNorm2d's options and honours each of them (issue 13, bug 1): a batch
 * split over two shards must give what one BatchNorm2d with the same options gives on the whole
 * batch (itself verified against each framework in conventions.test.ts): outputs, running
 * statistics over several steps, num_batches_tracked, state-dict keys, and gradients. Options it
 * cannot honour (a fused epilogue) are refused with ArgumentError before anything changes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, BatchNorm2d, type BatchNormContext, type BatchNormOptions, type Tensor } from '../src/index.js';
import { mergeGradSums, mergeMoments, SyncBatchNorm } from '../src/sync/index.js';
import { BACKENDS, caseCounter, checkClose, contextFor, gaussian, rng, type Backend } from './helpers/backends.js';

const count = caseCounter('sync batch norm options');

/** Both are float32 computations of the same formulas; they differ by a few roundings. */
const ABS = 1e-5;
const REL = 1e-5;

const SHAPE = [5, 3, 2, 2] as const;
/** Samples per shard (uneven on purpose). */
const SPLIT = [2, 3] as const;
const PER_SAMPLE = SHAPE[1] * SHAPE[2] * SHAPE[3];

const CASES: readonly { name: string; options: BatchNormOptions }[] = [
  { name: 'keras, no scale', options: { convention: 'keras', scale: false } },
  { name: 'tf-keras2-fused, eps below the floor', options: { convention: 'tf-keras2-fused', eps: 1e-8 } },
  { name: 'onnx', options: { convention: 'onnx' } },
  { name: 'running-meaning momentum', options: { momentum: 0.8, momentumMeaning: 'running' } },
  { name: 'separate variance momentum', options: { momentum: 0.1, varianceMomentum: 0.4 } },
  { name: 'biased running variance', options: { varianceEstimator: 'biased' } },
  { name: 'no center', options: { center: false } },
  { name: 'cumulative average', options: { momentum: null } },
];

function close(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  const { failure } = checkClose(what, actual, expected, (i) => ABS + REL * Math.abs(expected[i] as number));
  expect(failure).toBeNull();
}

function batch(seed: number): Float32Array {
  const next = rng(seed);
  const data = new Float32Array(SHAPE.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = 3 + 2 * gaussian(next) + (i % 3);
  return data;
}

describe.each(BACKENDS)('SyncBatchNorm options on %s', (backend: Backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx?.destroy());

  const shardTensors = (data: Float32Array): Tensor[] => {
    let start = 0;
    return SPLIT.map((n) => {
      const t = ctx.tensor(data.subarray(start * PER_SAMPLE, (start + n) * PER_SAMPLE), [n, SHAPE[1], SHAPE[2], SHAPE[3]]);
      start += n;
      return t;
    });
  };

  it.each(CASES)('$name: equals BatchNorm2d on the whole batch', async ({ options }) => {
    count(backend);
    const whole = new BatchNorm2d(ctx, SHAPE[1], options);
    const shards = SPLIT.map(() => new SyncBatchNorm(ctx, SHAPE[1], options));
    for (const s of shards) {
      expect(s.eps).toBe(whole.eps);
      expect(s.momentum).toBe(whole.momentum);
      expect(s.varianceMomentum).toBe(whole.varianceMomentum);
      expect(s.momentumMeaning).toBe(whole.momentumMeaning);
      expect(s.varianceEstimator).toBe(whole.varianceEstimator);
      expect([s.affine, s.scale, s.center]).toEqual([whole.affine, whole.scale, whole.center]);
      expect(s.convention).toBe(whole.convention);
    }
    // Non-trivial parameters, the same on every module.
    const sd = await whole.stateDict();
    const names = whole.convention.stateNames;
    if (names.weight in sd) sd[names.weight] = Float32Array.from([1.5, -0.5, 2]);
    if (names.bias in sd) sd[names.bias] = Float32Array.from([0.25, -1, 3]);
    whole.loadStateDict(sd);
    for (const s of shards) s.loadStateDict(sd);

    for (let step = 0; step < 3; step++) {
      const data = batch(17 + step);
      const x = ctx.tensor(data, [...SHAPE]);
      const parts = shardTensors(data);
      const yWhole = await whole.forward(x).read();
      const merged = mergeMoments(await Promise.all(shards.map((s, i) => s.momentsPartial(parts[i] as Tensor))));
      const ys = shards.map((s, i) => s.forward(parts[i] as Tensor, merged));
      const yShards = new Float32Array(yWhole.length);
      let at = 0;
      for (const y of ys) {
        const v = await y.read();
        yShards.set(v, at);
        at += v.length;
      }
      close(`output, step ${step}`, yShards, yWhole);

      // Gradients through the merged statistics equal the module's on the whole batch.
      const dyData = batch(101 + step);
      const dyParts = shardTensors(dyData);
      const gWhole = whole.backward(ctx.tensor(dyData, [...SHAPE]));
      const sums = mergeGradSums(await Promise.all(shards.map((s, i) => s.gradPartial(dyParts[i] as Tensor))));
      const gShards = shards.map((s, i) => s.backward(dyParts[i] as Tensor, sums));
      const dxWhole = await (gWhole.gradInput as Tensor).read();
      const dxShards = new Float32Array(dxWhole.length);
      at = 0;
      for (const g of gShards) {
        const v = await (g.gradInput as Tensor).read();
        dxShards.set(v, at);
        at += v.length;
        expect(g.gradWeight === null).toBe(gWhole.gradWeight === null);
        expect(g.gradBias === null).toBe(gWhole.gradBias === null);
        if (g.gradWeight && gWhole.gradWeight) close('grad_weight', await g.gradWeight.read(), await gWhole.gradWeight.read());
        if (g.gradBias && gWhole.gradBias) close('grad_bias', await g.gradBias.read(), await gWhole.gradBias.read());
      }
      close(`grad_input, step ${step}`, dxShards, dxWhole);
    }

    const expected = await whole.stateDict();
    for (const s of shards) {
      const got = await s.stateDict();
      expect(Object.keys(got).sort()).toEqual(Object.keys(expected).sort());
      for (const [key, value] of Object.entries(expected)) {
        if (typeof value === 'number') expect(got[key]).toBe(value);
        else close(key, got[key] as Float32Array, value as Float32Array);
      }
      expect(s.numBatchesTracked).toBe(whole.numBatchesTracked);
    }
    // Eval mode normalizes with the running statistics and the convention's eps, as the module does.
    whole.eval();
    const x = ctx.tensor(batch(5), [...SHAPE]);
    const yEval = await whole.forward(x).read();
    for (const s of shards) close('eval output', await s.eval().forward(x).read(), yEval);
  });

  it('refuses a fused epilogue with ArgumentError and counts no step', async () => {
    count(backend);
    const bn = new SyncBatchNorm(ctx, SHAPE[1]);
    const data = batch(3);
    const x = ctx.tensor(data, [...SHAPE]);
    const merged = mergeMoments([await bn.momentsPartial(x)]);
    const before = await bn.stateDict();
    const options = { epilogue: 'relu' } as unknown as Parameters<SyncBatchNorm['forward']>[2];
    expect(() => bn.forward(x, merged, options)).toThrow(ArgumentError);
    expect(() => bn.forward(x, merged, options)).toThrow(/epilogue/);
    expect(bn.numBatchesTracked).toBe(0);
    expect(await bn.stateDict()).toEqual(before);
  });

  it('rejects unknown option keys, naming them, with nothing changed', async () => {
    count(backend);
    const typo = { momentom: 0.2 } as unknown as BatchNormOptions;
    expect(() => new SyncBatchNorm(ctx, SHAPE[1], typo)).toThrow(ArgumentError);
    expect(() => new SyncBatchNorm(ctx, SHAPE[1], typo)).toThrow(/'momentom'.*allowed: .*'momentum'/);
    const bn = new SyncBatchNorm(ctx, SHAPE[1]);
    const x = ctx.tensor(batch(4), [...SHAPE]);
    const merged = mergeMoments([await bn.momentsPartial(x)]);
    const before = await bn.stateDict();
    const badForward = { outt: null } as unknown as Parameters<SyncBatchNorm['forward']>[2];
    expect(() => bn.forward(x, merged, badForward)).toThrow(/unknown option 'outt'; allowed: 'out'/);
    expect(bn.numBatchesTracked).toBe(0);
    expect(await bn.stateDict()).toEqual(before);
    const dy = ctx.tensor(batch(6), [...SHAPE]);
    bn.forward(x, merged);
    const sums = mergeGradSums([await bn.gradPartial(dy)]);
    const badBackward = { outputmask: [true, true, true] } as unknown as Parameters<SyncBatchNorm['backward']>[2];
    expect(() => bn.backward(dy, sums, badBackward)).toThrow(/unknown option 'outputmask'; allowed: 'outputMask'/);
  });
});
