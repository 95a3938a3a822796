/**
 * SyncBatchNorm inside the caller's encoder (issue 14 part 2): the GPU merge of all-gathered
 * records (shaders/sync-merge.wgsl) against its CPU twins mergeMomentsRecords / mergeGradRecords
 * (bit for bit, over random, permuted, empty-shard and non-finite records) and against the
 * float64 mergeMoments / mergeGradSums (within float32 tolerances); encodeForward / encodeBackward
 * over S simulated shards on one device against the host-merge path and PyTorch on the
 * concatenated batch, with and without an epilogue, in one submit per step; bad inputs typed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, BackwardStateError, ShapeError, type BatchNormContext, type Layout, type Tensor } from '../src/index.js';
import { SyncBatchNorm } from '../src/sync/index.js';
import { encodeMergeGrad, encodeMergeMoments } from '../src/sync/sync-gpu.js';
import {
  GRAD_RECORD_BYTES,
  MOMENTS_RECORD_BYTES,
  decodeMomentsRecords,
  mergeGradRecords,
  mergeGradSums,
  mergeMoments,
  mergeMomentsRecords,
  type ChannelMoments,
} from '../src/sync/sync-merge.js';
import { F64_MOMENTS_RECORD_BYTES } from '../src/gpu/contracts.js';
import { caseCounter, checkClose, contextFor, fromLayout, gaussian, rng, toLayout } from './helpers/backends.js';
import { REPO_ROOT, TORCH_PYTHON, torchAvailable } from './helpers/torch-reference.js';

const count = caseCounter('sync encode');

const STORAGE = 0x80;
const COPY_SRC = 0x04;
const COPY_DST = 0x08;

const hex = (a: ArrayBufferView): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

/** S shards × C channels of moments records with the given per-record generator. */
function momentsRecords(
  shards: number,
  channels: number,
  make: (s: number, c: number) => readonly [k: number, off: number, m2: number, n: number],
): Float32Array<ArrayBuffer> {
  const f = new Float32Array(4 * shards * channels);
  const u = new Uint32Array(f.buffer);
  for (let s = 0; s < shards; s++)
    for (let c = 0; c < channels; c++) {
      const [k, off, m2, n] = make(s, c);
      const i = 4 * (s * channels + c);
      f[i] = k;
      f[i + 1] = off;
      f[i + 2] = m2;
      u[i + 3] = n;
    }
  return f;
}

/** Reorders the S records of every channel by `perm` (record s of the result = record perm[s]). */
function permuteShards(records: Float32Array<ArrayBuffer>, perm: readonly number[], perShard: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(records.length);
  perm.forEach((from, to) => {
    out.set(records.subarray(from * perShard, (from + 1) * perShard), to * perShard);
  });
  return out;
}

function shuffled(n: number, next: () => number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j] as number, p[i] as number];
  }
  return p;
}

describe('GPU merge of gathered records vs its CPU twins (webgpu)', () => {
  let ctx: BatchNormContext;
  let device: GPUDevice;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
    if (!ctx.device) throw new Error('setup');
    device = ctx.device;
  });
  afterAll(() => ctx?.destroy());

  /** Runs the merge kernel over `records` (at `byteOffset` of a fresh buffer) and reads the result back. */
  async function gpuMerge(
    kind: 'moments' | 'grad',
    records: Float32Array<ArrayBuffer>,
    shards: number,
    channels: number,
    byteOffset = 0,
  ): Promise<Float32Array> {
    const gpu = ctx.gpu;
    if (!gpu) throw new Error('setup');
    const gathered = device.createBuffer({ size: byteOffset + records.byteLength, usage: STORAGE | COPY_DST });
    device.queue.writeBuffer(gathered, byteOffset, records);
    const outBytes = channels * (kind === 'moments' ? F64_MOMENTS_RECORD_BYTES : GRAD_RECORD_BYTES);
    const target = device.createBuffer({ size: Math.ceil(outBytes / 16) * 16, usage: STORAGE | COPY_SRC });
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder();
    const args = { channels, shards, gathered, byteOffset, target, targetOffset: 0 };
    if (kind === 'moments') encodeMergeMoments(gpu, encoder, args);
    else encodeMergeGrad(gpu, encoder, args);
    device.queue.submit([encoder.finish()]);
    const error = await device.popErrorScope();
    expect(error?.message ?? null).toBeNull();
    const out = await gpu.readFloats(target, 0, outBytes);
    gathered.destroy();
    target.destroy();
    count('webgpu');
    return out;
  }

  const next = rng(2024);
  const randomMoments = (shards: number, channels: number, emptyEvery = 0): Float32Array<ArrayBuffer> =>
    momentsRecords(shards, channels, (s, c) => {
      const n = emptyEvery && s % emptyEvery === 1 ? 0 : 1 + Math.floor(next() * (c % 3 === 2 ? 1e6 : 300));
      const k = (c % 4 === 1 ? 1e4 : 0) + gaussian(next) * (c % 4 === 3 ? 100 : 1);
      return [k, gaussian(next) * 0.3, n * Math.abs(gaussian(next)) * (1 + next()), n];
    });

  /** The GPU merge of moments records, decoded from its binary64 record. */
  async function gpuMoments(records: Float32Array<ArrayBuffer>, shards: number, channels: number, byteOffset = 0): Promise<ChannelMoments> {
    const f = await gpuMerge('moments', records, shards, channels, byteOffset);
    const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
    const words = new Uint32Array(2);
    const d = new Float64Array(words.buffer);
    const out = { count: new Float64Array(channels), mean: new Float64Array(channels), m2: new Float64Array(channels) };
    for (let c = 0; c < channels; c++) {
      words[0] = u[8 * c] as number;
      words[1] = u[8 * c + 1] as number;
      out.mean[c] = d[0] as number;
      words[0] = u[8 * c + 2] as number;
      words[1] = u[8 * c + 3] as number;
      out.m2[c] = d[0] as number;
      out.count[c] = u[8 * c + 4] as number;
    }
    return out;
  }

  /** The bits of merged moments, NaNs as one token (JS engines may store NaN payloads differently). */
  const momentBits = (m: ChannelMoments): string =>
    [m.count, m.mean, m.m2].map((a) => Array.from(a, (v) => (Number.isNaN(v) ? 'NaN' : hex(new Float64Array([v])))).join()).join('|');

  it.each([
    [1, 5],
    [4, 7],
    [8, 70],
    [33, 9],
  ])(
    'moments: %i shards × %i channels, GPU = mergeMoments of the decoded records bit for bit, every order the same',
    async (shards, channels) => {
      const records = randomMoments(shards, channels, 3);
      const twin = mergeMomentsRecords(records, shards, channels);
      const parts = Array.from({ length: shards }, (_, s) =>
        decodeMomentsRecords(records.subarray(4 * s * channels, 4 * (s + 1) * channels), channels),
      );
      expect(momentBits(twin)).toBe(momentBits(mergeMoments(parts)));
      expect(momentBits(await gpuMoments(records, shards, channels))).toBe(momentBits(twin));
      for (let t = 0; t < 3; t++) {
        const permuted = permuteShards(records, shuffled(shards, next), 4 * channels);
        expect(momentBits(mergeMomentsRecords(permuted, shards, channels))).toBe(momentBits(twin));
        expect(momentBits(await gpuMoments(permuted, shards, channels, 256 * t + 16 * t))).toBe(momentBits(twin));
      }
    },
  );

  it('moments over extreme magnitudes (means 1e-30..1e30, offsets, huge counts and M2): bit-identical to mergeMoments', async () => {
    const shards = 12;
    const channels = 40;
    const records = momentsRecords(shards, channels, (s, c) => {
      const scale = 10 ** (((c * 7) % 61) - 30);
      const n = s % 5 === 3 ? 0 : 1 + Math.floor(next() * (c % 2 ? 4e9 / shards : 50));
      return [scale * (1 + gaussian(next)), scale * 1e-4 * gaussian(next), n * scale * scale * Math.abs(gaussian(next)), n];
    });
    const twin = mergeMomentsRecords(records, shards, channels);
    expect(momentBits(await gpuMoments(records, shards, channels))).toBe(momentBits(twin));
    const permuted = permuteShards(records, shuffled(shards, next), 4 * channels);
    expect(momentBits(await gpuMoments(permuted, shards, channels))).toBe(momentBits(twin));
  });

  it('moments: non-finite and empty records follow mergeMoments (±Inf, both, NaN, all-empty, NaN in an empty record, Inf M2), bit-identical', async () => {
    const shards = 5;
    const channels = 8;
    const inf = Number.POSITIVE_INFINITY;
    // Per channel, what shard s holds: a finite record unless listed.
    const special: Record<number, Record<number, readonly [number, number, number, number]>> = {
      0: { 1: [inf, 0, Number.NaN, 3] },
      1: { 0: [-inf, 0, Number.NaN, 2], 3: [-inf, 0, Number.NaN, 1] },
      2: { 2: [inf, 0, Number.NaN, 4], 4: [-inf, 0, Number.NaN, 4] },
      3: { 3: [Number.NaN, 0, Number.NaN, 5] },
      4: { 0: [0, 0, 0, 0], 1: [0, 0, 0, 0], 2: [0, 0, 0, 0], 3: [0, 0, 0, 0], 4: [0, 0, 0, 0] },
      5: { 2: [Number.NaN, Number.NaN, Number.NaN, 0] },
      6: { 1: [1, inf, 0, 2] },
      7: { 0: [2, 0.5, inf, 3] },
    };
    const records = momentsRecords(
      shards,
      channels,
      (s, c) => special[c]?.[s] ?? [1 + gaussian(next), 0.1 * gaussian(next), 2 + next(), 3 + s],
    );
    const twin = mergeMomentsRecords(records, shards, channels);
    expect(momentBits(await gpuMoments(records, shards, channels))).toBe(momentBits(twin));
    for (let t = 0; t < 3; t++) {
      const permuted = permuteShards(records, shuffled(shards, next), 4 * channels);
      expect(momentBits(await gpuMoments(permuted, shards, channels))).toBe(momentBits(twin));
    }
    expect(twin.mean[0]).toBe(inf);
    expect(twin.mean[1]).toBe(-inf);
    expect(Number.isNaN(twin.mean[2])).toBe(true);
    expect(Number.isNaN(twin.mean[4]) && twin.count[4] === 0).toBe(true);
    expect(twin.m2[7]).toBe(inf);
  });

  // Magnitudes from 1e-3 to 1e3, or (wide) from 1e-44 to 1e38, where float64 sums of float32
  // values round (an exponent spread beyond 29 bits) and results fall into float32's subnormals
  // or overflow it.
  const gradRecords = (shards: number, channels: number, wide = false): Float32Array<ArrayBuffer> =>
    Float32Array.from({ length: 2 * shards * channels }, (_, i) =>
      i % 5 === 4 ? (i % 2 ? 0 : -0) : gaussian(next) * (wide ? 10 ** (next() * 82 - 44) : 10 ** Math.floor(next() * 6 - 3)),
    );

  /** mergeGradSums (float64) of the same records, stored into a Float32Array as the host path uploads it. */
  const hostMerged = (records: Float32Array, shards: number, channels: number): Float32Array => {
    const parts = Array.from({ length: shards }, (_, s) => ({
      sumDy: Float64Array.from(records.subarray(2 * s * channels, (2 * s + 1) * channels)),
      sumDyXhat: Float64Array.from(records.subarray((2 * s + 1) * channels, (2 * s + 2) * channels)),
    }));
    const m = mergeGradSums(parts);
    const out = new Float32Array(2 * channels);
    out.set(m.sumDy, 0);
    out.set(m.sumDyXhat, channels);
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < out.length; i++) if (Number.isNaN(out[i])) u[i] = 0x7fc00000;
    return out;
  };

  it.each([
    [3, 64],
    [8, 200],
    [64, 16],
  ])(
    'gradient sums, magnitudes 1e-44..1e38: %i shards × %i channels, GPU = twin = float64 mergeGradSums rounded to float32, bit for bit',
    async (shards, channels) => {
      const records = gradRecords(shards, channels, true);
      const twin = mergeGradRecords(records, shards, channels);
      expect(hex(twin)).toBe(hex(hostMerged(records, shards, channels)));
      expect(hex(await gpuMerge('grad', records, shards, channels))).toBe(hex(twin));
      const permuted = permuteShards(records, shuffled(shards, next), 2 * channels);
      expect(hex(await gpuMerge('grad', permuted, shards, channels))).toBe(hex(twin));
      // The data does exercise the float64 emulation: summing in float32 would differ somewhere (with
      // 8 or more shards; with 3 the largest term usually decides both).
      let differs = false;
      for (let c = 0; c < 2 * channels && !differs; c++) {
        let f32 = 0;
        for (let s = 0; s < shards; s++) f32 = Math.fround(f32 + (records[s * 2 * channels + c] as number));
        differs = !Object.is(f32, twin[c]);
      }
      if (shards >= 8) expect(differs).toBe(true);
    },
  );

  it.each([
    [1, 3],
    [5, 9],
    [40, 33],
  ])(
    'gradient sums: %i shards × %i channels, bit-identical, every order the same, = float64 mergeGradSums rounded to float32',
    async (shards, channels) => {
      const records = gradRecords(shards, channels);
      const twin = mergeGradRecords(records, shards, channels);
      expect(hex(await gpuMerge('grad', records, shards, channels))).toBe(hex(twin));
      for (let t = 0; t < 3; t++) {
        const permuted = permuteShards(records, shuffled(shards, next), 2 * channels);
        expect(hex(mergeGradRecords(permuted, shards, channels))).toBe(hex(twin));
        expect(hex(await gpuMerge('grad', permuted, shards, channels, 4 * (t + 1)))).toBe(hex(twin));
      }
      const parts = Array.from({ length: shards }, (_, s) => ({
        sumDy: Float64Array.from(records.subarray(2 * s * channels, (2 * s + 1) * channels)),
        sumDyXhat: Float64Array.from(records.subarray((2 * s + 1) * channels, (2 * s + 2) * channels)),
      }));
      const f64 = mergeGradSums(parts);
      expect(hex(twin)).toBe(hex(hostMerged(records, shards, channels)));
      for (let c = 0; c < channels; c++) {
        for (const [plane, key] of [
          [0, 'sumDy'],
          [1, 'sumDyXhat'],
        ] as const) {
          let mag = 0;
          for (const p of parts) mag += Math.abs(p[key][c] as number);
          // One float32 rounding of the float64 sum.
          expect(Math.abs((twin[plane * channels + c] as number) - (f64[key][c] as number))).toBeLessThanOrEqual(2 ** -24 * mag);
        }
      }
    },
  );

  it('gradient sums: NaN, ±Inf and signed zeros, bit-identical and as mergeGradSums', async () => {
    const shards = 4;
    const channels = 6;
    const inf = Number.POSITIVE_INFINITY;
    const columns = [
      [1, inf, 2, 3],
      [-inf, 1, -inf, 0],
      [inf, -inf, 1, 1],
      [Number.NaN, 1, 2, 3],
      [-0, -0, -0, -0],
      [-0, 0, -0, -0],
    ];
    const records = new Float32Array(2 * shards * channels);
    for (let s = 0; s < shards; s++)
      for (let c = 0; c < channels; c++) {
        records[2 * s * channels + c] = columns[c]?.[s] as number;
        records[(2 * s + 1) * channels + c] = -(columns[c]?.[s] as number);
      }
    // A NaN with a payload: its sum is still the canonical NaN.
    new Uint32Array(records.buffer)[2 * channels + 3] = 0x7fa00001;
    const twin = mergeGradRecords(records, shards, channels);
    expect(hex(await gpuMerge('grad', records, shards, channels))).toBe(hex(twin));
    const permuted = permuteShards(records, [3, 1, 0, 2], 2 * channels);
    expect(hex(await gpuMerge('grad', permuted, shards, channels))).toBe(hex(twin));
    // Summed from +0, as mergeGradSums does: all −0 gives +0.
    expect(Array.from(twin.subarray(0, channels))).toEqual([inf, -inf, Number.NaN, Number.NaN, 0, 0]);
    const f64 = mergeGradSums(
      Array.from({ length: shards }, (_, s) => ({
        sumDy: Float64Array.from(records.subarray(2 * s * channels, (2 * s + 1) * channels)),
        sumDyXhat: Float64Array.from(records.subarray((2 * s + 1) * channels, (2 * s + 2) * channels)),
      })),
    );
    expect(Array.from(twin.subarray(0, channels))).toEqual(Array.from(f64.sumDy));
    expect(Array.from(twin.subarray(channels))).toEqual(Array.from(f64.sumDyXhat));
  });
});

// ------------------------------------------------------------------ the step in one encoder

interface StepCase {
  readonly name: string;
  readonly shape: readonly number[];
  readonly layout: Layout;
  /** Batch items per shard. */
  readonly split: readonly number[];
  readonly momentum: number | null;
  readonly eps: number;
  readonly activation: 'none' | 'relu' | 'silu' | 'prelu';
  readonly residual: boolean;
  readonly steps: number;
  readonly offset: number;
}

const STEP_CASES: readonly StepCase[] = [
  {
    name: '2d_C5_split2-1-3',
    shape: [6, 5, 3, 4],
    layout: 'channels_first',
    split: [2, 1, 3],
    momentum: 0.1,
    eps: 1e-5,
    activation: 'none',
    residual: false,
    steps: 2,
    offset: 0,
  },
  {
    name: '2d_C6_NHWC_split1-3_relu_residual',
    shape: [4, 6, 3, 3],
    layout: 'channels_last',
    split: [1, 3],
    momentum: 0.2,
    eps: 1e-5,
    activation: 'relu',
    residual: true,
    steps: 2,
    offset: 0,
  },
  {
    name: '1d_C4_split3-2-2-1_silu_cumulative_offset',
    shape: [8, 4, 5],
    layout: 'channels_first',
    split: [3, 2, 2, 1],
    momentum: null,
    eps: 1e-3,
    activation: 'silu',
    residual: false,
    steps: 3,
    offset: 100,
  },
  {
    name: '2d_C3_split2-2_prelu_residual',
    shape: [4, 3, 2, 5],
    layout: 'channels_first',
    split: [2, 2],
    momentum: 0.1,
    eps: 1e-5,
    activation: 'prelu',
    residual: true,
    steps: 1,
    offset: 0,
  },
];

/** PyTorch float64 (test/torch/epilogue_reference.py) of one training step on the concatenated batch. */
interface StepReference {
  output: number[];
  pre_activation: number[];
  grad_input: number[];
  grad_weight: number[];
  grad_bias: number[];
  grad_residual: number[] | null;
  running_mean: number[];
  running_var: number[];
  grad_prelu_weight: number[] | null;
}

function runEpilogueReference(cases: readonly object[]): StepReference[] {
  const dir = mkdtempSync(join(tmpdir(), 'bn-sync-encode-'));
  try {
    const inPath = join(dir, 'in.json');
    const outPath = join(dir, 'out.json');
    writeFileSync(inPath, JSON.stringify({ cases }), 'utf8');
    const r = spawnSync(TORCH_PYTHON, [join(REPO_ROOT, 'test', 'torch', 'epilogue_reference.py'), inPath, outPath], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    if (r.error !== undefined || r.status !== 0) throw new Error(`epilogue_reference.py failed: ${r.error?.message ?? r.stderr}`);
    return (JSON.parse(readFileSync(outPath, 'utf8')) as { results: StepReference[] }).results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface StepData {
  x: number[][];
  residual: number[][];
  dy: number[][];
  weight: number[];
  bias: number[];
  runningMean: number[];
  runningVar: number[];
  preluWeight: number[];
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Float64 batch statistics of logical (N, C, ...) values. */
function stats64(shape: readonly number[], x: readonly number[], eps: number): { mean: Float64Array; invstd: Float64Array } {
  const [n = 0, C = 0] = shape;
  const s = x.length / (n * C);
  const mean = new Float64Array(C);
  const invstd = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let sum = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sum += x[(i * C + c) * s + k] as number;
    const mu = sum / (n * s);
    let m2 = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) m2 += ((x[(i * C + c) * s + k] as number) - mu) ** 2;
    mean[c] = mu;
    invstd[c] = 1 / Math.sqrt(m2 / (n * s) + eps);
  }
  return { mean, invstd };
}

function generateStep(c: StepCase, seed: number): StepData {
  const next = rng(seed);
  const size = sizeOf(c.shape);
  const C = c.shape[1] as number;
  const s = size / ((c.shape[0] as number) * C);
  const weight = Array.from({ length: C }, () => Math.fround(0.5 + next()));
  const bias = Array.from({ length: C }, () => Math.fround(next() - 0.5));
  const data: StepData = {
    x: [],
    residual: [],
    dy: [],
    weight,
    bias,
    runningMean: Array.from({ length: C }, () => Math.fround(c.offset + next())),
    runningVar: Array.from({ length: C }, () => Math.fround(0.5 + next())),
    preluWeight: Array.from({ length: C }, () => Math.fround(0.1 + 0.3 * next())),
  };
  for (let step = 0; step < c.steps; step++) {
    const x = Array.from({ length: size }, (_, i) => Math.fround(c.offset + 0.3 * (Math.floor(i / s) % C) + gaussian(next)));
    const residual = Array.from({ length: size }, () => (c.residual ? Math.fround(0.5 * gaussian(next)) : 0));
    // Keep every pre-activation 1e-3 away from the kink at 0 (ReLU, PReLU): a float32 rounding
    // must not flip a mask (see test/epilogue.test.ts).
    if (c.activation === 'relu' || c.activation === 'prelu') {
      const { mean, invstd } = stats64(c.shape, x, c.eps);
      for (let i = 0; i < size; i++) {
        const ch = Math.floor(i / s) % C;
        const t =
          ((x[i] as number) - (mean[ch] as number)) * (invstd[ch] as number) * (weight[ch] as number) +
          (bias[ch] as number) +
          (residual[i] as number);
        if (Math.abs(t) < 1e-3) {
          if (!c.residual) throw new Error('kink without a residual to nudge');
          residual[i] = Math.fround((residual[i] as number) + (t >= 0 ? 2e-3 : -2e-3));
        }
      }
    }
    data.x.push(x);
    data.residual.push(residual);
    data.dy.push(Array.from({ length: size }, () => Math.fround(gaussian(next))));
  }
  return data;
}

function batchSlice(values: readonly number[], shape: readonly number[], from: number, to: number): number[] {
  const item = sizeOf(shape.slice(1));
  return values.slice(from * item, to * item);
}

/** Per-element / per-channel gradient scales, as test/epilogue.test.ts (G = |dy|·(1 + |t|)). */
function gradTolerances(
  shape: readonly number[],
  x: readonly number[],
  dy: readonly number[],
  t: readonly number[],
  eps: number,
  weight: readonly number[],
) {
  const C = shape[1] as number;
  const s = x.length / ((shape[0] as number) * C);
  const { mean, invstd } = stats64(shape, x, eps);
  const G = new Float64Array(x.length);
  const yhat = new Float64Array(x.length);
  const sumG = new Float64Array(C);
  const sumGY = new Float64Array(C);
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / s) % C;
    G[i] = Math.abs(dy[i] as number) * (1 + Math.abs(t[i] as number));
    yhat[i] = Math.abs(((x[i] as number) - (mean[ch] as number)) * (invstd[ch] as number));
    sumG[ch] = (sumG[ch] as number) + (G[i] as number);
    sumGY[ch] = (sumGY[ch] as number) + (G[i] as number) * (yhat[i] as number);
  }
  const m = x.length / C;
  const rho = 1e-5;
  return {
    gradInput: (i: number): number => {
      const ch = Math.floor(i / s) % C;
      const gs = (invstd[ch] as number) * Math.abs(weight[ch] as number);
      return rho * gs * ((G[i] as number) + (1 + (yhat[i] as number)) * ((sumG[ch] as number) / m + (sumGY[ch] as number) / m));
    },
    gradResidual: (i: number): number => rho * (G[i] as number),
    gradBias: (ch: number): number => rho * (sumG[ch] as number),
    gradWeight: (ch: number): number => rho * ((sumG[ch] as number) + (sumGY[ch] as number)),
    gradPrelu: (ch: number): number => rho * (sumG[ch] as number),
  };
}

/** One path's results of one step, in logical (N, C, ...) order over the concatenated batch. */
interface StepGot {
  output: number[];
  gradInput: number[];
  gradResidual: number[] | null;
  gradWeight: number[][];
  gradBias: number[][];
  /** Σ over shards of each shard's PReLU slope gradient. */
  gradPrelu: number[] | null;
  state: Array<{ running_mean: number[]; running_var: number[]; num_batches_tracked: number }>;
}

const available = torchAvailable();

describe.runIf(available)('encodeForward + encodeBackward over simulated shards on one device (webgpu)', () => {
  let gpuCtx: BatchNormContext;
  let cpuCtx: BatchNormContext;
  let device: GPUDevice;
  const data = STEP_CASES.map((c, i) => generateStep(c, 900 + 17 * i));
  let refs: StepReference[] = [];
  beforeAll(async () => {
    gpuCtx = await contextFor('webgpu');
    cpuCtx = await contextFor('cpu');
    if (!gpuCtx.device) throw new Error('setup');
    device = gpuCtx.device;
    // PyTorch on the concatenated batch, first step (the later steps are checked against the host-merge path).
    refs = runEpilogueReference(
      STEP_CASES.map((c, i) => {
        const d = data[i] as StepData;
        return {
          shape: c.shape,
          training: true,
          eps: c.eps,
          momentum: c.momentum ?? 1,
          input: d.x[0],
          residual: c.residual ? d.residual[0] : null,
          grad_output: d.dy[0],
          weight: d.weight,
          bias: d.bias,
          running_mean: d.runningMean,
          running_var: d.runningVar,
          activation: { kind: c.activation, min: 0, max: 0, slope: 0, prelu_weight: d.preluWeight },
        };
      }),
    );
  });
  afterAll(() => {
    gpuCtx?.destroy();
    cpuCtx?.destroy();
  });

  /** Runs every step of `c` on S shard modules through one path and returns each step's results. */
  async function runPath(c: StepCase, d: StepData, path: 'encode' | 'host' | 'host-cpu'): Promise<StepGot[]> {
    const ctx = path === 'host-cpu' ? cpuCtx : gpuCtx;
    const gpu = gpuCtx.gpu;
    if (!gpu) throw new Error('setup');
    const C = c.shape[1] as number;
    const S = c.split.length;
    const bounds = c.split.map((_, i) => c.split.slice(0, i).reduce((a, b) => a + b, 0));
    const shardShape = (i: number): number[] => [c.split[i] as number, ...c.shape.slice(1)];
    const live: Tensor[] = [];
    const buffers: GPUBuffer[] = [];
    const tensor = (logical: readonly number[], i: number): Tensor => {
      const from = bounds[i] as number;
      const t = ctx.tensor(
        toLayout(batchSlice(logical, c.shape, from, from + (c.split[i] as number)), shardShape(i), c.layout),
        shardShape(i),
        { layout: c.layout },
      );
      live.push(t);
      return t;
    };
    // The cumulative average starts from num_batches_tracked = 0, so the first factor is 1.
    const modules = c.split.map(() => new SyncBatchNorm(ctx, C, { momentum: c.momentum, eps: c.eps }));
    for (const m of modules)
      m.loadStateDict({ weight: d.weight, bias: d.bias, running_mean: d.runningMean, running_var: d.runningVar, num_batches_tracked: 0 });
    const prelu = c.activation === 'prelu' ? ctx.tensor(Float32Array.from(d.preluWeight), [C]) : null;
    if (prelu) live.push(prelu);
    const activation =
      c.activation === 'none' ? undefined : c.activation === 'prelu' ? { kind: 'prelu' as const, weight: prelu as Tensor } : c.activation;
    const out: StepGot[] = [];
    try {
      for (let step = 0; step < c.steps; step++) {
        const xs = modules.map((_, i) => tensor(d.x[step] as number[], i));
        const zs = c.residual ? modules.map((_, i) => tensor(d.residual[step] as number[], i)) : null;
        const dys = modules.map((_, i) => tensor(d.dy[step] as number[], i));
        const epilogue = (i: number) =>
          activation || zs ? { ...(activation ? { activation } : {}), ...(zs ? { residual: zs[i] as Tensor } : {}) } : undefined;
        const ys = modules.map((_, i) => {
          const y = ctx.allocTensor(shardShape(i), c.layout, 'y');
          live.push(y);
          return y;
        });
        const grads = modules.map((_, i) => {
          const g = {
            gradInput: ctx.allocTensor(shardShape(i), c.layout, 'dx'),
            gradWeight: ctx.allocTensor([C], 'channels_first', 'dw'),
            gradBias: ctx.allocTensor([C], 'channels_first', 'db'),
            gradResidual: zs ? ctx.allocTensor(shardShape(i), c.layout, 'dz') : null,
            gradPreluWeight: prelu ? ctx.allocTensor([C], 'channels_first', 'dprelu') : null,
          };
          for (const t of Object.values(g)) if (t) live.push(t);
          return g;
        });
        if (path === 'encode') {
          const gatheredMoments = device.createBuffer({ size: S * C * MOMENTS_RECORD_BYTES, usage: STORAGE });
          const gatheredGrad = device.createBuffer({ size: Math.ceil((S * C * GRAD_RECORD_BYTES) / 16) * 16, usage: STORAGE | COPY_DST });
          buffers.push(gatheredMoments, gatheredGrad);
          // Shards "all-gather" by writing their records into their slot of one buffer, in
          // reverse order of shards (the merge must not care).
          const submitsBefore = gpu.submits;
          const encoder = device.createCommandEncoder({ label: 'test.step' });
          modules.forEach((m, i) => {
            m.encodeMomentsPartial(encoder, xs[i] as Tensor, gatheredMoments, (S - 1 - i) * C * MOMENTS_RECORD_BYTES);
          });
          modules.forEach((m, i) => {
            const e = epilogue(i);
            m.encodeForward(
              encoder,
              xs[i] as Tensor,
              ys[i] as Tensor,
              { buffer: gatheredMoments, shards: S, channels: C },
              e ? { epilogue: e } : {},
            );
          });
          modules.forEach((m, i) => {
            m.encodeGradPartial(encoder, dys[i] as Tensor, gatheredGrad, (S - 1 - i) * C * GRAD_RECORD_BYTES);
          });
          modules.forEach((m, i) => {
            const g = grads[i] as (typeof grads)[number];
            m.encodeBackward(encoder, dys[i] as Tensor, { buffer: gatheredGrad, shards: S }, g);
          });
          // The whole step is this one submit: the library submitted nothing while recording.
          expect(gpu.submits).toBe(submitsBefore);
          device.pushErrorScope('validation');
          device.queue.submit([encoder.finish()]);
          expect((await device.popErrorScope())?.message ?? null).toBeNull();
        } else {
          const partials = await Promise.all(modules.map((m, i) => m.momentsPartial(xs[i] as Tensor)));
          const merged = mergeMoments(partials);
          modules.forEach((m, i) => {
            const e = epilogue(i);
            m.forward(xs[i] as Tensor, merged, { out: ys[i] as Tensor, ...(e ? { epilogue: e } : {}) });
          });
          const gradPartials = await Promise.all(modules.map((m, i) => m.gradPartial(dys[i] as Tensor)));
          const mergedGrad = mergeGradSums(gradPartials);
          modules.forEach((m, i) => {
            const r = m.backward(dys[i] as Tensor, mergedGrad);
            const g = grads[i] as (typeof grads)[number];
            // Copy into the preallocated tensors' places by reading later: keep the results.
            Object.assign(g, {
              gradInput: r.gradInput,
              gradWeight: r.gradWeight,
              gradBias: r.gradBias,
              gradResidual: r.gradResidual,
              gradPreluWeight: r.gradPreluWeight,
            });
            for (const t of Object.values(r)) if (t) live.push(t as Tensor);
          });
        }
        const logical = async (ts: Array<Tensor | null>): Promise<number[]> => {
          const parts: number[] = [];
          for (let i = 0; i < S; i++) parts.push(...fromLayout(await (ts[i] as Tensor).read(), shardShape(i), c.layout));
          return parts;
        };
        let gradPrelu: number[] | null = null;
        if (prelu) {
          gradPrelu = new Array<number>(C).fill(0);
          for (const g of grads) {
            const v = await (g.gradPreluWeight as Tensor).read();
            for (let ch = 0; ch < C; ch++) gradPrelu[ch] = (gradPrelu[ch] as number) + (v[ch] as number);
          }
        }
        out.push({
          output: await logical(ys),
          gradInput: await logical(grads.map((g) => g.gradInput)),
          gradResidual: zs ? await logical(grads.map((g) => g.gradResidual)) : null,
          gradWeight: await Promise.all(grads.map(async (g) => Array.from(await (g.gradWeight as Tensor).read()))),
          gradBias: await Promise.all(grads.map(async (g) => Array.from(await (g.gradBias as Tensor).read()))),
          gradPrelu,
          state: await Promise.all(
            modules.map(async (m) => {
              const sd = await m.stateDict();
              return {
                running_mean: Array.from(sd.running_mean ?? []),
                running_var: Array.from(sd.running_var ?? []),
                num_batches_tracked: Number(sd.num_batches_tracked),
              };
            }),
          ),
        });
        count(path === 'host-cpu' ? 'cpu' : 'webgpu');
      }
      await ctx.sync();
    } finally {
      for (const m of modules) m.destroy();
      for (const t of live) if (!t.destroyed) t.destroy();
      for (const b of buffers) b.destroy();
    }
    return out;
  }

  STEP_CASES.forEach((c, ci) => {
    it(`${c.name}: one submit per step; equals the host-merge path (webgpu, cpu) and PyTorch on the concatenated batch`, async () => {
      const d = data[ci] as StepData;
      const ref = refs[ci] as StepReference;
      const encoded = await runPath(c, d, 'encode');
      const host = await runPath(c, d, 'host');
      // The CPU backend's host path (with the same epilogue) against the same references.
      const cpu = await runPath(c, d, 'host-cpu');
      const C = c.shape[1] as number;
      const check = (what: string, a: ArrayLike<number>, b: ArrayLike<number>, tol: (i: number) => number): void => {
        const r = checkClose(`${c.name} ${what}`, a, b, tol);
        expect(r.failure).toBeNull();
      };
      for (let step = 0; step < c.steps; step++) {
        const e = encoded[step] as StepGot;
        const h = host[step] as StepGot;
        const refStep = step === 0 ? ref : null;
        const tol = gradTolerances(
          c.shape,
          d.x[step] as number[],
          d.dy[step] as number[],
          refStep?.pre_activation ?? (d.x[step] as number[]),
          c.eps,
          d.weight,
        );
        const outTol = (want: ArrayLike<number>) => (i: number) => 1e-5 + 1e-5 * Math.abs(want[i] as number);
        // Encoder path vs host-merge path: the same bits. The GPU merges emulate the host's float64
        // merges exactly, the GPU derives the forward's constants with the host's float64
        // arithmetic, and from there both run the same kernels on the same values. Every shard
        // of the encoder path has the same grad_weight / grad_bias and running statistics too.
        const bitsOf = (a: ArrayLike<number>): string => hex(Float32Array.from(a));
        expect(bitsOf(e.output), `step ${step} output`).toBe(bitsOf(h.output));
        expect(bitsOf(e.gradInput), `step ${step} grad_input`).toBe(bitsOf(h.gradInput));
        for (let i = 0; i < c.split.length; i++) {
          expect(bitsOf(e.gradWeight[i] as number[]), `step ${step} grad_weight shard ${i}`).toBe(bitsOf(h.gradWeight[0] as number[]));
          expect(bitsOf(e.gradBias[i] as number[]), `step ${step} grad_bias shard ${i}`).toBe(bitsOf(h.gradBias[0] as number[]));
          const se = e.state[i] as StepGot['state'][number];
          const sh = h.state[0] as StepGot['state'][number];
          expect(bitsOf(se.running_mean), `step ${step} running_mean shard ${i}`).toBe(bitsOf(sh.running_mean));
          expect(bitsOf(se.running_var), `step ${step} running_var shard ${i}`).toBe(bitsOf(sh.running_var));
          expect(se.num_batches_tracked).toBe(step + 1);
          expect(sh.num_batches_tracked).toBe(step + 1);
        }
        expect(e.gradResidual === null).toBe(!c.residual);
        if (e.gradResidual && h.gradResidual) expect(bitsOf(e.gradResidual), `step ${step} grad_residual`).toBe(bitsOf(h.gradResidual));
        // Σ over shards of each shard's PReLU slope gradient (float64 sums of the same float32 values).
        if (e.gradPrelu && h.gradPrelu) expect(bitsOf(e.gradPrelu), `step ${step} grad_prelu_weight`).toBe(bitsOf(h.gradPrelu));
        if (!refStep) continue;
        // Both paths against PyTorch float64 on the concatenated batch.
        for (const [label, got] of [
          ['encode', e],
          ['host', h],
          ['host on the cpu', cpu[0] as StepGot],
        ] as const) {
          check(`${label} output vs torch`, got.output, refStep.output, outTol(refStep.output));
          check(`${label} grad_input vs torch`, got.gradInput, refStep.grad_input, tol.gradInput);
          check(`${label} grad_weight vs torch`, got.gradWeight[0] as number[], refStep.grad_weight, tol.gradWeight);
          check(`${label} grad_bias vs torch`, got.gradBias[0] as number[], refStep.grad_bias, tol.gradBias);
          if (refStep.grad_residual)
            check(`${label} grad_residual vs torch`, got.gradResidual ?? [], refStep.grad_residual, tol.gradResidual);
          if (refStep.grad_prelu_weight)
            check(`${label} grad_prelu_weight (Σ shards) vs torch`, got.gradPrelu ?? [], refStep.grad_prelu_weight, tol.gradPrelu);
          if (c.momentum !== null) {
            const s0 = got.state[0] as StepGot['state'][number];
            check(
              `${label} running_mean vs torch`,
              s0.running_mean,
              refStep.running_mean,
              (j) => 1e-6 + 2e-6 * Math.abs(refStep.running_mean[j] as number),
            );
            check(
              `${label} running_var vs torch`,
              s0.running_var,
              refStep.running_var,
              (j) => 1e-6 + 1e-5 * Math.abs(refStep.running_var[j] as number),
            );
          }
        }
      }
      expect(C).toBeGreaterThan(0);
    });
  });
});

// ------------------------------------------------------------------ modes, lifetime, bad input

describe('encodeForward / encodeBackward: eval mode, tiny batches, lifetime and bad input (webgpu)', () => {
  let ctx: BatchNormContext;
  let device: GPUDevice;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
    if (!ctx.device) throw new Error('setup');
    device = ctx.device;
  });
  afterAll(() => ctx?.destroy());

  const C = 3;
  const shape = [4, C, 2, 2];
  const values = (seed: number): Float32Array => {
    const next = rng(seed);
    return Float32Array.from({ length: sizeOf(shape) }, () => gaussian(next));
  };

  it('eval mode: encodeForward(x, y, null) equals forward(x), locally with the running statistics', async () => {
    const a = new SyncBatchNorm(ctx, C);
    const b = new SyncBatchNorm(ctx, C);
    const sd = {
      running_mean: [0.5, -1, 2],
      running_var: [2, 0.5, 1],
      weight: [1.5, 0.5, -1],
      bias: [0.1, 0.2, 0.3],
      num_batches_tracked: 4,
    };
    a.loadStateDict(sd);
    b.loadStateDict(sd);
    a.eval();
    b.eval();
    const x = ctx.tensor(values(3), shape);
    const y = ctx.allocTensor(shape, 'channels_first', 'y');
    const encoder = device.createCommandEncoder();
    a.encodeForward(encoder, x, y, null, { epilogue: { activation: 'relu' } });
    device.queue.submit([encoder.finish()]);
    const want = b.forward(x, null, { epilogue: { activation: 'relu' } });
    const got = await y.read();
    const r = checkClose('eval', got, await want.read(), (i) => 1e-6 * (1 + Math.abs(got[i] as number)));
    expect(r.failure).toBeNull();
    expect(() =>
      a.encodeForward(device.createCommandEncoder(), x, y, { buffer: device.createBuffer({ size: 64, usage: STORAGE }), shards: 1 }),
    ).toThrow(ArgumentError);
    for (const t of [x, y, want]) t.destroy();
    a.destroy();
    b.destroy();
    count('webgpu');
  });

  it('host and encoder steps may alternate: the cumulative average counts every step (GPU counter kept in step)', async () => {
    const alternating = new SyncBatchNorm(ctx, C, { momentum: null });
    const hostOnly = new SyncBatchNorm(ctx, C, { momentum: null });
    const sd = { weight: [1, 2, 0.5], bias: [0, 0.1, -0.1], running_mean: [0.5, -1, 2], running_var: [2, 0.5, 1], num_batches_tracked: 3 };
    alternating.loadStateDict(sd);
    hostOnly.loadStateDict(sd);
    const gathered = device.createBuffer({ size: C * MOMENTS_RECORD_BYTES, usage: STORAGE });
    const live: Tensor[] = [];
    for (let step = 0; step < 4; step++) {
      const x = ctx.tensor(
        values(20 + step).map((v) => 2 * v + step),
        shape,
      );
      const y1 = ctx.allocTensor(shape, 'channels_first', 'y1');
      live.push(x, y1);
      if (step % 2 === 1) {
        const encoder = device.createCommandEncoder();
        alternating.encodeMomentsPartial(encoder, x, gathered);
        alternating.encodeForward(encoder, x, y1, { buffer: gathered, shards: 1 });
        device.queue.submit([encoder.finish()]);
      } else {
        alternating.forward(x, mergeMoments([await alternating.momentsPartial(x)]), { out: y1 });
      }
      live.push(hostOnly.forward(x, mergeMoments([await hostOnly.momentsPartial(x)])));
    }
    const a = await alternating.stateDict();
    const b = await hostOnly.stateDict();
    expect(a.num_batches_tracked).toBe(7);
    expect(b.num_batches_tracked).toBe(7);
    // Bit for bit: the encoder steps compute what the host steps would.
    expect(hex(Float32Array.from(a.running_mean ?? []))).toBe(hex(Float32Array.from(b.running_mean ?? [])));
    expect(hex(Float32Array.from(a.running_var ?? []))).toBe(hex(Float32Array.from(b.running_var ?? [])));
    for (const t of live) t.destroy();
    gathered.destroy();
    alternating.destroy();
    hostOnly.destroy();
    count('webgpu');
  });

  it.each([
    ['keras', { convention: 'keras' as const }],
    ['pytorch, biased running var, no affine', { varianceEstimator: 'biased' as const, affine: false, eps: 0.25 }],
  ])('other conventions (%s): the encoder step is the host step bit for bit', async (_name, options) => {
    const S = 3;
    const encoded = Array.from({ length: S }, () => new SyncBatchNorm(ctx, C, options));
    const host = Array.from({ length: S }, () => new SyncBatchNorm(ctx, C, options));
    const gathered = device.createBuffer({ size: S * C * MOMENTS_RECORD_BYTES, usage: STORAGE });
    const live: Tensor[] = [];
    for (let step = 0; step < 2; step++) {
      const xs = Array.from({ length: S }, (_, i) =>
        ctx.tensor(
          values(40 + 3 * step + i).map((v) => 3 * v + i),
          shape,
        ),
      );
      const ys = xs.map(() => ctx.allocTensor(shape, 'channels_first', 'y'));
      live.push(...xs, ...ys);
      const encoder = device.createCommandEncoder();
      encoded.forEach((m, i) => {
        m.encodeMomentsPartial(encoder, xs[i] as Tensor, gathered, i * C * MOMENTS_RECORD_BYTES);
      });
      encoded.forEach((m, i) => {
        m.encodeForward(encoder, xs[i] as Tensor, ys[i] as Tensor, { buffer: gathered, shards: S });
      });
      device.queue.submit([encoder.finish()]);
      const merged = mergeMoments(await Promise.all(host.map((m, i) => m.momentsPartial(xs[i] as Tensor))));
      const hostYs = host.map((m, i) => m.forward(xs[i] as Tensor, merged));
      live.push(...hostYs);
      for (let i = 0; i < S; i++) {
        expect(hex(await (ys[i] as Tensor).read())).toBe(hex(await (hostYs[i] as Tensor).read()));
        const a = await (encoded[i] as SyncBatchNorm).stateDict();
        const b = await (host[i] as SyncBatchNorm).stateDict();
        for (const key of Object.keys(b)) {
          const va = a[key];
          const vb = b[key];
          if (typeof vb === 'number') expect(va).toBe(vb);
          else expect(hex(Float32Array.from(va as ArrayLike<number>))).toBe(hex(Float32Array.from(vb as ArrayLike<number>)));
        }
      }
    }
    for (const t of live) t.destroy();
    gathered.destroy();
    for (const m of [...encoded, ...host]) m.destroy();
    count('webgpu');
  });

  it('a whole batch with one value per channel (PyTorch convention): NaN output, running statistics unchanged', async () => {
    const m = new SyncBatchNorm(ctx, C);
    const x = ctx.tensor(Float32Array.of(1, 2, 3), [1, C]);
    const y = ctx.allocTensor([1, C], 'channels_first', 'y');
    const gathered = device.createBuffer({ size: C * MOMENTS_RECORD_BYTES, usage: STORAGE });
    const encoder = device.createCommandEncoder();
    m.encodeMomentsPartial(encoder, x, gathered);
    m.encodeForward(encoder, x, y, { buffer: gathered, shards: 1 });
    device.queue.submit([encoder.finish()]);
    expect(Array.from(await y.read()).every(Number.isNaN)).toBe(true);
    const sd = await m.stateDict();
    expect(Array.from(sd.running_mean ?? [])).toEqual([0, 0, 0]);
    expect(Array.from(sd.running_var ?? [])).toEqual([1, 1, 1]);
    // The step is counted (on the host and the GPU counter) as PyTorch counts every training call.
    expect(Number(sd.num_batches_tracked)).toBe(1);
    gathered.destroy();
    x.destroy();
    y.destroy();
    m.destroy();
    count('webgpu');
  });

  it('recorded work stays valid until submit: the module destroyed and later steps recorded meanwhile', async () => {
    const gpu = ctx.gpu;
    if (!gpu) throw new Error('setup');
    const m = new SyncBatchNorm(ctx, C);
    const x = ctx.tensor(values(4), shape);
    const dy = ctx.tensor(values(5), shape);
    const y1 = ctx.allocTensor(shape, 'channels_first', 'y1');
    const y2 = ctx.allocTensor(shape, 'channels_first', 'y2');
    const dx = ctx.allocTensor(shape, 'channels_first', 'dx');
    const moments = device.createBuffer({ size: C * MOMENTS_RECORD_BYTES, usage: STORAGE });
    const grads = device.createBuffer({ size: 32 + C * GRAD_RECORD_BYTES, usage: STORAGE | COPY_DST });
    const first = device.createCommandEncoder();
    m.encodeMomentsPartial(first, x, moments);
    m.encodeForward(first, x, y1, { buffer: moments, shards: 1 });
    m.encodeGradPartial(first, dy, grads, 32);
    m.encodeBackward(first, dy, { buffer: grads, shards: 1, byteOffset: 32 }, { gradInput: dx });
    // A second step recorded before the first is submitted, then the module destroyed.
    const second = device.createCommandEncoder();
    m.encodeForward(second, x, y2, { buffer: moments, shards: 1 });
    m.destroy();
    // Fresh [C] tensors after destroy(): none may get a buffer that the recorded work still writes.
    const probes = Array.from({ length: 8 }, () => ctx.tensor(Float32Array.of(7, 7, 7), [C]));
    device.pushErrorScope('validation');
    device.queue.submit([first.finish(), second.finish()]);
    expect((await device.popErrorScope())?.message ?? null).toBeNull();
    for (const p of probes) {
      expect(Array.from(await p.read())).toEqual([7, 7, 7]);
      p.destroy();
    }
    // Same input, same records: both steps give the same output (a single shard's plain BN).
    const a = await y1.read();
    expect(Array.from(await y2.read())).toEqual(Array.from(a));
    let mean = 0;
    for (const v of a.subarray(0, 4)) mean += v;
    expect(Number.isFinite(mean)).toBe(true);
    for (const t of [x, dy, y1, y2, dx]) t.destroy();
    moments.destroy();
    grads.destroy();
    count('webgpu');
  });

  it('bad input: typed errors before any GPU work, state unchanged', async () => {
    const gpu = ctx.gpu;
    if (!gpu) throw new Error('setup');
    const m = new SyncBatchNorm(ctx, C);
    const plain = new SyncBatchNorm(ctx, C, { affine: false });
    const x = ctx.tensor(values(6), shape);
    const y = ctx.allocTensor(shape, 'channels_first', 'y');
    const good = device.createBuffer({ size: 2 * C * MOMENTS_RECORD_BYTES, usage: STORAGE });
    const noStorage = device.createBuffer({ size: 2 * C * MOMENTS_RECORD_BYTES, usage: COPY_DST });
    const encoder = device.createCommandEncoder();
    const tracked = (await m.stateDict()).num_batches_tracked;
    const submits = gpu.submits;
    const fwd =
      (merged: unknown): (() => void) =>
      () =>
        m.encodeForward(encoder, x, y, merged as never);
    expect(() => m.encodeForward({} as GPUCommandEncoder, x, y, { buffer: good, shards: 2 })).toThrow(ArgumentError);
    expect(fwd(null)).toThrow(ArgumentError);
    expect(fwd({ buffer: {}, shards: 2 })).toThrow(ArgumentError);
    expect(fwd({ buffer: noStorage, shards: 2 })).toThrow(/STORAGE/);
    expect(fwd({ buffer: good, shards: 3 })).toThrow(/need/);
    expect(fwd({ buffer: good, shards: 0 })).toThrow(ArgumentError);
    expect(fwd({ buffer: good, shards: 1.5 })).toThrow(ArgumentError);
    expect(fwd({ buffer: good, shards: 1, byteOffset: 8 })).toThrow(/multiple of 16/);
    expect(fwd({ buffer: good, shards: 1, byteOffset: C * MOMENTS_RECORD_BYTES + 16 })).toThrow(/need/);
    expect(fwd({ buffer: good, shards: 2, channels: C + 1 })).toThrow(ShapeError);
    expect(fwd({ buffer: good, shards: 2, extra: 1 })).toThrow(ArgumentError);
    expect(() => m.encodeForward(encoder, x, ctx.allocTensor([4, C, 2, 3], 'channels_first', 'bad'), { buffer: good, shards: 2 })).toThrow(
      ShapeError,
    );
    expect(() => m.encodeForward(encoder, x, x, { buffer: good, shards: 2 })).toThrow(/must not be the input/);
    const weightAlias = ctx.tensorFromBuffer((x.storage as { buffer: GPUBuffer }).buffer, shape, { byteOffset: 0 });
    expect(() => m.encodeForward(encoder, x, weightAlias, { buffer: good, shards: 2 })).toThrow(/shares memory/);
    expect(() => m.encodeForward(encoder, x, y, { buffer: good, shards: 2 }, { epilogue: { activation: 'nope' as never } })).toThrow(
      ArgumentError,
    );
    expect(() => m.encodeForward(encoder, x, y, { buffer: good, shards: 2 }, { out: y } as never)).toThrow(ArgumentError);
    // No forward yet: the backward has nothing to differentiate.
    expect(() => m.encodeBackward(encoder, x, { buffer: good, shards: 1 }, { gradInput: y })).toThrow(BackwardStateError);
    expect(gpu.submits).toBe(submits);
    expect((await m.stateDict()).num_batches_tracked).toBe(tracked);

    // A valid forward, then bad backward arguments.
    const step = device.createCommandEncoder();
    m.encodeMomentsPartial(step, x, good);
    m.encodeMomentsPartial(step, x, good, C * MOMENTS_RECORD_BYTES);
    m.encodeForward(step, x, y, { buffer: good, shards: 2 });
    plain.encodeForward(step, x, y, { buffer: good, shards: 2 });
    device.queue.submit([step.finish()]);
    const dy = ctx.tensor(values(7), shape);
    const grads = device.createBuffer({ size: 2 * C * GRAD_RECORD_BYTES, usage: STORAGE | COPY_DST });
    const dw = ctx.allocTensor([C], 'channels_first', 'dw');
    const bwd =
      (merged: unknown, outputs: unknown = { gradWeight: dw }): (() => void) =>
      () =>
        m.encodeBackward(encoder, dy, merged as never, outputs as never);
    expect(bwd({ buffer: grads, shards: 3 })).toThrow(/need/);
    expect(bwd({ buffer: grads, shards: 1, byteOffset: 2 })).toThrow(/multiple of 4/);
    expect(bwd({ buffer: noStorage, shards: 1 })).toThrow(/STORAGE/);
    expect(bwd({ buffer: grads, shards: 2 }, { gradResidual: y })).toThrow(/no epilogue.residual/);
    expect(bwd({ buffer: grads, shards: 2 }, { gradPreluWeight: dw })).toThrow(/not prelu/);
    expect(bwd({ buffer: grads, shards: 2 }, { gradInput: dw })).toThrow(ShapeError);
    expect(bwd({ buffer: grads, shards: 2 }, { gradInput: dy })).toThrow(/shares memory/);
    // The outputs are checked as BatchNorm.encodeBackward checks them (one checkBackwardOutputs):
    // a gradInput of another dtype than the float32 input is refused, not written as float32.
    const halfDx = ctx.allocTensor(shape, 'channels_first', 'dx16', 'float16');
    expect(bwd({ buffer: grads, shards: 2 }, { gradInput: halfDx })).toThrow(/must have the input's dtype 'float32', got 'float16'/);
    halfDx.destroy();
    expect(bwd({ buffer: grads, shards: 2 }, { gradWeights: dw })).toThrow(ArgumentError);
    expect(bwd({ buffer: grads, shards: 2 }, null)).toThrow(ArgumentError);
    expect(() => plain.encodeBackward(encoder, dy, { buffer: grads, shards: 2 }, { gradWeight: dw })).toThrow(/no weight/);
    expect(() =>
      m.encodeBackward(encoder, ctx.allocTensor([4, C, 2, 3], 'channels_first', 'bad'), { buffer: grads, shards: 2 }, {}),
    ).toThrow(ShapeError);
    for (const t of [x, y, dy, dw]) t.destroy();
    for (const b of [good, noStorage, grads]) b.destroy();
    m.destroy();
    plain.destroy();
    count('webgpu');
  });
});

describe('the encoder API on a CPU context', () => {
  it('encodeForward / encodeBackward need WebGPU (ArgumentError), as BatchNorm.encodeForward; the CPU twins run anywhere', async () => {
    const ctx = await contextFor('cpu');
    const m = new SyncBatchNorm(ctx, 2);
    const x = ctx.tensor(Float32Array.of(1, 2, 3, 4), [2, 2]);
    const y = ctx.allocTensor([2, 2], 'channels_first', 'y');
    const fake = {} as GPUCommandEncoder;
    const buffer = { usage: STORAGE, size: 1024 } as GPUBuffer;
    expect(() => m.encodeForward(fake, x, y, { buffer, shards: 1 })).toThrow(/needs the 'webgpu' backend/);
    expect(() => m.encodeBackward(fake, x, { buffer, shards: 1 }, {})).toThrow(/needs the 'webgpu' backend/);
    // The same records merged on the CPU, fed to the host path, give the same step.
    const p = await m.momentsPartial(x);
    const record = new Float32Array(8);
    const u = new Uint32Array(record.buffer);
    for (let c = 0; c < 2; c++) {
      record[4 * c] = p.mean[c] as number;
      record[4 * c + 2] = p.m2[c] as number;
      u[4 * c + 3] = p.count[c] as number;
    }
    const merged = mergeMomentsRecords(record, 1, 2);
    expect(Array.from(merged.mean)).toEqual(Array.from(p.mean, (v) => Math.fround(v)));
    const out = m.forward(x, merged);
    expect(Array.from(await out.read()).map((v) => Math.round(v * 1e4) / 1e4)).toEqual([-1, -1, 1, 1]);
    expect(() => mergeMomentsRecords(record, 0, 2)).toThrow(ArgumentError);
    expect(() => mergeMomentsRecords(record, 2, 2)).toThrow(ShapeError);
    expect(() => mergeGradRecords(new Float32Array(3), 1, 2)).toThrow(ShapeError);
    expect(() => mergeGradRecords(new Float32Array(4), 1, 0)).toThrow(ArgumentError);
    m.destroy();
    ctx.destroy();
    count('cpu');
  });
});

// ------------------------------------------------------------------ the float64 emulation alone

describe('shaders/common/f64.wgsl against JavaScript float64, bit for bit (webgpu)', () => {
  it('add, multiply, divide and square root on random binary64 values (exponents ±300), and the float32 rounding', async () => {
    const ctx = await contextFor('webgpu');
    const device = ctx.device;
    if (!device) throw new Error('setup');
    const read = (f: string): string => readFileSync(join(REPO_ROOT, 'shaders', f), 'utf8');
    const code = `${read('common/prelude.wgsl')}\n${read('common/non-finite.wgsl')}\n${read('common/f64.wgsl')}
@group(0) @binding(0) var<storage, read> inputs: array<vec4u>;
@group(0) @binding(1) var<storage, read_write> outputs: array<vec4u>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  if (i >= arrayLength(&inputs)) { return; }
  let a = f64_from_bits(inputs[i].xy);
  let b = f64_from_bits(inputs[i].zw);
  outputs[4u * i] = vec4u(f64_bits(f64_add(a, b)), f64_bits(f64_mul(a, b)));
  outputs[4u * i + 1u] = vec4u(f64_bits(f64_div(a, b)), f64_bits(f64_sqrt(F64(false, a.e, a.m))));
  outputs[4u * i + 2u] = vec4u(f64_bits(f64_add(a, f64_neg(b))), bitcast<u32>(f64_to_f32(a)), bitcast<u32>(f64_to_f32(f64_mul(a, b))));
  outputs[4u * i + 3u] = vec4u(0u);
}`;
    const next = rng(64);
    const n = 4096;
    const values = new Float64Array(2 * n);
    for (let i = 0; i < 2 * n; i++) {
      const kind = i % 7;
      // Mostly random magnitudes; some near each other (cancellation), some float32 values and
      // small integers (the merge's counts), some in float32's overflow and subnormal ranges.
      const base = (next() < 0.5 ? -1 : 1) * (1 + next()) * 2 ** Math.floor(next() * 600 - 300);
      values[i] =
        kind === 0 && i % 2 === 1
          ? (values[i - 1] as number) * (1 + (next() - 0.5) * 2 ** -40)
          : kind === 1
            ? Math.fround((next() < 0.5 ? -1 : 1) * (1 + next()) * 2 ** Math.floor(next() * 200 - 100))
            : kind === 2
              ? 1 + Math.floor(next() * 2 ** 32)
              : kind === 3
                ? (1 + next()) * 2 ** (Math.floor(next() * 40) - 170)
                : kind === 4
                  ? (1 + next()) * 2 ** (Math.floor(next() * 10) + 120)
                  : base;
    }
    const inputs = device.createBuffer({ size: values.byteLength, usage: STORAGE | COPY_DST });
    device.queue.writeBuffer(inputs, 0, values);
    const outputs = device.createBuffer({ size: n * 64, usage: STORAGE | COPY_SRC });
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code });
    const pipeline = device.createComputePipeline({
      layout: 'auto',
      compute: { module, entryPoint: 'main', constants: { WORKGROUP_SIZE: 64 } },
    });
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: inputs } },
        { binding: 1, resource: { buffer: outputs } },
      ],
    });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(n / 64);
    pass.end();
    device.queue.submit([encoder.finish()]);
    expect((await device.popErrorScope())?.message ?? null).toBeNull();
    const gpu = ctx.gpu;
    if (!gpu) throw new Error('setup');
    const got = new Uint32Array((await gpu.readFloats(outputs, 0, n * 64)).buffer);
    const d = new Float64Array(1);
    const w = new Uint32Array(d.buffer);
    const f = new Float32Array(1);
    const fw = new Uint32Array(f.buffer);
    const bits64 = (v: number): string => {
      d[0] = v;
      return `${w[1]?.toString(16)}:${w[0]?.toString(16)}`;
    };
    const bits32 = (v: number): number => {
      f[0] = v;
      return fw[0] as number;
    };
    const at = (k: number): string => `${(got[k + 1] as number).toString(16)}:${(got[k] as number).toString(16)}`;
    let mismatches = 0;
    const first: string[] = [];
    for (let i = 0; i < n; i++) {
      const a = values[2 * i] as number;
      const b = values[2 * i + 1] as number;
      const o = 16 * i;
      const checks: Array<[string, string, string]> = [
        ['add', at(o), bits64(a + b)],
        ['mul', at(o + 2), bits64(a * b)],
        ['div', at(o + 4), bits64(a / b)],
        ['sqrt', at(o + 6), bits64(Math.sqrt(Math.abs(a)))],
        ['sub', at(o + 8), bits64(a - b)],
        ['f32', String(got[o + 10]), String(bits32(a))],
        ['f32(mul)', String(got[o + 11]), String(bits32(a * b))],
      ];
      for (const [what, g, want] of checks) {
        // Outside the emulation's scope (results beyond binary64's normal range) is not compared.
        if (what === 'mul' || what === 'div' || what === 'f32(mul)') {
          const r = what === 'div' ? Math.abs(a / b) : Math.abs(a * b);
          if (!(r > 2 ** -1000 && r < 2 ** 1000)) continue;
        }
        if (g !== want) {
          mismatches++;
          if (first.length < 5) first.push(`${what}(${a}, ${b}): got ${g}, want ${want}`);
        }
      }
    }
    expect(first).toEqual([]);
    expect(mismatches).toBe(0);
    inputs.destroy();
    outputs.destroy();
    ctx.destroy();
    count('webgpu');
  });
});
