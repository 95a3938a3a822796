import type { DType } from '../dtype.js';
import { optionKeys, optionsObject } from '../arguments.js';
import { assertContext, type BatchNormContext } from '../context.js';
import { ArgumentError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { checkEpilogue, type Epilogue } from './epilogue.js';
import { channelStatsBytes, COUNTER_BYTES } from '../gpu/contracts.js';
import { checkNoAliasing } from './aliasing.js';
import type { ConventionName, MomentumMeaning, VarianceEstimator } from './config/conventions.js';
import { runForward, type BatchStatsOutputs } from './forward.js';
import { checkBoolean } from './config/options.js';
import { kernelEps, resolveConvention, runningUpdateOf } from './config/settings.js';
import { checkBatchStatsOutputs, checkChannelTensor, checkInput, checkOutput, checkTrainingValues, isEmptyBatch } from './validate.js';

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
  /**
   * Whose conventions to follow (see `CONVENTIONS`): sets the defaults of eps, momentum and its
   * meaning, the variance estimator and the edge-case rules. Default `'pytorch'`.
   */
  convention?: ConventionName;
  /** Running-average momentum in [0, 1], in the meaning of `momentumMeaning`. Default: the convention's (PyTorch 0.1). */
  momentum?: number;
  /** Momentum of the running variance when it differs from the mean's (MATLAB VarianceDecay). Default `momentum`. */
  varianceMomentum?: number;
  /** What `momentum` weighs: `'batch'` (PyTorch) or `'running'` (Keras, ONNX). Default: the convention's. */
  momentumMeaning?: MomentumMeaning;
  /** Variance that feeds running_var: `'unbiased'` or `'biased'`. Default: the convention's. */
  varianceEstimator?: VarianceEstimator;
  /** Default: the convention's (PyTorch 1e-5); must be > 0 (≥ 0 where the convention accepts 0). */
  eps?: number;
  /** Write the result here instead of allocating a tensor. */
  out?: Tensor;
  /**
   * Training only: tensors of shape [C] that receive the batch mean, invstd and biased variance,
   * computed in the same passes (PyTorch's save_mean / save_invstd). On WebGPU each needs COPY_DST.
   */
  batchStats?: Partial<BatchStatsOutputs>;
  /** Fused epilogue: y = activation(batch_norm(x) + residual) in the same pass. Default none. */
  epilogue?: Epilogue;
}

/** The keys of {@link BatchNormFunctionalOptions}; any other key is rejected. */
export const BATCH_NORM_FUNCTIONAL_OPTION_KEYS = optionKeys<BatchNormFunctionalOptions>({
  runningMean: true,
  runningVar: true,
  weight: true,
  bias: true,
  training: true,
  convention: true,
  momentum: true,
  varianceMomentum: true,
  momentumMeaning: true,
  varianceEstimator: true,
  eps: true,
  out: true,
  batchStats: true,
  epilogue: true,
});

const WHO = 'batchNorm';

/**
 * `torch.nn.functional.batch_norm` on this context's backend: normalizes `x` (N, C, ...) with
 * batch statistics when `training`, else with `runningMean`/`runningVar`.
 */
export function batchNorm<D extends DType>(
  ctx: BatchNormContext,
  x: Tensor<D>,
  options: BatchNormFunctionalOptions | null = {},
): Tensor<D> {
  // The output has the input's dtype (checked and allocated so below).
  return batchNormAnyDType(ctx, x, options) as Tensor<D>;
}

function batchNormAnyDType(ctx: BatchNormContext, x: Tensor, options: BatchNormFunctionalOptions | null): Tensor {
  assertContext(ctx, WHO);
  const opts = optionsObject<BatchNormFunctionalOptions>(options, `${WHO} options`, BATCH_NORM_FUNCTIONAL_OPTION_KEYS);
  ctx.assertOwnTensor(x, 'input');
  if (opts.training === true && isEmptyBatch(x, null, null) && resolveConvention(opts, false).convention.emptyBatch === 'skip') {
    // tf.keras leaves the moving statistics alone on an empty batch; the output is empty too.
    if (opts.out) checkOutput(ctx, opts.out, x, WHO);
    return opts.out ?? ctx.allocTensor(x.shape, x.layout, 'output', x.dtype);
  }
  const g = checkInput(ctx, x, 'input', null, null, WHO, 'any');
  const training = checkBoolean(opts.training ?? false, 'training');
  const settings = resolveConvention(opts, false);
  const runningMean = opts.runningMean ?? null;
  const runningVar = opts.runningVar ?? null;
  const weight = opts.weight ?? null;
  const bias = opts.bias ?? null;
  if ((runningMean === null) !== (runningVar === null)) {
    throw new ArgumentError(
      `${WHO}: runningMean and runningVar must be given together (got only ${runningMean ? 'runningMean' : 'runningVar'})`,
    );
  }
  if (!training && !runningMean) {
    throw new ArgumentError(`${WHO}: runningMean and runningVar must be defined when training is false`);
  }
  for (const [name, t] of [
    ['runningMean', runningMean],
    ['runningVar', runningVar],
    ['weight', weight],
    ['bias', bias],
  ] as const) {
    if (t) checkChannelTensor(ctx, t, name, g.c, WHO);
  }
  if (training && settings.convention.singleValue === 'error') checkTrainingValues(g, x.shape, WHO);
  if (opts.out) checkOutput(ctx, opts.out, x, WHO);
  const batchStats = checkBatchStatsOutputs(ctx, opts.batchStats, g.c, training, WHO);
  const epilogue = checkEpilogue(ctx, opts.epilogue, x, WHO);
  const updatesRunning = training && runningMean !== null;
  checkNoAliasing(
    ctx,
    WHO,
    [
      ['input', x],
      ['epilogue.residual', epilogue?.residual ?? null],
      ['epilogue.activation.weight', epilogue?.activation.weight ?? null],
      ['weight', weight],
      ['bias', bias],
      ...(updatesRunning
        ? []
        : ([
            ['runningMean', runningMean],
            ['runningVar', runningVar],
          ] as const)),
    ],
    [
      ['output', opts.out ?? null],
      ...(updatesRunning
        ? ([
            ['runningMean', runningMean],
            ['runningVar', runningVar],
          ] as const)
        : []),
      ['batchStats.mean', batchStats?.mean ?? null],
      ['batchStats.invstd', batchStats?.invstd ?? null],
      ['batchStats.variance', batchStats?.variance ?? null],
    ],
  );

  const gpu = ctx.gpu;
  const buffers = gpu
    ? {
        counter: gpu.scratch('functional.counter', COUNTER_BYTES),
        channelStats: gpu.scratch('functional.channelStats', channelStatsBytes(g.c)),
      }
    : null;
  const y = opts.out ?? ctx.allocTensor(x.shape, x.layout, 'output', x.dtype);
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
    runForward(
      ctx,
      x,
      y,
      g,
      {
        weight: w,
        bias: b,
        runningMean,
        runningVar,
        eps: kernelEps(settings),
        update: runningUpdateOf(settings),
        useBatchStats: training,
        updateRunning: training && runningMean !== null,
        tracked: 0,
        batchStats,
        epilogue,
      },
      buffers,
    );
  } catch (err) {
    if (!opts.out) y.destroy();
    throw err;
  } finally {
    for (const t of temporaries) t.destroy();
  }
  return y;
}
