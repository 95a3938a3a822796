/**
 * tensor.write(data) and tensor.writeFrom(tensor): in-place updates for optimizer steps and input
 * reuse, on both backends, checked before anything is written.
 */
import { describe, expect, it } from 'vitest';
import { ArgumentError, BatchNorm1d, ContextMismatchError, DestroyedError, ShapeError } from '../src/index.js';
import { BACKENDS, caseCounter, contextFor } from './helpers/backends.js';

const count = caseCounter('tensor write');

describe.each(BACKENDS)('tensor.write / writeFrom on %s', (backend) => {
  it('write replaces the values in place; a module sees a written weight; bad data changes nothing', async () => {
    const ctx = await contextFor(backend);
    const t = ctx.tensor(new Float32Array(4), [2, 2]);
    t.write([1, 2, 3, 4]);
    expect(await t.read()).toEqual(Float32Array.of(1, 2, 3, 4));
    t.write(Float64Array.of(0.5, -1, 1e-3, 8));
    expect(await t.read()).toEqual(Float32Array.of(0.5, -1, Math.fround(1e-3), 8));
    expect(() => t.write([1, 2, 3])).toThrow(ShapeError);
    expect(() => t.write(BigInt64Array.of(1n, 2n, 3n, 4n) as unknown as number[])).toThrow(ArgumentError);
    expect(await t.read()).toEqual(Float32Array.of(0.5, -1, Math.fround(1e-3), 8));

    // An SGD-style step written into the module's weight, then a forward that uses it.
    const bn = new BatchNorm1d(ctx, 2).eval();
    bn.weight?.write([2, -3]);
    bn.bias?.write([0.5, 1]);
    const y = await bn.forward(ctx.tensor([1, 2, 3, 4], [2, 2])).read();
    const k = 1 / Math.sqrt(1 + 1e-5);
    const expected = [1 * k * 2 + 0.5, 2 * k * -3 + 1, 3 * k * 2 + 0.5, 4 * k * -3 + 1];
    for (let i = 0; i < 4; i++) expect(Math.abs((y[i] as number) - (expected[i] as number))).toBeLessThan(1e-6);
    t.destroy();
    expect(() => t.write([1, 2, 3, 4])).toThrow(DestroyedError);
    ctx.destroy();
    count(backend);
  });

  it('writeFrom copies a tensor of the same shape and layout; mismatches are refused', async () => {
    const ctx = await contextFor(backend);
    const other = await contextFor(backend);
    const src = ctx.tensor([1, 2, 3, 4, 5, 6], [1, 2, 3]);
    const dst = ctx.tensor(new Float32Array(6), [1, 2, 3]);
    dst.writeFrom(src);
    expect(await dst.read()).toEqual(Float32Array.of(1, 2, 3, 4, 5, 6));
    src.write([6, 5, 4, 3, 2, 1]);
    expect(await dst.read()).toEqual(Float32Array.of(1, 2, 3, 4, 5, 6)); // a copy, not a view
    expect(() => dst.writeFrom(ctx.tensor(new Float32Array(6), [2, 3]))).toThrow(ShapeError);
    expect(() => dst.writeFrom(ctx.tensor(new Float32Array(6), [1, 2, 3], { layout: 'channels_last' }))).toThrow(ShapeError);
    expect(() => dst.writeFrom(other.tensor(new Float32Array(6), [1, 2, 3]))).toThrow(ContextMismatchError);
    expect(await dst.read()).toEqual(Float32Array.of(1, 2, 3, 4, 5, 6));
    if (backend === 'webgpu' && ctx.device) {
      const shared = ctx.device.createBuffer({ size: 64, usage: 0x80 | 0x04 | 0x08 });
      const a = ctx.tensorFromBuffer(shared, [4], { byteOffset: 0 });
      const b = ctx.tensorFromBuffer(shared, [4], { byteOffset: 32 });
      a.write([9, 8, 7, 6]);
      expect(() => b.writeFrom(a)).toThrow(/in one GPUBuffer/);
      const c = ctx.tensor(new Float32Array(4), [4]);
      c.writeFrom(a);
      expect(await c.read()).toEqual(Float32Array.of(9, 8, 7, 6));
      const readOnly = ctx.device.createBuffer({ size: 16, usage: 0x80 | 0x04 });
      expect(() => ctx.tensorFromBuffer(readOnly, [4]).write([1, 2, 3, 4])).toThrow(/COPY_DST/);
      await ctx.sync();
      shared.destroy();
      readOnly.destroy();
    }
    ctx.destroy();
    other.destroy();
    count(backend);
  });
});
