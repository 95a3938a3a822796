/**
 * SyncBatchNorm inside the caller's encoder (issue 14 part 2): the GPU merge of all-gathered
 * records (shaders/sync-merge.wgsl) against its CPU twins mergeMomentsRecords / mergeGradRecords
 * (bit for bit, over random, permuted, empty-shard and non-finite records) and against the
 * float64 mergeMoments / mergeGradSums (within float32 tolerances); encodeForward / encodeBackward
 * over S simulated shards on one device against the host-merge path and PyTorch on the
 * concatenated batch, with and without an epilogue, in one submit per step; bad inputs typed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchNormContext } from '../src/index.js';
import { encodeMergeGrad, encodeMergeMoments } from '../src/sync/sync-gpu.js';
import {
  GRAD_RECORD_BYTES,
  MOMENTS_RECORD_BYTES,
  decodeMomentsRecords,
  mergeGradRecords,
  mergeGradSums,
  mergeMoments,
  mergeMomentsRecords,
  recipCountF32,
} from '../src/sync/sync-merge.js';
import { caseCounter, contextFor, gaussian, rng } from './helpers/backends.js';

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

describe('recipCountF32', () => {
  it('is 1/n correctly rounded to float32 (checked against an exact rational comparison)', () => {
    const next = rng(5);
    const ns = [1, 2, 3, 5, 7, 10, 255, 256, 257, 65535, 65537, 2 ** 24 - 1, 2 ** 24 + 1, 2 ** 31, 2 ** 31 + 1, 2 ** 32 - 1];
    for (let i = 0; i < 2000; i++) ns.push(1 + Math.floor(next() * (2 ** 32 - 2)));
    for (const n of ns) {
      const r = recipCountF32(n);
      // |r·n − 1| must be ≤ the distance of either float32 neighbour (exact in BigInt).
      const f = new Float32Array([r]);
      const u = new Uint32Array(f.buffer);
      const bitsOf = (x: number): bigint => {
        const g = new Float32Array([x]);
        const w = new Uint32Array(g.buffer)[0] as number;
        const e = (w >>> 23) - 127 - 23;
        return BigInt((w & 0x7fffff) | 0x800000) * 2n ** BigInt(e + 80);
      };
      const one = 2n ** 80n;
      const err = (x: number): bigint => {
        const d = bitsOf(x) * BigInt(n) - one;
        return d < 0n ? -d : d;
      };
      const below = new Float32Array(new Uint32Array([(u[0] as number) - 1]).buffer)[0] as number;
      const above = new Float32Array(new Uint32Array([(u[0] as number) + 1]).buffer)[0] as number;
      expect(err(r) <= err(below) && err(r) <= err(above), `n = ${n}`).toBe(true);
    }
  });
});

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
    const outBytes = channels * (kind === 'moments' ? MOMENTS_RECORD_BYTES : GRAD_RECORD_BYTES);
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

  it.each([
    [1, 5],
    [4, 7],
    [8, 70],
    [33, 9],
  ])('moments: %i shards × %i channels, bit-identical, every order the same', async (shards, channels) => {
    const records = randomMoments(shards, channels, 3);
    const twin = mergeMomentsRecords(records, shards, channels);
    expect(hex(await gpuMerge('moments', records, shards, channels))).toBe(hex(twin));
    for (let t = 0; t < 3; t++) {
      const permuted = permuteShards(records, shuffled(shards, next), 4 * channels);
      expect(hex(mergeMomentsRecords(permuted, shards, channels))).toBe(hex(twin));
      expect(hex(await gpuMerge('moments', permuted, shards, channels, 256 * t + 16 * t))).toBe(hex(twin));
    }
  });

  it('moments: non-finite and empty records follow mergeMoments (±Inf, both, NaN, all-empty, NaN in an empty record), bit-identical', async () => {
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
    expect(hex(await gpuMerge('moments', records, shards, channels))).toBe(hex(twin));
    for (let t = 0; t < 3; t++) {
      const permuted = permuteShards(records, shuffled(shards, next), 4 * channels);
      expect(hex(await gpuMerge('moments', permuted, shards, channels))).toBe(hex(twin));
    }
    const ours = decodeMomentsRecords(twin, channels);
    const f64 = mergeMoments(
      Array.from({ length: shards }, (_, s) => decodeMomentsRecords(records.subarray(4 * s * channels, 4 * (s + 1) * channels), channels)),
    );
    const same = (a: number, b: number): boolean => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
    for (let c = 0; c < channels; c++) {
      expect(ours.count[c]).toBe(f64.count[c]);
      // Channels 0-4 and 6 have no finite arithmetic left; 5 and 7 are float32 vs float64 sums.
      if (c <= 4 || c === 6) {
        expect(same(ours.mean[c] as number, f64.mean[c] as number), `mean of channel ${c}`).toBe(true);
        expect(same(ours.m2[c] as number, f64.m2[c] as number), `m2 of channel ${c}`).toBe(true);
      }
    }
    expect(ours.mean[0]).toBe(inf);
    expect(ours.mean[1]).toBe(-inf);
    expect(Number.isNaN(ours.mean[2])).toBe(true);
    expect(Number.isNaN(ours.mean[4]) && ours.count[4] === 0).toBe(true);
    expect(ours.m2[7]).toBe(inf);
    // Every NaN is the canonical quiet NaN.
    const u = new Uint32Array(twin.buffer);
    for (let i = 0; i < u.length; i++) if (Number.isNaN(twin[i])) expect(u[i]).toBe(0x7fc00000);
  });

  it('moments: the float32 merge is within its stated tolerance of float64 mergeMoments', () => {
    for (const [shards, channels] of [
      [3, 8],
      [16, 12],
      [64, 4],
    ] as const) {
      const records = randomMoments(shards, channels, 5);
      const ours = decodeMomentsRecords(mergeMomentsRecords(records, shards, channels), channels);
      const parts = Array.from({ length: shards }, (_, s) =>
        decodeMomentsRecords(records.subarray(4 * s * channels, 4 * (s + 1) * channels), channels),
      );
      const f64 = mergeMoments(parts);
      for (let c = 0; c < channels; c++) {
        const mean = f64.mean[c] as number;
        let spread = 0;
        let m2Scale = f64.m2[c] as number;
        const k0 = ours.mean[c] as number;
        for (const p of parts) {
          if (p.count[c] === 0) continue;
          spread = Math.max(spread, Math.abs((p.mean[c] as number) - mean) + Math.abs((p.mean[c] as number) - k0));
          m2Scale += (p.count[c] as number) * ((p.mean[c] as number) - mean) ** 2;
        }
        // Each δ_i and the weighted sum carry float32 rounding relative to the spread of the shard
        // means around K: (S + 4)·2^-23 of it; M2 the same relative to its terms, plus the mean's.
        const eps = 2 ** -23;
        const tolMean = (shards + 4) * eps * spread + 2 * eps * Math.abs(mean);
        expect(ours.count[c]).toBe(f64.count[c]);
        expect(Math.abs((ours.mean[c] as number) - mean), `mean, ${shards} shards, channel ${c}`).toBeLessThanOrEqual(tolMean);
        expect(Math.abs((ours.m2[c] as number) - (f64.m2[c] as number)), `m2, ${shards} shards, channel ${c}`).toBeLessThanOrEqual(
          (shards + 6) * eps * m2Scale + 2 * tolMean * Math.sqrt((f64.count[c] as number) * m2Scale),
        );
      }
    }
  });

  const gradRecords = (shards: number, channels: number): Float32Array<ArrayBuffer> =>
    Float32Array.from({ length: 2 * shards * channels }, (_, i) => (i % 5 === 4 ? 0 : gaussian(next) * 10 ** Math.floor(next() * 6 - 3)));

  it.each([
    [1, 3],
    [5, 9],
    [40, 33],
  ])(
    'gradient sums: %i shards × %i channels, bit-identical, every order the same, near float64 mergeGradSums',
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
      for (let c = 0; c < channels; c++) {
        for (const [plane, key] of [
          [0, 'sumDy'],
          [1, 'sumDyXhat'],
        ] as const) {
          let mag = 0;
          for (const p of parts) mag += Math.abs(p[key][c] as number);
          // S − 1 float32 additions, each rounding by at most 2^-24 of the running magnitude.
          expect(Math.abs((twin[plane * channels + c] as number) - (f64[key][c] as number))).toBeLessThanOrEqual(shards * 2 ** -24 * mag);
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
