/**
 * mergeMoments with a shard holding ±Inf or NaN: the result is that of the concatenated batch as
 * torch computes it (mean +Inf / −Inf / NaN, M2 NaN) whatever the order of the partials. Before,
 * a +Inf partial that sorted before a finite one gave Inf − Inf = NaN for the mean.
 * (Pure host code: the same on every backend.)
 */
import { describe, expect, it } from 'vitest';
import { mergeMoments, type ChannelMoments } from '../src/sync/index.js';

const shard = (count: number[], mean: number[], m2: number[]): ChannelMoments => ({
  count: Float64Array.from(count),
  mean: Float64Array.from(mean),
  m2: Float64Array.from(m2),
});

/** Every order of `items` (a handful, so n! stays small). */
function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

describe('mergeMoments with non-finite shards', () => {
  it('is order-independent and matches torch on the concatenated batch', () => {
    // Channel 0: one shard with +Inf (a count of 1 fills its mean with +Inf and M2 with NaN).
    // Channel 1: +Inf and −Inf in two shards → NaN mean. Channel 2: all finite (unchanged merge).
    // torch 1.13, float64, x = [1, 2, inf, 3, 4]: mean inf, biased var nan; [1, -inf, inf, 3]: nan, nan.
    const partials = [
      shard([2, 1, 2], [1.5, 1, 1.5], [0.5, 0, 0.5]),
      shard([1, 1, 1], [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 3], [Number.NaN, Number.NaN, 0]),
      shard([2, 2, 2], [3.5, Number.POSITIVE_INFINITY, 3.5], [0.5, Number.NaN, 0.5]),
    ];
    const results = permutations(partials).map((order) => mergeMoments(order));
    for (const r of results) {
      expect(Array.from(r.count)).toEqual([5, 4, 5]);
      expect(r.mean[0]).toBe(Number.POSITIVE_INFINITY);
      expect(r.m2[0]).toBeNaN();
      expect(r.mean[1]).toBeNaN();
      expect(r.m2[1]).toBeNaN();
      // finite channel: [1, 2, 3, 3, 4] → mean 2.6, M2 = Σ(x − 2.6)² = 5.2
      expect(r.mean[2]).toBeCloseTo(2.6, 14);
      expect(r.m2[2]).toBeCloseTo(5.2, 13);
      expect(Array.from(r.mean)).toEqual(Array.from((results[0] as ChannelMoments).mean));
      expect(Array.from(r.m2)).toEqual(Array.from((results[0] as ChannelMoments).m2));
    }
  });
});
