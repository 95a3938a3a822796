import { optionsObject } from '../arguments.js';
import { assertContext, type BatchNormContext } from '../context.js';
import { ArgumentError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { runForward } from './forward.js';
import { channelStatsBytes } from '../gpu/contracts.js';
import { checkNoAliasing } from './aliasing.js';
import { checkBoolean, checkEps, checkMomentum } from './options.js';
import { checkChannelTensor, checkInput, checkOutput, checkTrainingValues } from './validate.js';

/** Arguments of {@link batchNorm}, named as in `torch.nn.functional.batch_norm`. */
export interface BatchNormFunctionalOptions {
  /** Shape [C]. Required when `training` is false; updated in place when `training` is true. */
  runningMean?: Tensor | null;
  /** Shape [C]; given together with `runningMean`. */
  runningVar?: Tensor | null;
  /** Shape [C], default all ones. */
  weight?: Tensor | null;
  /** Shape [C], default all zeros. */
  bias?: Tensor | null;
  /** Use batch statistics (and update the running ones). Default false, as in PyTorch. */
  training?: boolean;
  /** Running-average factor in [0, 1]. Default 0.1. */
  momentum?: number;
  /** Default 1e-5; must be > 0. */
  eps?: number;
  /** Write the result here instead of allocating a tensor. */
  out?: Tensor;
}

const WHO = 'batchNorm';

/**
 * `torch.nn.functional.batch_norm` on this context's backend: normalizes `x` (N, C, ...) with
 * batch statistics when `training`, else with `runningMean`/`runningVar`.
 */
export function batchNorm(ctx: BatchNormContext, x: Tensor, options: BatchNormFunctionalOptions | null = {}): Tensor {
  assertContext(ctx, WHO);
  const opts = optionsObject<BatchNormFunctionalOptions>(options, `${WHO} options`);
  const g = checkInput(ctx, x, 'input', null, null, WHO);
  const training = checkBoolean(opts.training ?? false, 'training');
  const eps = checkEps(opts.eps ?? 1e-5);
  const momentumArg = opts.momentum === undefined ? 0.1 : opts.momentum;
  const momentum = checkMomentum(momentumArg, false);
  const runningMean = opts.runningMean ?? null;
  const runningVar = opts.runningVar ?? null;
  const weight = opts.weight ?? null;
  const bias = opts.bias ?? null;
  if ((runningMean === null) !== (runningVar === null)) {
    throw new ArgumentError(`${WHO}: runningMean and runningVar must be given together (got only ${runningMean ? 'runningMean' : 'runningVar'})`);
  }
  if (!training && !runningMean) {
    throw new ArgumentError(`${WHO}: runningMean and runningVar must be defined when training is false`);
  }
  for (const [name, t] of [['runningMean', runningMean], ['runningVar', runningVar], ['weight', weight], ['bias', bias]] as const) {
    if (t) checkChannelTensor(ctx, t, name, g.c, WHO);
  }
  if (training) checkTrainingValues(g, x.shape, WHO);
  if (opts.out) checkOutput(ctx, opts.out, x, WHO);
  const updatesRunning = training && runningMean !== null;
  checkNoAliasing(
    ctx,
    WHO,
    [['input', x], ['weight', weight], ['bias', bias], ...(updatesRunning ? [] : ([['runningMean', runningMean], ['runningVar', runningVar]] as const))],
    [['output', opts.out ?? null], ...(updatesRunning ? ([['runningMean', runningMean], ['runningVar', runningVar]] as const) : [])],
  );

  const gpu = ctx.gpu;
  const buffers = gpu
    ? {
        counter: gpu.scratch('functional.counter', 16),
        channelStats: gpu.scratch('functional.channelStats', channelStatsBytes(g.c)),
      }
    : null;
  const y = opts.out ?? ctx.allocTensor(x.shape, x.layout, 'output');
  // weight alone (bias null) or bias alone: the shader applies both, so fill in the identity.
  let w = weight;
  let b = bias;
  const temporaries: Tensor[] = [];
  if ((w === null) !== (b === null)) {
    const fill = (v: number, label: string): Tensor => {
      const t = ctx.tensor(new Float32Array(g.c).fill(v), [g.c], { label });
      temporaries.push(t);
      return t;
    };
    w ??= fill(1, 'weight');
    b ??= fill(0, 'bias');
  }
  try {
    runForward(ctx, x, y, g, {
      weight: w,
      bias: b,
      runningMean,
      runningVar,
      eps,
      momentum,
      useBatchStats: training,
      updateRunning: training && runningMean !== null,
      tracked: 0,
    }, buffers);
  } catch (err) {
    if (!opts.out) y.destroy();
    throw err;
  } finally {
    for (const t of temporaries) t.destroy();
  }
  return y;
}
