/**
 * ctx.tensor accepts what users hold: any non-BigInt typed array (Uint8ClampedArray pixels,
 * Float64Array, ...) or an array-like of numbers, converted to float32; anything else is an
 * ArgumentError naming the expected form, before any allocation. Both backends.
 */
import { describe, expect, it } from 'vitest';
import { ArgumentError, BatchNorm1d, batchNorm } from '../src/index.js';
import { BACKENDS, caseCounter, contextFor } from './helpers/backends.js';

const count = caseCounter('tensor input');
const VALUES = [0, 1.5, 255, -3.25, 1e-3, 7];

describe.each(BACKENDS)('ctx.tensor inputs on %s', (backend) => {
  it('typed arrays and array-likes convert to float32; a forward on them equals the Float32Array one', async () => {
    const ctx = await contextFor(backend);
    const expected = Float32Array.from(VALUES);
    const inputs: Array<[string, ArrayLike<number>, Float32Array]> = [
      ['Float64Array', Float64Array.from(VALUES), expected],
      ['number[]', VALUES, expected],
      ['array-like', { length: VALUES.length, ...Object.fromEntries(VALUES.map((v, i) => [i, v])) }, expected],
      ['Uint8ClampedArray', Uint8ClampedArray.from([0, 1, 255, 300, -3, 7.6]), Float32Array.from([0, 1, 255, 255, 0, 8])],
      ['Int16Array', Int16Array.from([0, 1, 255, -3, 0, 7]), Float32Array.from([0, 1, 255, -3, 0, 7])],
    ];
    const bn = new BatchNorm1d(ctx, 2);
    const reference = await bn.forward(ctx.tensor(expected, [3, 2])).read();
    for (const [what, data, want] of inputs) {
      const t = ctx.tensor(data, [3, 2]);
      expect(await t.read(), what).toEqual(want);
      if (want === expected) expect(await bn.forward(t).read(), what).toEqual(reference);
      t.destroy();
    }
    ctx.destroy();
    count(backend);
  });

  it('BigInt arrays, strings, DataViews and non-numbers are ArgumentErrors that name the expected form', async () => {
    const ctx = await contextFor(backend);
    const created = ctx.stats.buffersCreated;
    const bad: unknown[] = [
      BigInt64Array.of(1n, 2n),
      'ab',
      new DataView(new ArrayBuffer(8)),
      [1, '2'],
      { length: -1 },
      { length: 2, 0: 1, 1: null },
    ];
    for (const data of bad) {
      expect(() => ctx.tensor(data as number[], [2]), String(data)).toThrow(ArgumentError);
      expect(() => ctx.tensor(data as number[], [2]), String(data)).toThrow(/typed array, or an array \/ array-like of numbers/);
    }
    expect(ctx.stats.buffersCreated).toBe(created);
    ctx.destroy();
    count(backend);
  });

  it('functional [C] options given as a Float32Array or an Array say how to wrap them, before any allocation', async () => {
    const ctx = await contextFor(backend);
    const x = ctx.tensor(
      Float32Array.from({ length: 12 }, (_, i) => i),
      [2, 3, 2],
    );
    const created = ctx.stats.buffersCreated;
    for (const [key, value] of [
      ['weight', new Float32Array(3)],
      ['bias', [0, 0, 0]],
      ['runningMean', new Float64Array(3)],
    ] as const) {
      const extra = key === 'runningMean' ? { runningVar: new Float64Array(3) } : {};
      const call = () => batchNorm(ctx, x, { training: true, ...extra, [key]: value } as never);
      expect(call, key).toThrow(ArgumentError);
      expect(call, key).toThrow(new RegExp(`${key} must be a Tensor of shape \\[3\\].*ctx\\.tensor\\(values, \\[3\\]\\)`));
    }
    expect(ctx.stats.buffersCreated).toBe(created);
    x.destroy();
    ctx.destroy();
    count(backend);
  });
});
