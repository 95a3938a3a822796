/**
 * The library itself. On WebGPU the benchmark measures the kernels the way a kernel benchmark
 * should: zero-copy tensors over the harness's own buffers (`ctx.tensorFromBuffer`) and K
 * iterations recorded with `encodeForward` / `encodeBackward` into one encoder, one submit, then
 * the queue drained. On the CPU backend it calls `forward(x, { out })` and `backward(dy)`.
 */
import type * as Library from '../../src/index.js';
import { relativeError, worstError, type CaseData } from './data.js';
import { createTensorBuffer, poison, readFloats, submitTimed } from './gpu.js';
import { unavailableSet, type CaseContext, type Impl, type ImplSet } from './impl.js';
import type { ImplName } from './types.js';

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

/** The references a GPU row of ours is checked against (the case's, or recomputed from rounded inputs). */
export type OursReferences = Pick<CaseData, 'refTrain' | 'refEval' | 'refGradInput' | 'refGradWeight' | 'refGradBias'>;

/**
 * What a GPU row of ours runs on: zero-copy x and dy over the harness's buffers, in a storage
 * dtype; its outputs' buffers are `bytes` long and read back as `words` float32 slots, which
 * `decode` turns into values (the identity for float32, widening for float16).
 */
export interface OursTensors {
  readonly impl: ImplName;
  /** Buffer and submit labels, e.g. `bench.ours`. */
  readonly label: string;
  readonly variant: OursVariant;
  readonly dtype: 'float32' | 'float16';
  readonly x: Library.Tensor;
  readonly dy: Library.Tensor;
  readonly bytes: number;
  readonly words: number;
  readonly decode: (words: Float32Array) => ArrayLike<number>;
  readonly refs: OursReferences;
  readonly note: string;
}

/** Train or eval: K× encodeForward into one encoder, one submit; y checked against the reference. */
export function oursForwardImpl(cc: CaseContext, ctx: Library.BatchNormContext, t: OursTensors, op: 'train' | 'eval'): Impl {
  const device = (cc.gpu as NonNullable<CaseContext['gpu']>).device;
  const bn = moduleFor(cc, ctx, t.variant);
  if (op === 'eval') bn.eval();
  const yBuffer = createTensorBuffer(device, `${t.label}.${op}.y`, t.bytes);
  const y = ctx.tensorFromBuffer(yBuffer, cc.shape, { layout: cc.layout, label: 'y', dtype: t.dtype });
  const run = (k: number): Promise<number | null> =>
    submitTimed(
      device,
      `${t.label}.${op}`,
      (e) => {
        for (let i = 0; i < k; i++) bn.encodeForward(e, t.x, y);
      },
      cc.span,
    );
  return {
    impl: t.impl,
    op,
    kind: 'gpu',
    note: t.note,
    async verify() {
      poison(device, yBuffer, t.words);
      await run(1);
      await ctx.sync();
      return relativeError(t.decode(await readFloats(device, yBuffer, t.words)), op === 'train' ? t.refs.refTrain : t.refs.refEval);
    },
    run,
    dispose() {
      bn.destroy();
      y.destroy();
      yBuffer.destroy();
    },
  };
}

/** Backward: one training forward, then K× encodeBackward (dx, dw, db) into one encoder, one submit. */
export function oursBackwardImpl(cc: CaseContext, ctx: Library.BatchNormContext, t: OursTensors): Impl {
  const device = (cc.gpu as NonNullable<CaseContext['gpu']>).device;
  const bn = moduleFor(cc, ctx, t.variant);
  const c = cc.data.geometry.c;
  const { shape, layout } = cc;
  const yBuffer = createTensorBuffer(device, `${t.label}.backward.y`, t.bytes);
  const dxBuffer = createTensorBuffer(device, `${t.label}.backward.dx`, t.bytes);
  const dwBuffer = createTensorBuffer(device, `${t.label}.backward.dw`, c * 4);
  const dbBuffer = createTensorBuffer(device, `${t.label}.backward.db`, c * 4);
  const y = ctx.tensorFromBuffer(yBuffer, shape, { layout, label: 'y', dtype: t.dtype });
  const gradInput = ctx.tensorFromBuffer(dxBuffer, shape, { layout, label: 'grad_input', dtype: t.dtype });
  const gradWeight = ctx.tensorFromBuffer(dwBuffer, [c], { label: 'grad_weight' });
  const gradBias = ctx.tensorFromBuffer(dbBuffer, [c], { label: 'grad_bias' });
  let forwardDone = false;
  const run = async (k: number): Promise<number | null> => {
    if (!forwardDone) {
      // One training forward leaves the saved statistics that every timed backward reuses.
      await submitTimed(device, `${t.label}.backward.forward`, (e) => bn.encodeForward(e, t.x, y), null);
      forwardDone = true;
    }
    return submitTimed(
      device,
      `${t.label}.backward`,
      (e) => {
        for (let i = 0; i < k; i++) bn.encodeBackward(e, t.dy, { gradInput, gradWeight, gradBias });
      },
      cc.span,
    );
  };
  return {
    impl: t.impl,
    op: 'backward',
    kind: 'gpu',
    note: t.note,
    async verify() {
      poison(device, dxBuffer, t.words);
      poison(device, dwBuffer, c);
      poison(device, dbBuffer, c);
      await run(1);
      await ctx.sync();
      return worstError(
        relativeError(t.decode(await readFloats(device, dxBuffer, t.words)), t.refs.refGradInput),
        relativeError(await readFloats(device, dwBuffer, c), t.refs.refGradWeight),
        relativeError(await readFloats(device, dbBuffer, c), t.refs.refGradBias),
      );
    },
    run,
    dispose() {
      bn.destroy();
      for (const tensor of [y, gradInput, gradWeight, gradBias]) tensor.destroy();
      for (const b of [yBuffer, dxBuffer, dwBuffer, dbBuffer]) b.destroy();
    },
  };
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
  const { shape, layout } = cc;
  const x = ctx.tensorFromBuffer(xBuffer, shape, { layout, label: 'x' });
  const dy = ctx.tensorFromBuffer(dyBuffer, shape, { layout, label: 'dy' });
  const note = 'ctx.tensorFromBuffer + K× encodeForward/encodeBackward in one encoder, one submit';
  const size = cc.data.geometry.size;
  const tensors: OursTensors = {
    impl: name,
    label: 'bench.ours',
    variant,
    dtype: 'float32',
    x,
    dy,
    bytes: size * 4,
    words: size,
    decode: (words) => words,
    refs: cc.data,
    note: variant === 'keras' ? `${note}; convention 'keras', momentum 0.9` : note,
  };
  const items = [oursForwardImpl(cc, ctx, tensors, 'train'), oursForwardImpl(cc, ctx, tensors, 'eval')];
  if (variant !== 'keras') items.push(oursBackwardImpl(cc, ctx, { ...tensors, note }));
  return {
    items,
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
