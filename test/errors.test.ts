/**
 * Every rejected input throws its exported error class, names the argument, the expected form and
 * what came, and leaves running stats, num_batches_tracked and buffers exactly as they were.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ArgumentError,
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  BatchNormError,
  ContextMismatchError,
  DestroyedError,
  DeviceLimitError,
  InsufficientValuesError,
  ShapeError,
  StateDictError,
  batchNorm,
  batchNormBackward,
  createContext,
  onnxBatchNormalization,
  type BatchNorm,
  type BatchNormContext,
} from '../src/index.js';
import { encodeFoldBatchNorm, foldBatchNorm, foldBatchNormTensors } from '../src/fold/index.js';
import { loadBatchNorm, readModelFile } from '../src/io/index.js';
import { BACKENDS, caseCounter, contextFor } from './helpers/backends.js';

const count = caseCounter('errors');

interface Snapshot {
  state: string;
  tracked: number | null;
  buffersCreated: number;
  liveBuffers: number;
}

async function snapshot(ctx: BatchNormContext, bn: BatchNorm): Promise<Snapshot> {
  const sd = await bn.stateDict();
  return {
    state: JSON.stringify(sd, (_k, v: unknown) => (v instanceof Float32Array ? Array.from(v) : v)),
    tracked: bn.numBatchesTracked,
    buffersCreated: ctx.stats.buffersCreated,
    liveBuffers: ctx.stats.liveBuffers,
  };
}

describe.each(BACKENDS)('errors on %s', (backend) => {
  let ctx: BatchNormContext;
  let other: BatchNormContext;
  /** A model file for loadBatchNorm; its bn1 layer has 4 channels. */
  let file: Awaited<ReturnType<typeof readModelFile>>;
  beforeAll(async () => {
    ctx = await contextFor(backend);
    other = await contextFor(backend);
    file = await readModelFile(readFileSync(new URL('./fixtures/models/state.safetensors', import.meta.url)));
  });
  afterAll(() => {
    ctx.destroy();
    other.destroy();
  });

  /** A module that has done two training steps, so its state is not the default. */
  async function trainedModule(): Promise<BatchNorm2d> {
    const bn = new BatchNorm2d(ctx, 3, { momentum: 0.3 });
    const x = ctx.tensor(
      Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => Math.sin(i) + i * 0.1),
      [2, 3, 2, 2],
    );
    bn.forward(x).destroy();
    bn.forward(x).destroy();
    x.destroy();
    await ctx.sync();
    return bn;
  }

  /** Runs `bad` on a trained module, checks the thrown class and message, and that nothing changed. */
  async function expectRejected(bad: (bn: BatchNorm2d) => unknown, cls: typeof BatchNormError, message: RegExp): Promise<void> {
    const bn = await trainedModule();
    const before = await snapshot(ctx, bn);
    let thrown: unknown = null;
    try {
      bad(bn);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(cls);
    expect(thrown).toBeInstanceOf(BatchNormError);
    expect((thrown as Error).message).toMatch(message);
    await ctx.sync();
    expect(await snapshot(ctx, bn)).toEqual(before);
    bn.destroy();
    count(backend);
  }

  const x4 = (shape: number[], layout: 'channels_first' | 'channels_last' = 'channels_first') =>
    ctx.tensor(
      new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.cos(i)),
      shape,
      { layout },
    );

  it('wrong rank', async () => {
    const x3 = x4([2, 3, 4]);
    await expectRejected((bn) => bn.forward(x3), ShapeError, /input must be 4-D .*got 3-D input of shape \[2, 3, 4\]/);
    const bn1 = new BatchNorm1d(ctx, 3);
    expect(() => bn1.forward(x4([2, 3, 2, 2]))).toThrow(/BatchNorm1d: input must be 2-D or 3-D/);
    const bn3 = new BatchNorm3d(ctx, 3);
    expect(() => bn3.forward(x4([2, 3, 2, 2]))).toThrow(ShapeError);
    bn1.destroy();
    bn3.destroy();
  });

  it('channel count mismatch', async () => {
    const c4 = x4([2, 4, 2, 2]);
    const c2 = x4([2, 2, 2, 2]);
    await expectRejected((bn) => bn.forward(c4), ShapeError, /has 4 channels .* numFeatures = 3/);
    await expectRejected((bn) => bn.eval().forward(c2), ShapeError, /has 2 channels/);
  });

  it('data length not matching the shape', () => {
    expect(() => ctx.tensor(new Float32Array(10), [2, 3, 2])).toThrow(ShapeError);
    expect(() => ctx.tensor(new Float32Array(10), [2, 3, 2])).toThrow(/data has 10 values but shape \[2, 3, 2\] needs 12/);
    expect(() => ctx.tensor(new Float32Array(4), [2, -2])).toThrow(/non-negative integers/);
    expect(() => ctx.tensor(new Float32Array(4), [2, 2], { layout: 'nhwc' as 'channels_last' })).toThrow(ArgumentError);
    count(backend);
  });

  it('empty tensor', async () => {
    const e1 = ctx.tensor(new Float32Array(0), [0, 3, 2, 2]);
    const e2 = ctx.tensor(new Float32Array(0), [2, 3, 0, 2]);
    await expectRejected((bn) => bn.forward(e1), ShapeError, /input is empty/);
    await expectRejected((bn) => bn.eval().forward(e2), ShapeError, /input is empty/);
  });

  it('one value per channel in training', async () => {
    const one = x4([1, 3, 1, 1]);
    await expectRejected(
      (bn) => bn.forward(one),
      InsufficientValuesError,
      /expected more than 1 value per channel when training.*\[1, 3, 1, 1\]/,
    );
    // eval with running stats accepts it, like PyTorch
    const bn = await trainedModule();
    bn.eval()
      .forward(x4([1, 3, 1, 1]))
      .destroy();
    // without running stats, eval also uses batch statistics and must reject it
    const nt = new BatchNorm1d(ctx, 3, { trackRunningStats: false }).eval();
    expect(() => nt.forward(x4([1, 3]))).toThrow(InsufficientValuesError);
    expect(() => batchNorm(ctx, x4([1, 3]), { training: true })).toThrow(InsufficientValuesError);
    bn.destroy();
    nt.destroy();
  });

  it('eps <= 0 or NaN, momentum outside [0, 1]', async () => {
    for (const eps of [0, -1e-5, Number.NaN, Infinity]) {
      expect(() => new BatchNorm2d(ctx, 3, { eps })).toThrow(ArgumentError);
      expect(() => new BatchNorm2d(ctx, 3, { eps })).toThrow(/eps must be a finite number > 0/);
      await expectRejected((bn) => (bn.eps = eps), ArgumentError, /eps must be/);
      expect(() => batchNorm(ctx, x4([2, 3]), { training: true, eps })).toThrow(ArgumentError);
    }
    for (const momentum of [-0.1, 1.5, Number.NaN]) {
      expect(() => new BatchNorm2d(ctx, 3, { momentum })).toThrow(/momentum must be a number in \[0, 1\] or null/);
      await expectRejected((bn) => (bn.momentum = momentum), ArgumentError, /momentum/);
      expect(() => batchNorm(ctx, x4([2, 3]), { training: true, momentum })).toThrow(ArgumentError);
    }
    // the functional form takes no null momentum, as F.batch_norm
    expect(() => batchNorm(ctx, x4([2, 3]), { training: true, momentum: null as unknown as number })).toThrow(
      /momentum must be a number in \[0, 1\]/,
    );
    expect(() => new BatchNorm2d(ctx, 0)).toThrow(/numFeatures must be a positive integer/);
  });

  it('tensor from another context', async () => {
    const foreign = other.tensor(new Float32Array(12), [1, 3, 2, 2]);
    await expectRejected((bn) => bn.forward(foreign), ContextMismatchError, /belongs to another context/);
    const rm = other.tensor(new Float32Array(3), [3]);
    const rv = other.tensor(new Float32Array(3).fill(1), [3]);
    expect(() => batchNorm(ctx, x4([2, 3]), { runningMean: rm, runningVar: rv })).toThrow(ContextMismatchError);
  });

  it('destroyed tensor, module and context', async () => {
    const x = x4([2, 3, 2, 2]);
    x.destroy();
    await expectRejected((bn) => bn.forward(x), DestroyedError, /used after destroy/);
    await expect(x.read()).rejects.toThrow(DestroyedError);
    const bn = await trainedModule();
    bn.destroy();
    expect(() => bn.forward(x4([2, 3, 2, 2]))).toThrow(DestroyedError);
    const dead = await contextFor(backend);
    const t = dead.tensor(new Float32Array(4), [2, 2]);
    dead.destroy();
    expect(() => dead.tensor(new Float32Array(4), [2, 2])).toThrow(DestroyedError);
    await expect(t.read()).rejects.toThrow(DestroyedError);
  });

  it('.buffer of a tensor: a GPUBuffer on webgpu, ArgumentError on the cpu backend', () => {
    const t = ctx.tensor(new Float32Array(4), [2, 2], { label: 'held' });
    if (backend === 'cpu') {
      expect(() => t.buffer).toThrow(ArgumentError);
      expect(() => t.buffer).toThrow(/'held'\.buffer: expected a tensor of the 'webgpu' backend, got one of the 'cpu' backend/);
    } else {
      expect(t.buffer.size).toBeGreaterThanOrEqual(16);
    }
    t.destroy();
    expect(() => t.buffer).toThrow(DestroyedError);
    count(backend);
  });

  it('output of the wrong shape or the input itself', async () => {
    const x = x4([2, 3, 2, 2]);
    const wrongShape = x4([2, 3, 4]);
    const wrongLayout = x4([2, 3, 2, 2], 'channels_last');
    await expectRejected((bn) => bn.forward(x, { out: wrongShape }), ShapeError, /output must match/);
    await expectRejected((bn) => bn.forward(x, { out: wrongLayout }), ShapeError, /layout/);
    await expectRejected((bn) => bn.forward(x, { out: x }), ArgumentError, /must not be the input/);
  });

  it('state dict with wrong keys, lengths or types', async () => {
    const good = { weight: [1, 1, 1], bias: [0, 0, 0], running_mean: [0, 0, 0], running_var: [1, 1, 1], num_batches_tracked: 4 };
    await expectRejected(
      (bn) => bn.loadStateDict({ ...good, weight: [1, 2] }),
      StateDictError,
      /'weight' must have length 3 \(numFeatures\), got 2/,
    );
    const { running_var: _rv, ...missing } = good;
    await expectRejected((bn) => bn.loadStateDict(missing), StateDictError, /missing \[running_var\]/);
    await expectRejected((bn) => bn.loadStateDict({ ...good, foo: [1] } as typeof good), StateDictError, /unexpected \[foo\]/);
    await expectRejected((bn) => bn.loadStateDict({ ...good, num_batches_tracked: -1 }), StateDictError, /num_batches_tracked/);
    await expectRejected(
      (bn) => bn.loadStateDict({ ...good, running_mean: ['a', 0, 0] as unknown as number[] }),
      StateDictError,
      /not a number/,
    );
    const noAffine = new BatchNorm2d(ctx, 3, { affine: false });
    expect(() => noAffine.loadStateDict(good)).toThrow(/unexpected \[weight, bias\]/);
    noAffine.destroy();
  });

  it('unknown option keys: named with the allowed ones, before any allocation or GPU work', async () => {
    // A typo must not be ignored silently. `loose` hands the library what a JS caller (or a cast)
    // could: an options object with a key its type does not have.
    const loose = <T>(o: object): T => o as T;
    const unknown = (key: string, allowed: string[]): RegExp =>
      new RegExp(`unknown option '${key}'; allowed: ${allowed.map((k) => `'${k}'`).join(', ')}$`);
    const stats = (): string => JSON.stringify([ctx.stats.buffersCreated, ctx.stats.liveBuffers, ctx.stats.submits]);
    /** Runs `bad` outside a module: the class and message, and no buffer made or submit done. */
    const expectNoWork = async (bad: () => unknown, message: RegExp): Promise<void> => {
      await ctx.sync();
      const before = stats();
      let thrown: unknown = null;
      try {
        await bad();
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ArgumentError);
      expect((thrown as Error).message).toMatch(message);
      expect(stats()).toBe(before);
      count(backend);
    };
    const x = x4([2, 3, 2, 2]);
    const dy = x4([2, 3, 2, 2]);
    const c3 = ctx.tensor(new Float32Array(3), [3]);
    const v3 = ctx.tensor(new Float32Array(3).fill(1), [3]);

    await expectNoWork(
      () => new BatchNorm2d(ctx, 3, loose({ momentom: 0.2 })),
      unknown('momentom', [
        'convention',
        'eps',
        'momentum',
        'varianceMomentum',
        'momentumMeaning',
        'varianceEstimator',
        'affine',
        'scale',
        'center',
        'trackRunningStats',
      ]),
    );
    expect(() => new BatchNorm2d(ctx, 3, loose({ momentom: 0.2 }))).toThrow(/^BatchNorm2d options: /);
    await expectRejected(
      (bn) => bn.forward(x, loose({ epilog: { activation: 'relu' } })),
      ArgumentError,
      unknown('epilog', ['out', 'batchStats', 'epilogue']),
    );
    await expectRejected(
      (bn) => bn.forward(x, { batchStats: loose({ mean: c3, varience: v3 }) }),
      ArgumentError,
      /batchStats: unknown option 'varience'; allowed: 'mean', 'invstd', 'variance'/,
    );
    await expectRejected(
      (bn) => bn.backward(dy, loose({ outputMsk: [true, false, false] })),
      ArgumentError,
      unknown('outputMsk', ['outputMask']),
    );
    // Several unknown keys are all named.
    await expectRejected(
      (bn) => bn.forward(x, loose({ epilog: null, output: null })),
      ArgumentError,
      /unknown options 'epilog', 'output'; allowed:/,
    );
    await expectRejected(
      (bn) => loadBatchNorm(bn, file, 'bn1', loose({ convention: false })),
      ArgumentError,
      /^loadBatchNorm options: unknown option 'convention'; allowed: 'conventions'$/,
    );
    await expectNoWork(
      () => batchNorm(ctx, x, loose({ trainig: true })),
      /^batchNorm options: unknown option 'trainig'; allowed: 'runningMean', .*'epilogue'$/,
    );
    await expectNoWork(
      () => batchNormBackward(ctx, { gradOutput: dy, input: x, saveMean: c3, saveInvstd: v3 }, loose({ mask: [true, true, true] })),
      unknown('mask', ['outputMask']),
    );
    await expectNoWork(
      () => batchNormBackward(ctx, loose({ gradOutput: dy, input: x, saveMean: c3, saveInvStd: v3 })),
      /^batchNormBackward args: unknown option 'saveInvStd'; allowed: 'gradOutput', 'input', .*'bias'$/,
    );
    await expectNoWork(
      () => onnxBatchNormalization(ctx, { X: x, scale: v3, B: c3, inputMean: c3, inputVar: v3 }, loose({ training_mode: 1 })),
      unknown('training_mode', ['epsilon', 'momentum', 'trainingMode']),
    );
    await expectNoWork(() => ctx.tensor([1, 2], [2], loose<object>({ lable: 'x' })), unknown('lable', ['layout', 'label', 'dtype']));
    await expectNoWork(
      () => createContext(loose({ backend, poolbytes: 0 })),
      /^createContext options: unknown option 'poolbytes'; allowed: 'backend', 'device', 'powerPreference', 'accessPattern', 'poolBytes'$/,
    );
    await expectNoWork(
      () =>
        foldBatchNorm(
          { weight: [1, 2, 3], weightShape: [3, 1] },
          { running_mean: [0, 0, 0], running_var: [1, 1, 1] },
          loose({ epsilon: 1e-3 }),
        ),
      unknown('epsilon', ['eps', 'layout']),
    );
    const bn = new BatchNorm2d(ctx, 3).eval();
    const w = ctx.tensor(new Float32Array(3), [3, 1]);
    await expectNoWork(() => foldBatchNormTensors(bn, { weight: w }, loose({ layuot: 'channels_last' })), unknown('layuot', ['layout']));
    if (ctx.gpu) {
      const device = ctx.device as GPUDevice;
      const encoder = device.createCommandEncoder();
      const y = x4([2, 3, 2, 2]);
      const buffer = device.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE });
      await expectNoWork(
        () => ctx.tensorFromBuffer(buffer, [3], loose<object>({ offset: 0 })),
        unknown('offset', ['layout', 'label', 'byteOffset', 'dtype']),
      );
      await expectNoWork(
        () => encodeFoldBatchNorm(encoder, bn, { weight: w }, { weight: y, bias: c3 }, loose({ layuot: 'channels_last' })),
        unknown('layuot', ['layout']),
      );
      await expectRejected(
        (m) => m.encodeForward(encoder, x, y, loose({ epilog: null })),
        ArgumentError,
        unknown('epilog', ['epilogue', 'batchStats']),
      );
      await expectRejected(
        (m) => m.encodeBackward(encoder, dy, loose({ gradInpt: y })),
        ArgumentError,
        /encodeBackward outputs: unknown option 'gradInpt'; allowed: 'gradInput', 'gradWeight', 'gradBias', 'gradResidual', 'gradPreluWeight'$/,
      );
      encoder.finish();
      buffer.destroy();
      y.destroy();
    }
    for (const t of [x, dy, c3, v3, w]) t.destroy();
    bn.destroy();
  });

  it('F.batch_norm argument errors', () => {
    const x = x4([2, 3]);
    expect(() => batchNorm(ctx, x, { training: false })).toThrow(/runningMean and runningVar must be defined when training is false/);
    const rm = ctx.tensor(new Float32Array(4), [4]);
    const rv = ctx.tensor(new Float32Array(4), [4]);
    expect(() => batchNorm(ctx, x, { runningMean: rm, runningVar: rv })).toThrow(/runningMean must have shape \[3\], got \[4\]/);
    expect(() => batchNorm(ctx, x, { runningMean: rm })).toThrow(/must be given together/);
    expect(() => batchNorm(ctx, ctx.tensor(new Float32Array(3), [3]), { training: true })).toThrow(/at least 2-D/);
    count(backend);
  });
});

describe('device limits', () => {
  it('rejects a tensor larger than the device can bind, before allocating', async () => {
    const ctx = await contextFor('webgpu');
    const max = ctx.gpu?.maxTensorBytes ?? 0;
    const values = Math.floor(max / 4) + 4;
    const before = ctx.stats.buffersCreated;
    expect(() => ctx.tensor(new Float32Array(0), [values, 1])).toThrow(DeviceLimitError);
    expect(() => ctx.tensor(new Float32Array(0), [values, 1])).toThrow(/exceed this device's limit/);
    expect(ctx.stats.buffersCreated).toBe(before);
    ctx.destroy();
    count('webgpu');
  });

  it('respects the limits of a caller-supplied device', async () => {
    // A device with default limits: storage bindings of at most 128 MiB.
    const { create } = (await import('webgpu')) as unknown as {
      create: (f: string[]) => GPU;
      globals: Record<string, unknown>;
    };
    const adapter = await create([]).requestAdapter();
    if (!adapter) throw new Error('no adapter');
    const device = await adapter.requestDevice();
    const ctx = await createContext({ backend: 'webgpu', device });
    const limit = device.limits.maxStorageBufferBindingSize;
    expect(() => ctx.tensor(new Float32Array(0), [limit / 4 + 16, 1])).toThrow(DeviceLimitError);
    ctx.destroy();
    expect(device.lost).toBeInstanceOf(Promise);
    device.destroy();
  });
});
