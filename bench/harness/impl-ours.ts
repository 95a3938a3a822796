/**
 * The library itself. On WebGPU the benchmark measures the kernels the way a kernel benchmark
 * should: zero-copy tensors over the harness's own buffers (`ctx.tensorFromBuffer`) and K
 * iterations recorded with `encodeForward` / `encodeBackward` into one encoder, one submit, then
 * the queue drained. On the CPU backend it calls `forward(x, { out })` and `backward(dy)`.
 */
import type * as Library from '../../src/index.js';
import { relativeError, worstError } from './data.js';
import { createTensorBuffer, poison, readFloats, submitTimed } from './gpu.js';
import { unavailableSet, type CaseContext, type Impl, type ImplSet } from './impl.js';

type Module = Library.BatchNorm;

/**
 * Which convention the module follows. `keras` is the same computation typed as a Keras user
 * would (momentum 0.9 = old-value weight, biased running variance, Keras state names): it
 * checks that conventions cost nothing next to the PyTorch default.
 */
export type OursVariant = 'pytorch' | 'keras';

/** A module of the case's rank with the case's parameters and running statistics loaded. */
export function moduleFor(cc: CaseContext, ctx: Library.BatchNormContext, variant: OursVariant = 'pytorch'): Module {
  const c = cc.data.geometry.c;
  const options =
    variant === 'keras'
      ? { convention: 'keras' as const, eps: cc.data.eps, momentum: 1 - cc.data.momentum }
      : { eps: cc.data.eps, momentum: cc.data.momentum };
  const rank = cc.shape.length;
  const bn =
    rank === 5
      ? new cc.lib.BatchNorm3d(ctx, c, options)
      : rank === 4
        ? new cc.lib.BatchNorm2d(ctx, c, options)
        : new cc.lib.BatchNorm1d(ctx, c, options);
  if (variant === 'keras') {
    bn.loadStateDict({ gamma: cc.data.weight, beta: cc.data.bias, moving_mean: cc.data.runningMean, moving_variance: cc.data.runningVar });
    return bn;
  }
  bn.loadStateDict({
    weight: cc.data.weight,
    bias: cc.data.bias,
    running_mean: cc.data.runningMean,
    running_var: cc.data.runningVar,
    num_batches_tracked: 0,
  });
  return bn;
}

/**
 * `webgpu-batchnorm` train / eval / backward on the shared device; with `variant` 'keras' the
 * `webgpu-batchnorm-keras` row (train and eval through the Keras preset).
 */
export function createOursGpu(cc: CaseContext, ctx: Library.BatchNormContext | null, variant: OursVariant = 'pytorch'): ImplSet {
  const gpu = cc.gpu;
  const xBuffer = cc.xBuffer;
  const dyBuffer = cc.dyBuffer;
  const name = variant === 'keras' ? 'webgpu-batchnorm-keras' : 'webgpu-batchnorm';
  const ops = variant === 'keras' ? (['train', 'eval'] as const) : (['train', 'eval', 'backward'] as const);
  if (!gpu || !xBuffer || !dyBuffer || !ctx) return unavailableSet(name, ops, 'no WebGPU device');
  const device = gpu.device;
  const { geometry: g, refTrain, refEval, refGradInput, refGradWeight, refGradBias } = cc.data;
  const bytes = g.size * 4;
  const shape = cc.shape;
  const layout = cc.layout;
  const x = ctx.tensorFromBuffer(xBuffer, shape, { layout, label: 'x' });
  const dy = ctx.tensorFromBuffer(dyBuffer, shape, { layout, label: 'dy' });
  const note = 'ctx.tensorFromBuffer + K× encodeForward/encodeBackward in one encoder, one submit';

  const forwardImpl = (op: 'train' | 'eval'): Impl => {
    const bn = moduleFor(cc, ctx, variant);
    if (op === 'eval') bn.eval();
    const yBuffer = createTensorBuffer(device, `bench.ours.${op}.y`, bytes);
    const y = ctx.tensorFromBuffer(yBuffer, shape, { layout, label: 'y' });
    const run = (k: number): Promise<number | null> =>
      submitTimed(
        device,
        `bench.ours.${op}`,
        (e) => {
          for (let i = 0; i < k; i++) bn.encodeForward(e, x, y);
        },
        cc.span,
      );
    return {
      impl: name,
      op,
      kind: 'gpu',
      note: variant === 'keras' ? `${note}; convention 'keras', momentum 0.9` : note,
      async verify() {
        poison(device, yBuffer, g.size);
        await run(1);
        await ctx.sync();
        return relativeError(await readFloats(device, yBuffer, g.size), op === 'train' ? refTrain : refEval);
      },
      run,
      dispose() {
        bn.destroy();
        y.destroy();
        yBuffer.destroy();
      },
    };
  };

  const backwardImpl = (): Impl => {
    const bn = moduleFor(cc, ctx);
    const c = g.c;
    const yBuffer = createTensorBuffer(device, 'bench.ours.backward.y', bytes);
    const dxBuffer = createTensorBuffer(device, 'bench.ours.backward.dx', bytes);
    const dwBuffer = createTensorBuffer(device, 'bench.ours.backward.dw', c * 4);
    const dbBuffer = createTensorBuffer(device, 'bench.ours.backward.db', c * 4);
    const y = ctx.tensorFromBuffer(yBuffer, shape, { layout, label: 'y' });
    const gradInput = ctx.tensorFromBuffer(dxBuffer, shape, { layout, label: 'grad_input' });
    const gradWeight = ctx.tensorFromBuffer(dwBuffer, [c], { label: 'grad_weight' });
    const gradBias = ctx.tensorFromBuffer(dbBuffer, [c], { label: 'grad_bias' });
    let forwardDone = false;
    const run = async (k: number): Promise<number | null> => {
      if (!forwardDone) {
        // One training forward leaves the saved statistics that every timed backward reuses.
        await submitTimed(device, 'bench.ours.backward.forward', (e) => bn.encodeForward(e, x, y), null);
        forwardDone = true;
      }
      return submitTimed(
        device,
        'bench.ours.backward',
        (e) => {
          for (let i = 0; i < k; i++) bn.encodeBackward(e, dy, { gradInput, gradWeight, gradBias });
        },
        cc.span,
      );
    };
    return {
      impl: 'webgpu-batchnorm',
      op: 'backward',
      kind: 'gpu',
      note,
      async verify() {
        poison(device, dxBuffer, g.size);
        poison(device, dwBuffer, c);
        poison(device, dbBuffer, c);
        await run(1);
        await ctx.sync();
        return worstError(
          relativeError(await readFloats(device, dxBuffer, g.size), refGradInput),
          relativeError(await readFloats(device, dwBuffer, c), refGradWeight),
          relativeError(await readFloats(device, dbBuffer, c), refGradBias),
        );
      },
      run,
      dispose() {
        bn.destroy();
        for (const t of [y, gradInput, gradWeight, gradBias]) t.destroy();
        for (const b of [yBuffer, dxBuffer, dwBuffer, dbBuffer]) b.destroy();
      },
    };
  };

  return {
    items: variant === 'keras' ? [forwardImpl('train'), forwardImpl('eval')] : [forwardImpl('train'), forwardImpl('eval'), backwardImpl()],
    dispose() {
      // Only the wrappers: the buffers belong to the harness.
      x.destroy();
      dy.destroy();
    },
  };
}

/** `webgpu-batchnorm-cpu`: the same modules on `createContext({ backend: 'cpu' })`. */
export function createOursCpu(cc: CaseContext, ctx: Library.BatchNormContext): ImplSet {
  const { geometry: g, refTrain, refEval, refGradInput, refGradWeight, refGradBias } = cc.data;
  const shape = cc.shape;
  const layout = cc.layout;
  const x = ctx.tensor(cc.data.x, shape, { layout, label: 'x' });
  const dy = ctx.tensor(cc.data.dy, shape, { layout, label: 'dy' });
  const zeros = new Float32Array(g.size);
  const owned: Library.Tensor[] = [x, dy];

  const forwardImpl = (op: 'train' | 'eval'): Impl => {
    const bn = moduleFor(cc, ctx);
    if (op === 'eval') bn.eval();
    const y = ctx.tensor(zeros, shape, { layout, label: 'y' });
    owned.push(y);
    return {
      impl: 'webgpu-batchnorm-cpu',
      op,
      kind: 'cpu',
      note: "createContext({ backend: 'cpu' }), forward(x, { out })",
      async verify() {
        bn.forward(x, { out: y });
        return relativeError(await y.read(), op === 'train' ? refTrain : refEval);
      },
      async run(k) {
        for (let i = 0; i < k; i++) bn.forward(x, { out: y });
        return null;
      },
      dispose() {
        bn.destroy();
      },
    };
  };

  const backwardImpl = (): Impl => {
    const bn = moduleFor(cc, ctx);
    const y = ctx.tensor(zeros, shape, { layout, label: 'y' });
    owned.push(y);
    bn.forward(x, { out: y });
    return {
      impl: 'webgpu-batchnorm-cpu',
      op: 'backward',
      kind: 'cpu',
      note: 'backward(dy) after one training forward; it allocates its three outputs every call (there is no `out` option)',
      async verify() {
        const r = bn.backward(dy);
        try {
          if (!r.gradInput || !r.gradWeight || !r.gradBias) return Number.NaN;
          return worstError(
            relativeError(await r.gradInput.read(), refGradInput),
            relativeError(await r.gradWeight.read(), refGradWeight),
            relativeError(await r.gradBias.read(), refGradBias),
          );
        } finally {
          r.gradInput?.destroy();
          r.gradWeight?.destroy();
          r.gradBias?.destroy();
        }
      },
      async run(k) {
        for (let i = 0; i < k; i++) {
          const r = bn.backward(dy);
          r.gradInput?.destroy();
          r.gradWeight?.destroy();
          r.gradBias?.destroy();
        }
        return null;
      },
      dispose() {
        bn.destroy();
      },
    };
  };

  return {
    items: [forwardImpl('train'), forwardImpl('eval'), backwardImpl()],
    dispose() {
      for (const t of owned) t.destroy();
    },
  };
}
