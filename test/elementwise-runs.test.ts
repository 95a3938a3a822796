/**
 * The elementwise passes' launch shapes (src/batch-norm/kernels/dispatch-shape.ts `elementwiseShape`) on
 * shapes chosen to reach every branch of both access patterns: channels-first whole-row runs,
 * split rows with a short last run (vec4 and scalar); channels-last groups of 4 vec4 columns and
 * of one column, several rows per invocation with a short last block, and (N, C) rows. Forward
 * (training and evaluation) and backward (batch and running statistics) on WebGPU, each against
 * the CPU path (float64 accumulation, itself checked against PyTorch in forward-fixtures and
 * backward tests) run on the same data. Launch shapes exist only on WebGPU; the CPU path is the
 * oracle here and is checked against PyTorch by the fixture tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, createContext, type BatchNorm, type BatchNormContext, type Layout } from '../src/index.js';
import { elementwiseShape } from '../src/batch-norm/kernels/dispatch-shape.js';
import { geometryOf } from '../src/batch-norm/geometry.js';
import { caseCounter, contextFor, gaussian, rng } from './helpers/backends.js';

const count = caseCounter('elementwise launch shapes');
// Outputs and gradients of one float32 pass vs float64-accumulated CPU: a few float32 ulps of the
// largest value (the same bound as the backward test's CPU-oracle comparison).
const RELATIVE = 1e-5;
const ABSOLUTE = 1e-6;

interface Case {
  readonly shape: number[];
  readonly layout: Layout;
  /** What the contiguous pattern does with it (checked below, so a retuned constant cannot silently drop a branch). */
  readonly branch: string;
  readonly expect: (s: ReturnType<typeof elementwiseShape>) => boolean;
}

const CASES: Case[] = [
  { shape: [40, 64, 8, 8], layout: 'channels_first', branch: 'cf vec4, whole rows', expect: (s) => s.blocksPerRow === 1 },
  {
    shape: [4, 25, 10, 10],
    layout: 'channels_first',
    branch: 'cf vec4, split rows, short last run',
    expect: (s) => s.blocksPerRow > 1 && s.cols % s.runLength !== 0 && s.runLength > 1,
  },
  {
    shape: [4, 25, 9, 9],
    layout: 'channels_first',
    branch: 'cf scalar, split rows, short last run',
    expect: (s) => s.blocksPerRow > 1 && s.cols % s.runLength !== 0 && s.runLength > 1,
  },
  {
    shape: [8, 32, 19, 23],
    layout: 'channels_last',
    branch: 'cl vec4, 4-column groups, short last block',
    expect: (s) => s.cols / s.blocksPerRow === 4 && s.runLength > 1 && s.rows % s.runLength !== 0,
  },
  {
    shape: [8, 12, 29, 31],
    layout: 'channels_last',
    branch: 'cl vec4, 1-column groups, short last block',
    expect: (s) => s.cols / s.blocksPerRow === 1 && s.runLength > 1 && s.rows % s.runLength !== 0,
  },
  {
    shape: [300, 48],
    layout: 'channels_first',
    branch: '(N, C) rows, 4-column groups, short last block',
    expect: (s) => s.cols / s.blocksPerRow === 4 && s.runLength > 1 && s.rows % s.runLength !== 0,
  },
  {
    shape: [6, 16],
    layout: 'channels_first',
    branch: '(N, C) rows, fewer rows than a run',
    expect: (s) => s.cols / s.blocksPerRow === 4 && s.runLength === 6,
  },
];

/** Forward (train, eval) outputs and backward (train, eval) gradients of `mod` on x, dy. */
async function run(ctx: BatchNormContext, c: Case, xs: Float32Array, dys: Float32Array): Promise<Float32Array[]> {
  const channels = c.shape[1] ?? 0;
  const mod: BatchNorm = c.shape.length === 2 ? new BatchNorm1d(ctx, channels) : new BatchNorm2d(ctx, channels);
  try {
    mod.loadStateDict({
      weight: Array.from({ length: channels }, (_, i) => 0.5 + 0.1 * i),
      bias: Array.from({ length: channels }, (_, i) => 0.25 * i - 1),
      running_mean: Array.from({ length: channels }, (_, i) => 1 + 0.01 * i),
      running_var: Array.from({ length: channels }, (_, i) => 0.5 + 0.02 * i),
      num_batches_tracked: 3,
    });
    const x = ctx.tensor(xs, c.shape, { layout: c.layout });
    const dy = ctx.tensor(dys, c.shape, { layout: c.layout });
    const out: Float32Array[] = [];
    for (const training of [true, false]) {
      const y = mod.train(training).forward(x);
      out.push(await y.read());
      y.destroy();
      const g = mod.backward(dy);
      for (const t of [g.gradInput, g.gradWeight, g.gradBias]) {
        if (!t) throw new Error('missing gradient');
        out.push(await t.read());
        t.destroy();
      }
    }
    x.destroy();
    dy.destroy();
    return out;
  } finally {
    mod.destroy();
  }
}

describe.each([
  ['webgpu', 'contiguous'],
  ['webgpu', 'coalesced'],
] as const)('elementwise launch shapes on %s (%s access)', (backend, access) => {
  let ctx: BatchNormContext;
  let oracle: BatchNormContext;
  beforeAll(async () => {
    ctx = await createContext({ backend, accessPattern: access });
    oracle = await contextFor('cpu');
  });
  afterAll(() => {
    ctx.destroy();
    oracle.destroy();
  });

  it.each(CASES)('$branch $shape $layout', async (c) => {
    const g = geometryOf(c.shape, c.layout);
    const width = (g.order === 'cf' ? g.s : g.c) % 4 === 0 ? 4 : 1;
    expect(c.expect(elementwiseShape(g, width, true))).toBe(true);
    const size = c.shape.reduce((a, b) => a * b, 1);
    const next = rng(size);
    const xs = Float32Array.from({ length: size }, () => 1.5 + 2 * gaussian(next));
    const dys = Float32Array.from({ length: size }, () => gaussian(next));
    const got = await run(ctx, c, xs, dys);
    const want = await run(oracle, c, xs, dys);
    expect(got.length).toBe(want.length);
    got.forEach((a, j) => {
      const b = want[j] ?? new Float32Array();
      expect(a.length).toBe(b.length);
      let maxRef = 0;
      for (const v of b) maxRef = Math.max(maxRef, Math.abs(v));
      let err = 0;
      for (let i = 0; i < b.length; i++) {
        const v = a[i] ?? Number.NaN;
        err = Math.max(err, Number.isNaN(v) ? Infinity : Math.abs(v - (b[i] ?? 0)));
      }
      expect(err).toBeLessThanOrEqual(RELATIVE * maxRef + ABSOLUTE);
    });
    count(backend);
  });
});
