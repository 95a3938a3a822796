/**
 * SyncBatchNorm with +Inf in a shard (issue 13, bug 4): every backend's moments partial says what
 * the CPU's float64 loops say (mean +Inf, M2 NaN for the channel), including a channel whose very
 * first value is +Inf (the GPU merge's shift K is then infinite, so only a scan of the values can
 * tell), and the synchronized step then matches torch on the concatenated batch: torch 1.13,
 * BatchNorm2d(3) in training on such a batch gives running_mean [inf, inf, finite], running_var
 * [nan, nan, finite] and an all-NaN output in the two channels. Shards on mixed backends agree.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchNorm2d, type BatchNormContext } from '../src/index.js';
import { mergeMoments, SyncBatchNorm, type ChannelMoments } from '../src/sync/index.js';
import { caseCounter, contextFor, gaussian, rng, type Backend } from './helpers/backends.js';

const count = caseCounter('sync batch norm non-finite');
const C = 3;
const SHARD_SHAPE = [2, C, 2, 2] as const;
const PER_SAMPLE = C * 4;

/** Two shards of [2, 3, 2, 2]: channel 0 holds +Inf inside shard 1, channel 1 starts shard 0 with +Inf. */
function shards(): Float32Array[] {
  const next = rng(11);
  const data = [0, 1].map(() => Float32Array.from({ length: 2 * PER_SAMPLE }, () => 1 + gaussian(next)));
  (data[1] as Float32Array)[1 * PER_SAMPLE + 0 * 4 + 2] = Number.POSITIVE_INFINITY;
  (data[0] as Float32Array)[0 * PER_SAMPLE + 1 * 4 + 0] = Number.POSITIVE_INFINITY;
  return data;
}

const SETUPS: readonly (readonly [Backend, Backend])[] = [
  ['webgpu', 'webgpu'],
  ['cpu', 'cpu'],
  ['webgpu', 'cpu'],
];

describe('SyncBatchNorm with +Inf in a shard', () => {
  const contexts = new Map<Backend, BatchNormContext>();
  beforeAll(async () => {
    for (const b of ['webgpu', 'cpu'] as const) contexts.set(b, await contextFor(b));
  });
  afterAll(() => {
    for (const ctx of contexts.values()) ctx.destroy();
  });
  const ctxOf = (b: Backend): BatchNormContext => contexts.get(b) as BatchNormContext;

  it('moments partials agree across backends', async () => {
    for (const data of shards()) {
      const [gpu, cpu] = await Promise.all(
        (['webgpu', 'cpu'] as const).map((b) => {
          const bn = new SyncBatchNorm(ctxOf(b), C);
          return bn.momentsPartial(ctxOf(b).tensor(data, [...SHARD_SHAPE]));
        }),
      );
      const a = gpu as ChannelMoments;
      const e = cpu as ChannelMoments;
      expect(Array.from(a.count)).toEqual(Array.from(e.count));
      for (let c = 0; c < C; c++) {
        if (Number.isFinite(e.mean[c])) {
          expect(a.mean[c]).toBeCloseTo(e.mean[c] as number, 5);
          expect(a.m2[c]).toBeCloseTo(e.m2[c] as number, 4);
        } else {
          expect(a.mean[c]).toBe(e.mean[c]);
          expect(a.m2[c]).toBeNaN();
          expect(e.m2[c]).toBeNaN();
        }
      }
    }
    count('webgpu');
    count('cpu');
  });

  it.each(SETUPS)('a synchronized step on %s + %s matches torch on the whole batch', async (b0, b1) => {
    const data = shards();
    const modules = [b0, b1].map((b) => new SyncBatchNorm(ctxOf(b), C));
    const xs = modules.map((m, i) => m.ctx.tensor(data[i] as Float32Array, [...SHARD_SHAPE]));
    const merged = mergeMoments(await Promise.all(modules.map((m, i) => m.momentsPartial(xs[i] as never))));
    const ys = await Promise.all(modules.map((m, i) => m.forward(xs[i] as never, merged).read()));

    // The finite channel against BatchNorm2d on the concatenated batch (CPU, torch-verified).
    const whole = new BatchNorm2d(ctxOf('cpu'), C);
    const all = new Float32Array(4 * PER_SAMPLE);
    all.set(data[0] as Float32Array, 0);
    all.set(data[1] as Float32Array, 2 * PER_SAMPLE);
    const yWhole = await whole.forward(ctxOf('cpu').tensor(all, [4, C, 2, 2])).read();
    const expected = await whole.stateDict();

    for (const [i, m] of modules.entries()) {
      const sd = await m.stateDict();
      const rm = sd.running_mean as Float32Array;
      const rv = sd.running_var as Float32Array;
      expect(rm[0]).toBe(Number.POSITIVE_INFINITY);
      expect(rm[1]).toBe(Number.POSITIVE_INFINITY);
      expect(rv[0]).toBeNaN();
      expect(rv[1]).toBeNaN();
      expect(rm[2]).toBeCloseTo((expected.running_mean as Float32Array)[2] as number, 6);
      expect(rv[2]).toBeCloseTo((expected.running_var as Float32Array)[2] as number, 6);
      expect(sd.num_batches_tracked).toBe(1);
      const y = ys[i] as Float32Array;
      for (let n = 0; n < 2; n++) {
        for (let c = 0; c < C; c++) {
          for (let k = 0; k < 4; k++) {
            const got = y[n * PER_SAMPLE + c * 4 + k] as number;
            if (c < 2) expect(got).toBeNaN();
            else expect(got).toBeCloseTo(yWhole[(2 * i + n) * PER_SAMPLE + c * 4 + k] as number, 5);
          }
        }
      }
    }
    count(b0);
  });
});
