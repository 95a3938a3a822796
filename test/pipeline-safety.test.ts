/**
 * Safe inside real pipelines (issue "Safe inside real pipelines", sections 1, 2 and 4):
 * - work recorded into a caller's encoder stays valid however late the caller submits it
 *   (the three reproductions and a randomized sequence checked against the CPU backend);
 * - outputs that share a buffer with inputs are rejected before any GPU work;
 * - a failed library submit never reads back as zeros: what it was to write rejects on read(),
 *   the module's state is as before the call, ctx.sync() rejects;
 * - bad arguments are typed errors before any allocation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ArgumentError,
  BatchNorm1d,
  BatchNorm2d,
  BatchNormError,
  DeviceLimitError,
  GPUOperationError,
  ShapeError,
  batchNorm,
  batchNormBackward,
  type BatchNorm,
  type BatchNormContext,
  type Tensor,
} from '../src/index.js';
import { foldBatchNormTensors } from '../src/fold/index.js';
import { mergeMoments, SyncBatchNorm } from '../src/sync/index.js';
import { BACKENDS, caseCounter, contextFor, gaussian, rng } from './helpers/backends.js';

const count = caseCounter('pipeline safety');
const USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function randomValues(n: number, seed: number, offset = 0): Float32Array<ArrayBuffer> {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => offset + gaussian(next));
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Submits `encoder` inside validation and out-of-memory scopes; resolves to the first error message or null. */
async function submitChecked(device: GPUDevice, encoder: GPUCommandEncoder): Promise<string | null> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  device.queue.submit([encoder.finish()]);
  const errors = await Promise.all([device.popErrorScope(), device.popErrorScope()]);
  await device.queue.onSubmittedWorkDone();
  return errors.find((e) => e !== null)?.message ?? null;
}

describe('work recorded into a caller encoder stays valid until the caller submits it', () => {
  let ctx: BatchNormContext;
  let device: GPUDevice;
  const buffers: GPUBuffer[] = [];
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
    if (!ctx.device) throw new Error('no device');
    device = ctx.device;
  });
  afterAll(() => {
    for (const b of buffers) b.destroy();
    ctx.destroy();
  });

  /** A caller-owned tensor over a fresh GPUBuffer, filled with `values` when given. */
  function callerTensor(c: BatchNormContext, shape: number[], values?: Float32Array<ArrayBuffer>): Tensor {
    const d = c.device;
    if (!d) throw new Error('no device');
    const buffer = d.createBuffer({ label: 'caller.tensor', size: Math.max(16, Math.ceil((sizeOf(shape) * 4) / 16) * 16), usage: USAGE });
    buffers.push(buffer);
    if (values) d.queue.writeBuffer(buffer, 0, values);
    return c.tensorFromBuffer(buffer, shape);
  }

  it('a two-layer training step recorded into one encoder, submitted 50 ms later', async () => {
    const fresh = await contextFor('webgpu');
    const shape1 = [8, 16, 32, 32];
    const shape2 = [8, 32, 16, 16];
    const bn1 = new BatchNorm2d(fresh, 16);
    const bn2 = new BatchNorm2d(fresh, 32);
    const [x1, y1, dy1, dx1] = [randomValues(sizeOf(shape1), 1), undefined, randomValues(sizeOf(shape1), 2), undefined].map((v) =>
      callerTensor(fresh, shape1, v),
    );
    const [x2, y2, dy2, dx2] = [randomValues(sizeOf(shape2), 3), undefined, randomValues(sizeOf(shape2), 4), undefined].map((v) =>
      callerTensor(fresh, shape2, v),
    );
    if (!x1 || !y1 || !dy1 || !dx1 || !x2 || !y2 || !dy2 || !dx2 || !fresh.device) throw new Error('setup');
    const enc = fresh.device.createCommandEncoder({ label: 'caller.step' });
    bn1.encodeForward(enc, x1, y1);
    bn2.encodeForward(enc, x2, y2);
    bn2.encodeBackward(enc, dy2, { gradInput: dx2 });
    bn1.encodeBackward(enc, dy1, { gradInput: dx1 });
    await sleep(50);
    expect(await submitChecked(fresh.device, enc)).toBeNull();
    await fresh.sync();
    // the same step through the library's own submits gives the same gradients
    const ref1 = bn1.backward(dy1, { outputMask: [true, false, false] }).gradInput;
    expect(Array.from(await dx1.read())).toEqual(Array.from((await ref1?.read()) ?? []));
    fresh.destroy();
    count('webgpu');
  });

  it('a small module then a larger one into one encoder, submitted 100 ms later', async () => {
    const fresh = await contextFor('webgpu');
    const small = new BatchNorm1d(fresh, 4);
    const large = new BatchNorm1d(fresh, 512);
    const xs = callerTensor(fresh, [64, 4], randomValues(256, 5));
    const ys = callerTensor(fresh, [64, 4]);
    const xl = callerTensor(fresh, [64, 512], randomValues(64 * 512, 6));
    const yl = callerTensor(fresh, [64, 512]);
    if (!fresh.device) throw new Error('setup');
    const enc = fresh.device.createCommandEncoder();
    small.encodeForward(enc, xs, ys);
    large.encodeForward(enc, xl, yl);
    await sleep(100);
    expect(fresh.stats.keptBuffers).toBeGreaterThan(0); // the smaller partials, superseded
    expect(await submitChecked(fresh.device, enc)).toBeNull();
    const out = await ys.readFloat32();
    expect(out.every(Number.isFinite)).toBe(true);
    expect(Math.abs(out.reduce((a, b) => a + b, 0))).toBeLessThan(1e-3);
    fresh.destroy();
    count('webgpu');
  });

  it('300 modules with distinct eps into one encoder (more uniforms than the cache holds)', async () => {
    const fresh = await contextFor('webgpu');
    if (!fresh.device) throw new Error('setup');
    const x = callerTensor(fresh, [4, 3], randomValues(12, 7));
    const ys: Tensor[] = [];
    const enc = fresh.device.createCommandEncoder();
    const modules: BatchNorm[] = [];
    for (let i = 0; i < 300; i++) {
      const bn = new BatchNorm1d(fresh, 3, { eps: 1e-5 * (i + 1) });
      const y = callerTensor(fresh, [4, 3]);
      bn.encodeForward(enc, x, y);
      modules.push(bn);
      ys.push(y);
    }
    await sleep(50);
    expect(await submitChecked(fresh.device, enc)).toBeNull();
    const last = await (ys[299] as Tensor).read();
    expect(last.every(Number.isFinite)).toBe(true);
    fresh.destroy();
    count('webgpu');
  });

  it('destroying a module after recording it keeps its buffers alive until the caller submits', async () => {
    const x = callerTensor(ctx, [6, 5], randomValues(30, 8));
    const y = callerTensor(ctx, [6, 5]);
    const bn = new BatchNorm1d(ctx, 5);
    const enc = device.createCommandEncoder();
    bn.encodeForward(enc, x, y);
    bn.destroy();
    await sleep(30);
    await ctx.sync();
    expect(await submitChecked(device, enc)).toBeNull();
    count('webgpu');
  });

  it('a randomized sequence of encodes, submits and awaits matches the CPU backend', async () => {
    const cpu = await contextFor('cpu');
    const fresh = await contextFor('webgpu');
    if (!fresh.device) throw new Error('setup');
    const d = fresh.device;
    const next = rng(2024);
    const pick = (n: number): number => Math.floor(next() * n);
    const sizes = [3, 8, 17, 64, 130];
    const layers = sizes.map((c, i) => ({
      c,
      gpu: new BatchNorm1d(fresh, c, { momentum: i % 2 ? null : 0.1 }),
      cpu: new BatchNorm1d(cpu, c, { momentum: i % 2 ? null : 0.1 }),
    }));
    let enc = d.createCommandEncoder();
    let pendingChecks: Array<() => Promise<void>> = [];
    let forwards = 0;
    for (let step = 0; step < 40; step++) {
      const layer = layers[pick(layers.length)];
      if (!layer) continue;
      const n = 2 + pick(40);
      const shape = [n, layer.c];
      const values = randomValues(n * layer.c, 100 + step, pick(3) * 5);
      const xg = callerTensor(fresh, shape, values);
      const yg = callerTensor(fresh, shape);
      layer.gpu.encodeForward(enc, xg, yg);
      const yc = layer.cpu.forward(cpu.tensor(values, shape));
      forwards++;
      const dyValues = randomValues(n * layer.c, 500 + step);
      const dxg = callerTensor(fresh, shape);
      layer.gpu.encodeBackward(enc, callerTensor(fresh, shape, dyValues), { gradInput: dxg });
      const dxc = layer.cpu.backward(cpu.tensor(dyValues, shape), { outputMask: [true, false, false] }).gradInput;
      pendingChecks.push(async () => {
        const [a, b, ga, gb] = await Promise.all([yg.read(), yc.read(), dxg.read(), dxc?.read()]);
        for (let i = 0; i < a.length; i++)
          expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThan(1e-4 * (1 + Math.abs(b[i] as number)));
        for (let i = 0; i < ga.length; i++)
          expect(Math.abs((ga[i] as number) - ((gb?.[i] ?? 0) as number))).toBeLessThan(2e-3 * (1 + Math.abs(gb?.[i] ?? 0)));
      });
      const action = pick(4);
      if (action === 0) {
        // submit now and check
        expect(await submitChecked(d, enc)).toBeNull();
        for (const check of pendingChecks) await check();
        pendingChecks = [];
        enc = d.createCommandEncoder();
      } else if (action === 1) {
        await sleep(pick(20));
      } else if (action === 2) {
        // library work in between (its own submits), while the caller encoder is pending
        const other = layers[pick(layers.length)];
        if (other) {
          const t = fresh.tensor(randomValues(4 * other.c, 900 + step), [4, other.c]);
          const u = new BatchNorm1d(fresh, other.c);
          u.forward(t).destroy();
          u.destroy();
          t.destroy();
        }
      }
    }
    expect(await submitChecked(d, enc)).toBeNull();
    for (const check of pendingChecks) await check();
    for (const layer of layers) {
      const [g, c] = await Promise.all([layer.gpu.stateDict(), layer.cpu.stateDict()]);
      expect(g.num_batches_tracked).toBe(c.num_batches_tracked);
      const rg = g.running_mean as Float32Array;
      const rc = c.running_mean as Float32Array;
      for (let i = 0; i < rg.length; i++)
        expect(Math.abs((rg[i] as number) - (rc[i] as number))).toBeLessThan(1e-4 * (1 + Math.abs(rc[i] as number)));
    }
    expect(forwards).toBe(40);
    fresh.destroy();
    cpu.destroy();
    count('webgpu');
  });
});

describe('outputs that share memory with inputs are rejected before GPU work', () => {
  let ctx: BatchNormContext;
  let device: GPUDevice;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
    if (!ctx.device) throw new Error('no device');
    device = ctx.device;
  });
  afterAll(() => ctx.destroy());

  it('out in the same buffer as x (disjoint offsets, or the same range wrapped twice)', async () => {
    const buffer = device.createBuffer({ size: 4096, usage: USAGE });
    device.queue.writeBuffer(buffer, 0, randomValues(1024, 9));
    const x = ctx.tensorFromBuffer(buffer, [4, 4, 4, 4], { label: 'x' });
    const yDisjoint = ctx.tensorFromBuffer(buffer, [4, 4, 4, 4], { byteOffset: 1024, label: 'y' });
    const ySame = ctx.tensorFromBuffer(buffer, [4, 4, 4, 4], { label: 'y2' });
    const bn = new BatchNorm2d(ctx, 4);
    const before = { tracked: bn.numBatchesTracked, submits: ctx.stats.submits, buffers: ctx.stats.buffersCreated };
    for (const y of [yDisjoint, ySame]) {
      expect(() => bn.forward(x, { out: y })).toThrow(ArgumentError);
      expect(() => bn.forward(x, { out: y })).toThrow(/output \(tensor 'y2?'.*shares memory with input \(tensor 'x'/);
      expect(() => bn.encodeForward(device.createCommandEncoder(), x, y)).toThrow(ArgumentError);
    }
    expect(() => batchNorm(ctx, x, { training: true, out: yDisjoint })).toThrow(ArgumentError);
    expect({ tracked: bn.numBatchesTracked, submits: ctx.stats.submits, buffers: ctx.stats.buffersCreated }).toEqual(before);
    // backward outputs vs its inputs
    const ok = ctx.tensorFromBuffer(device.createBuffer({ size: 4096, usage: USAGE }), [4, 4, 4, 4]);
    bn.encodeForward(device.createCommandEncoder(), x, ok);
    const dyBuffer = device.createBuffer({ size: 4096, usage: USAGE });
    const dy = ctx.tensorFromBuffer(dyBuffer, [4, 4, 4, 4], { label: 'dy' });
    const dxInDy = ctx.tensorFromBuffer(dyBuffer, [2, 4, 4, 4], { byteOffset: 2048, label: 'dx' });
    const gw = ctx.tensorFromBuffer(buffer, [4], { byteOffset: 2048, label: 'gw' });
    const enc = device.createCommandEncoder();
    expect(() => bn.encodeBackward(enc, dy, { gradInput: ctx.tensorFromBuffer(dyBuffer, [4, 4, 4, 4], { label: 'dx' }) })).toThrow(
      /gradInput .* shares memory with gradOutput/,
    );
    expect(() => bn.encodeBackward(enc, dy, { gradWeight: gw })).toThrow(/gradWeight .* shares memory with input/);
    expect(dxInDy.shape).toEqual([2, 4, 4, 4]);
    // outputs overlapping each other
    const grads = device.createBuffer({ size: 256, usage: USAGE });
    const gwA = ctx.tensorFromBuffer(grads, [4], { label: 'gwA' });
    const gbA = ctx.tensorFromBuffer(grads, [4], { byteOffset: 8, label: 'gbA' });
    expect(() => bn.encodeBackward(enc, dy, { gradWeight: gwA, gradBias: gbA })).toThrow(/gradBias .* overlaps gradWeight/);
    // outputs in one buffer whose bindings cannot overlap are fine
    const grads2 = device.createBuffer({ size: 1024, usage: USAGE });
    const gwB = ctx.tensorFromBuffer(grads2, [4], { label: 'gwB' });
    const gbB = ctx.tensorFromBuffer(grads2, [4], { byteOffset: device.limits.minStorageBufferOffsetAlignment, label: 'gbB' });
    const gbC = ctx.tensorFromBuffer(grads2, [4], { byteOffset: 16, label: 'gbC' });
    expect(() => bn.encodeBackward(enc, dy, { gradWeight: gwB, gradBias: gbC })).toThrow(/gradBias .* overlaps gradWeight .* as bound/);
    bn.encodeBackward(enc, dy, { gradWeight: gwB, gradBias: gbB });
    expect(await submitChecked(device, enc)).toBeNull();
    bn.destroy();
    count('webgpu');
  });

  it('functional running statistics in the same buffer as weight and bias', () => {
    const params = device.createBuffer({ size: 256, usage: USAGE });
    const w = ctx.tensorFromBuffer(params, [4], { byteOffset: 0, label: 'w' });
    const b = ctx.tensorFromBuffer(params, [4], { byteOffset: 16, label: 'b' });
    const rm = ctx.tensorFromBuffer(params, [4], { byteOffset: 32, label: 'rm' });
    const rv = ctx.tensorFromBuffer(params, [4], { byteOffset: 48, label: 'rv' });
    const x = ctx.tensor(randomValues(32, 10), [8, 4]);
    expect(() => batchNorm(ctx, x, { weight: w, bias: b, runningMean: rm, runningVar: rv, training: true })).toThrow(
      /runningMean .* shares memory with weight/,
    );
    // evaluation only reads them all: fine
    batchNorm(ctx, x, { weight: w, bias: b, runningMean: rm, runningVar: rv, training: false }).destroy();
    count('webgpu');
  });
});

describe('a failed submit never reads back as zeros', () => {
  it('x on a destroyed buffer: outputs reject every time; module state stays readable and as before; sync rejects', async () => {
    const ctx = await contextFor('webgpu');
    const cpu = await contextFor('cpu');
    if (!ctx.device) throw new Error('setup');
    const shape = [6, 3];
    const good = [randomValues(18, 11, 2), randomValues(18, 12, -1)];
    const bn = new BatchNorm1d(ctx, 3, { momentum: null });
    const ref = new BatchNorm1d(cpu, 3, { momentum: null });
    bn.forward(ctx.tensor(good[0] as Float32Array, shape)).destroy();
    ref.forward(cpu.tensor(good[0] as Float32Array, shape)).destroy();
    await ctx.sync();
    const stateBefore = await bn.stateDict();

    const doomed = ctx.device.createBuffer({ size: 256, usage: USAGE });
    const x = ctx.tensorFromBuffer(doomed, shape);
    doomed.destroy();
    const y = bn.forward(x);
    expect(bn.numBatchesTracked).toBe(2); // optimistic until the failure is known
    const first = await y.read().then(
      () => null,
      (e: unknown) => e,
    );
    expect(first).toBeInstanceOf(GPUOperationError);
    await expect(y.read()).rejects.toBe(first);
    await expect(y.read()).rejects.toBe(first);
    await expect(ctx.sync()).rejects.toBe(first);
    await ctx.sync(); // reported once
    expect(bn.numBatchesTracked).toBe(1);
    // WebGPU executed nothing of the invalid submit: the module state is intact and readable,
    // equal to before it, without waiting for another successful forward.
    expect(await bn.runningMean?.read()).toEqual(stateBefore.running_mean);
    expect(await bn.stateDict()).toEqual(stateBefore);
    expect(() => bn.backward(ctx.tensor(good[1] as Float32Array, shape))).toThrow(/no forward/);

    // the next step is exact: momentum null divides by the true count
    bn.forward(ctx.tensor(good[1] as Float32Array, shape)).destroy();
    ref.forward(cpu.tensor(good[1] as Float32Array, shape)).destroy();
    const [a, b] = await Promise.all([bn.stateDict(), ref.stateDict()]);
    expect(a.num_batches_tracked).toBe(2);
    expect(b.num_batches_tracked).toBe(2);
    for (const key of ['running_mean', 'running_var'] as const) {
      const ga = a[key] as Float32Array;
      const cb = b[key] as Float32Array;
      for (let i = 0; i < 3; i++) expect(Math.abs((ga[i] as number) - (cb[i] as number))).toBeLessThan(1e-5);
    }
    ctx.destroy();
    cpu.destroy();
    count('webgpu');
  });

  it('the fold, SyncBatchNorm partials and its steps follow the same protocol (one op runner)', async () => {
    const ctx = await contextFor('webgpu');
    if (!ctx.device) throw new Error('setup');
    // Fold into a convolution whose weight lives on a destroyed buffer: the folded tensors reject.
    const bn = new BatchNorm2d(ctx, 2).eval();
    const doomedWeight = ctx.device.createBuffer({ size: 256, usage: USAGE });
    const convWeight = ctx.tensorFromBuffer(doomedWeight, [2, 1, 1, 1]);
    doomedWeight.destroy();
    const folded = foldBatchNormTensors(bn, { weight: convWeight });
    await expect(folded.weight.read()).rejects.toBeInstanceOf(GPUOperationError);
    await expect(folded.bias.read()).rejects.toBeInstanceOf(GPUOperationError);
    await expect(ctx.sync()).rejects.toBeInstanceOf(GPUOperationError);

    // SyncBatchNorm's moments of an x on a destroyed buffer reject instead of returning stale records.
    const sync = new SyncBatchNorm(ctx, 3);
    const doomed = ctx.device.createBuffer({ size: 256, usage: USAGE });
    const x = ctx.tensorFromBuffer(doomed, [4, 3]);
    doomed.destroy();
    await expect(sync.momentsPartial(x)).rejects.toBeInstanceOf(GPUOperationError);
    await expect(ctx.sync()).rejects.toBeInstanceOf(GPUOperationError);

    // A failed synchronized step: output rejects, running statistics and the count as before.
    const good = ctx.tensor(randomValues(12, 21), [4, 3]);
    const merged = mergeMoments([await sync.momentsPartial(good)]);
    const before = await sync.stateDict();
    const y = sync.forward(x, merged);
    await expect(y.read()).rejects.toBeInstanceOf(GPUOperationError);
    await expect(ctx.sync()).rejects.toBeInstanceOf(GPUOperationError);
    expect(await sync.stateDict()).toEqual(before);
    expect(sync.numBatchesTracked).toBe(0);
    ctx.destroy();
    count('webgpu');
  });

  it('a failed backward: its gradients reject; a buffer of another device fails the same way', async () => {
    const ctx = await contextFor('webgpu');
    const other = await contextFor('webgpu');
    if (!ctx.device || !other.device) throw new Error('setup');
    const shape = [4, 2, 3];
    const bn = new BatchNorm1d(ctx, 2);
    bn.forward(ctx.tensor(randomValues(24, 13), shape)).destroy();
    const foreign = other.device.createBuffer({ size: 256, usage: USAGE });
    const dy = ctx.tensorFromBuffer(foreign, shape);
    const { gradInput, gradWeight } = bn.backward(dy);
    await expect(gradInput?.read()).rejects.toBeInstanceOf(GPUOperationError);
    await expect(gradWeight?.read()).rejects.toBeInstanceOf(GPUOperationError);
    await expect(ctx.sync()).rejects.toBeInstanceOf(GPUOperationError);
    // a functional backward with the same foreign tensor
    const w = ctx.tensor([1, 1], [2]);
    const r = batchNormBackward(ctx, {
      gradOutput: dy,
      input: ctx.tensor(randomValues(24, 14), shape),
      weight: w,
      saveMean: w,
      saveInvstd: w,
    });
    await expect(r.gradBias?.read()).rejects.toBeInstanceOf(GPUOperationError);
    await expect(ctx.sync()).rejects.toBeInstanceOf(GPUOperationError);
    ctx.destroy();
    other.destroy();
    count('webgpu');
  });

  it('encodeForward / encodeBackward with something that is not an encoder', async () => {
    const ctx = await contextFor('webgpu');
    const bn = new BatchNorm1d(ctx, 2);
    const x = ctx.tensor(randomValues(8, 15), [4, 2]);
    const y = ctx.tensor(new Float32Array(8), [4, 2]);
    const submits = ctx.stats.submits;
    for (const bad of [null, undefined, {}, 42, 'encoder']) {
      expect(() => bn.encodeForward(bad as unknown as GPUCommandEncoder, x, y)).toThrow(ArgumentError);
      expect(() => bn.encodeForward(bad as unknown as GPUCommandEncoder, x, y)).toThrow(/encoder must be a GPUCommandEncoder/);
    }
    expect(ctx.stats.submits).toBe(submits);
    expect(bn.numBatchesTracked).toBe(0);
    expect(Array.from((await bn.runningMean?.read()) ?? [])).toEqual([0, 0]);
    bn.forward(x).destroy();
    expect(() => bn.encodeBackward(null as unknown as GPUCommandEncoder, x, {})).toThrow(ArgumentError);
    ctx.destroy();
    count('webgpu');
  });
});

for (const backend of BACKENDS) {
  describe(`typed errors before any allocation on ${backend}`, () => {
    let ctx: BatchNormContext;
    beforeAll(async () => {
      ctx = await contextFor(backend);
    });
    afterAll(() => ctx.destroy());

    const typed = (fn: () => unknown, cls: typeof BatchNormError, message: RegExp): void => {
      const buffers = ctx.stats.buffersCreated;
      let thrown: unknown = null;
      try {
        fn();
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(cls);
      expect((thrown as Error).message).toMatch(message);
      expect(ctx.stats.buffersCreated).toBe(buffers);
    };

    it('channel counts beyond host or device limits', () => {
      typed(() => new BatchNorm2d(ctx, 1e12), DeviceLimitError, /numFeatures = 1000000000000/);
      typed(() => new BatchNorm2d(ctx, 2 ** 53), DeviceLimitError, /numFeatures/);
      if (backend === 'webgpu') {
        typed(() => new BatchNorm1d(ctx, 22369686), DeviceLimitError, /per-channel constants buffer/);
        const started = performance.now();
        typed(() => new BatchNorm1d(ctx, 2 ** 28 + 4), DeviceLimitError, /per-channel constants buffer/);
        // no 1 GiB host array was filled on the way (that alone takes seconds)
        expect(performance.now() - started).toBeLessThan(1000);
      }
      typed(() => new BatchNorm2d(ctx, 0), ArgumentError, /positive integer/);
      count(backend);
    });

    it('null options mean no options; a non-object is an ArgumentError', async () => {
      const bn = new BatchNorm1d(ctx, 2, null);
      expect(bn.eps).toBe(1e-5);
      const x = ctx.tensor(randomValues(8, 16), [4, 2], null);
      const y = bn.forward(x, null);
      bn.backward(ctx.tensor(randomValues(8, 17), [4, 2]), null).gradInput?.destroy();
      batchNorm(ctx, x, { training: true }).destroy();
      expect(() => batchNorm(ctx, x, null)).toThrow(/runningMean and runningVar must be defined/);
      typed(() => new BatchNorm1d(ctx, 2, 5 as unknown as null), ArgumentError, /options must be an object or null/);
      typed(() => bn.forward(x, 'out' as unknown as null), ArgumentError, /options must be an object or null/);
      typed(() => ctx.tensor([1, 2], [2], [] as unknown as null), ArgumentError, /options must be an object or null/);
      typed(() => ctx.tensor([1, 2], null as unknown as number[]), ShapeError, /shape must be an array/);
      typed(() => ctx.tensor([1, 2], null as unknown as number[], { layout: 'channels_last' }), ShapeError, /shape must be an array/);
      expect((await y.read()).length).toBe(8);
      count(backend);
    });

    it('a sweep of malformed arguments: every one a BatchNormError, nothing allocated', () => {
      const x = ctx.tensor(
        new Float32Array(12).map((_, i) => i),
        [3, 4],
      );
      const bn = new BatchNorm1d(ctx, 4);
      const encoder = ctx.device?.createCommandEncoder() ?? ({} as GPUCommandEncoder);
      const bad = <T>(v: unknown): T => v as T;
      const cases: Array<() => unknown> = [
        () => ctx.tensor(bad(null), [2]),
        () => ctx.tensor(bad('ab'), [2]),
        () => ctx.tensor([1, 2], [2.5]),
        () => ctx.tensor([1, 2], [Number.NaN]),
        () => ctx.tensor([1, 2], [Number.POSITIVE_INFINITY]),
        () => ctx.tensor([1, 2], bad('2')),
        () => ctx.tensor([1, 2], [1e12, 1e12]),
        () => ctx.tensor([1, 2], [2], { layout: bad('nchw') }),
        () => ctx.tensor([1, 2], [2], { label: bad(5) }),
        () => ctx.tensorFromBuffer(bad(null), [2]),
        () => ctx.tensorFromBuffer(bad({}), [2]),
        () => bn.forward(bad<Tensor>(null)),
        () => bn.forward(bad<Tensor>({})),
        () => bn.forward(x, { out: bad<Tensor>(5) }),
        () => bn.backward(bad<Tensor>(null)),
        () => bn.backward(x, { outputMask: bad([1, 2]) }),
        () => bn.loadStateDict(bad(null)),
        () => bn.loadStateDict(bad(5)),
        () => new BatchNorm1d(bad(null), 3),
        () => new BatchNorm1d(bad({}), 3),
        () => new BatchNorm1d(ctx, bad('3')),
        () => new BatchNorm1d(ctx, 3.5),
        () => new BatchNorm1d(ctx, 3, { eps: bad('a') }),
        () => new BatchNorm1d(ctx, 3, { momentum: bad('a') }),
        () => {
          bn.eps = bad(null);
        },
        () => bn.train(bad('yes')),
        () => batchNorm(bad(null), x),
        () => batchNorm(ctx, bad<Tensor>(null)),
        () => batchNorm(ctx, x, { weight: bad(5), training: true }),
        () => batchNorm(ctx, x, { training: bad('y') }),
        () => batchNormBackward(ctx, bad(null)),
        () => batchNormBackward(ctx, bad({})),
        () => batchNormBackward(ctx, { input: x, gradOutput: x }, bad(5)),
        () => bn.encodeBackward(encoder, x, bad(null)),
        () => bn.encodeForward(encoder, bad(null), x),
        () => bn.encodeForward(encoder, x, bad(null)),
      ];
      const buffers = ctx.stats.buffersCreated;
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
      count(backend);
    });
  });
}
