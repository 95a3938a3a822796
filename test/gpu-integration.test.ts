/**
 * WebGPU integration: zero-copy tensors over caller buffers, recording into the caller's encoder,
 * several steps encoded before one submit, steady-state allocation, and errors that can only be
 * seen after submission (validation, device loss) surfacing as typed errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, DeviceLostError, GPUOperationError, createContext, type BatchNormContext } from '../src/index.js';
import { cpuBatchStats, invstdOf } from '../src/batch-norm/cpu/cpu.js';
import { geometryOf } from '../src/batch-norm/geometry.js';
import { caseCounter, checkClose, contextFor, gaussian, rng } from './helpers/backends.js';

const count = caseCounter('gpu integration');
const USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

function randomData(n: number, seed: number, offset = 0): Float32Array<ArrayBuffer> {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => offset + gaussian(next));
}

/** Float64 training-mode output of a default BatchNorm for reference. */
function reference(x: Float32Array, shape: number[]): Float64Array {
  const g = geometryOf(shape, 'channels_first');
  const stats = cpuBatchStats(x, g);
  const invstd = invstdOf(stats.biasedVar, 1e-5);
  return Float64Array.from(
    x,
    (v, i) => (v - (stats.mean[Math.floor(i / g.s) % g.c] as number)) * (invstd[Math.floor(i / g.s) % g.c] as number),
  );
}

describe('zero-copy and encoder integration', () => {
  let ctx: BatchNormContext;
  let device: GPUDevice;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
    if (!ctx.device) throw new Error('no device');
    device = ctx.device;
  });
  afterAll(() => ctx.destroy());

  it('reads and writes caller buffers at offsets, recorded into the caller encoder, with no submit', async () => {
    const shape = [4, 3, 5, 7];
    const n = 4 * 3 * 5 * 7;
    const data = randomData(n, 3, 50);
    // input at an unaligned offset (not a multiple of 256), output at another
    const inOffset = 4 * 37;
    const outOffset = 512;
    const inBuf = device.createBuffer({ label: 'user.in', size: inOffset + n * 4 + 64, usage: USAGE });
    const outBuf = device.createBuffer({ label: 'user.out', size: outOffset + n * 4 + 64, usage: USAGE });
    device.queue.writeBuffer(inBuf, inOffset, data);
    const x = ctx.tensorFromBuffer(inBuf, shape, { byteOffset: inOffset });
    const y = ctx.tensorFromBuffer(outBuf, shape, { byteOffset: outOffset });
    const bn = new BatchNorm2d(ctx, 3);
    const submits = ctx.stats.submits;
    const encoder = device.createCommandEncoder({ label: 'user.encoder' });
    bn.encodeForward(encoder, x, y);
    expect(ctx.stats.submits).toBe(submits);
    device.queue.submit([encoder.finish()]);
    const out = await y.read();
    const check = checkClose('zero-copy output', out, reference(data, shape), (i) => 1e-5 + 1e-5 * Math.abs(out[i] ?? 0));
    expect(check.failure).toBeNull();
    // destroying the wrappers never destroys the caller's buffers
    x.destroy();
    y.destroy();
    const again = ctx.tensorFromBuffer(outBuf, shape, { byteOffset: outOffset });
    expect((await again.read()).length).toBe(n);
    bn.destroy();
    count('webgpu');
  });

  it('rejects caller buffers that are too small or lack STORAGE usage', () => {
    const small = device.createBuffer({ size: 32, usage: USAGE });
    expect(() => ctx.tensorFromBuffer(small, [2, 5])).toThrow(/has 32 bytes; shape \[2, 5\] at byteOffset 0 needs 48/);
    const noStorage = device.createBuffer({ size: 256, usage: 0x08 | 0x04 });
    expect(() => ctx.tensorFromBuffer(noStorage, [2, 4])).toThrow(/needs GPUBufferUsage.STORAGE/);
    expect(() => ctx.tensorFromBuffer(small, [2, 2], { byteOffset: 2 })).toThrow(/multiple of 4/);
  });

  it('encodes several training steps into one encoder with momentum null (cumulative average)', async () => {
    const shape = [6, 5];
    const batches = [randomData(30, 10), randomData(30, 11, 2), randomData(30, 12, -1)];
    const bn = new BatchNorm1d(ctx, 5, { momentum: null });
    const xs = batches.map((b) => ctx.tensor(b, shape));
    const ys = batches.map(() => ctx.tensor(new Float32Array(30), shape));
    const encoder = device.createCommandEncoder();
    xs.forEach((x, i) => {
      bn.encodeForward(encoder, x, ys[i] ?? x);
    });
    device.queue.submit([encoder.finish()]);
    const rm = await bn.runningMean?.read();
    const rv = await bn.runningVar?.read();
    // cumulative average of the three batch means / unbiased variances
    const g = geometryOf(shape, 'channels_first');
    const stats = batches.map((b) => cpuBatchStats(b, g));
    for (let c = 0; c < 5; c++) {
      const mean = stats.reduce((a, s) => a + (s.mean[c] as number), 0) / 3;
      const uvar = stats.reduce((a, s) => a + ((s.biasedVar[c] as number) * 6) / 5, 0) / 3;
      expect(Math.abs((rm?.[c] ?? NaN) - mean)).toBeLessThan(1e-6 + 2e-6 * Math.abs(mean));
      expect(Math.abs((rv?.[c] ?? NaN) - uvar)).toBeLessThan(1e-6 + 1e-5 * Math.abs(uvar));
    }
    expect(bn.numBatchesTracked).toBe(3);
    expect((await bn.stateDict()).num_batches_tracked).toBe(3);
    bn.destroy();
    count('webgpu');
  });

  it('steady-state forwards allocate no buffers and submit once each', async () => {
    const bn = new BatchNorm2d(ctx, 8);
    const x = ctx.tensor(randomData(2 * 8 * 6 * 6, 5), [2, 8, 6, 6]);
    for (let i = 0; i < 3; i++) bn.train().forward(x).destroy();
    for (let i = 0; i < 3; i++) bn.eval().forward(x).destroy();
    await ctx.sync();
    const before = ctx.stats;
    bn.train();
    for (let i = 0; i < 50; i++) bn.forward(x).destroy();
    bn.eval();
    for (let i = 0; i < 50; i++) bn.forward(x).destroy();
    await ctx.sync();
    const after = ctx.stats;
    expect(after.buffersCreated).toBe(before.buffersCreated);
    expect(after.submits - before.submits).toBe(100);
    expect(after.liveBuffers).toBe(before.liveBuffers);
    console.log(`[steady state] forward: buffers created before/after 100 steps: ${before.buffersCreated}/${after.buffersCreated}`);
    bn.destroy();
    x.destroy();
  });

  it('a new batch size compiles nothing and allocates only its new output size', async () => {
    const bn = new BatchNorm2d(ctx, 4);
    for (const n of [2, 3, 5, 8]) {
      const x = ctx.tensor(randomData(n * 4 * 16, n), [n, 4, 4, 4]);
      const y = bn.forward(x);
      expect((await y.read()).every(Number.isFinite)).toBe(true);
      x.destroy();
      y.destroy();
    }
    bn.destroy();
  });
});

describe('errors after submission', () => {
  it('a validation error from submitted work surfaces as GPUOperationError', async () => {
    const ctx = await contextFor('webgpu');
    const device = ctx.device;
    if (!device) throw new Error('no device');
    const buf = device.createBuffer({ size: 4096, usage: USAGE });
    const x = ctx.tensorFromBuffer(buf, [4, 8]);
    const bn = new BatchNorm1d(ctx, 8);
    buf.destroy(); // the caller frees its buffer behind the library's back
    bn.forward(x);
    await expect(ctx.sync()).rejects.toThrow(GPUOperationError);
    ctx.destroy();
    count('webgpu');
  });

  it('a lost device makes every later call throw DeviceLostError instead of hanging', async () => {
    const probe = await contextFor('webgpu');
    const adapterDevice = probe.device;
    probe.destroy();
    expect(adapterDevice).not.toBeNull();
    const ctx = await contextFor('webgpu');
    const device = ctx.device;
    if (!device) throw new Error('no device');
    const bn = new BatchNorm1d(ctx, 3);
    const x = ctx.tensor(
      new Float32Array(12).map((_, i) => i),
      [4, 3],
    );
    device.destroy();
    await device.lost;
    expect(() => bn.forward(x)).toThrow(DeviceLostError);
    await expect(x.read()).rejects.toThrow(DeviceLostError);
    expect(() => ctx.tensor(new Float32Array(3), [1, 3])).toThrow(DeviceLostError);
    ctx.destroy();
    count('webgpu');
  });

  it("'auto' reports which backend ran", async () => {
    const ctx = await createContext({ backend: 'auto' });
    expect(['webgpu', 'cpu']).toContain(ctx.backend);
    expect(ctx.backend === 'cpu' ? ctx.fallbackReason : null).toBe(ctx.fallbackReason);
    ctx.destroy();
  });
});
