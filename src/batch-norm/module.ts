import type { DType } from '../dtype.js';
import { optionKeys, optionsObject } from '../arguments.js';
import type { BatchNormContext } from '../context.js';
import { ArgumentError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { checkEncoder, checkNoAliasing } from './aliasing.js';
import {
  BACKWARD_OPTION_KEYS,
  moduleBackward,
  moduleEncodeBackward,
  type BackwardOptions,
  type BackwardOutputs,
  type BackwardResult,
  type ModuleBackwardSource,
} from './backward.js';
import { checkEpilogue, type Epilogue, type ResolvedEpilogue } from './epilogue.js';
import { runForward, type BatchStatsOutputs, type ForwardRecord, type GpuForwardBuffers } from './forward.js';
import type { Geometry } from './geometry.js';
import { BatchNormModuleBase } from './module-base.js';
import type { BatchNormOptions } from './config/options.js';
import { checkBatchStatsOutputs, checkInput, checkOutput, checkTrainingValues, isEmptyBatch } from './validate.js';

/** Options of {@link BatchNorm.forward}. */
export interface ForwardOptions {
  /** Write into this tensor (same shape and layout as the input) instead of allocating one. */
  out?: Tensor;
  /**
   * Training forwards only: tensors of shape [C] that receive this batch's statistics, computed
   * in the same passes (PyTorch's save_mean/save_invstd, cuDNN's resultSaveMean /
   * resultSaveInvVariance, MATLAB's `[Y, mu, sigmaSq]`). `variance` is the biased one used to
   * normalize. On WebGPU each needs COPY_DST usage. Default none.
   */
  batchStats?: Partial<BatchStatsOutputs>;
  /**
   * Fused epilogue: y = activation(bn(x) + residual) in the same pass. Default none. Backward then
   * differentiates through it; a ReLU-family activation needs the returned output kept alive (and
   * unchanged) until backward, as cuDNN's fused BN + activation does.
   */
  epilogue?: Epilogue;
}

/** The keys of {@link ForwardOptions}; any other key is rejected. */
export const FORWARD_OPTION_KEYS = optionKeys<ForwardOptions>({ out: true, batchStats: true, epilogue: true });

/** Options of {@link BatchNorm.encodeForward}. */
export interface EncodeForwardOptions {
  /** Fused epilogue, as in {@link ForwardOptions.epilogue}. Default none. */
  epilogue?: Epilogue;
  /** Batch-statistics outputs, as in {@link ForwardOptions.batchStats}. Default none. */
  batchStats?: Partial<BatchStatsOutputs>;
}

/** The keys of {@link EncodeForwardOptions}; any other key is rejected. */
export const ENCODE_FORWARD_OPTION_KEYS = optionKeys<EncodeForwardOptions>({ epilogue: true, batchStats: true });

/**
 * Shared implementation of {@link BatchNorm1d}, {@link BatchNorm2d} and {@link BatchNorm3d}:
 * PyTorch's `_BatchNorm` on this library's backends.
 */
export abstract class BatchNorm extends BatchNormModuleBase {
  /** Input ranks this class accepts. */
  protected abstract readonly ranks: readonly number[];
  #gpu: GpuForwardBuffers | null;
  /** What the last forward left for backward. */
  #lastForward: ForwardRecord | null = null;

  /**
   * @param numFeatures C, the number of channels.
   * @param options see {@link BatchNormOptions}; `null` is the same as absent.
   * @throws ArgumentError for a bad option; DeviceLimitError when C channels do not fit the host
   *   or the device's buffer limits (checked before anything is allocated).
   */
  constructor(ctx: BatchNormContext, numFeatures: number, options: BatchNormOptions | null = {}) {
    super(ctx, numFeatures, options, new.target.name);
    const gpu = ctx.gpu;
    this.#gpu = gpu && this.channelStats && this.counter ? { counter: this.counter, channelStats: this.channelStats } : null;
  }

  /**
   * Normalizes `x` (logical shape (N, C, ...), either layout) and returns a tensor of the same
   * shape and layout. In training mode it uses the batch statistics and updates the running ones;
   * in eval mode it uses the running ones (batch ones if `trackRunningStats` is false).
   */
  forward<D extends DType>(x: Tensor<D>, options: ForwardOptions | null = {}): Tensor<D> {
    // The output has the input's dtype (checked and allocated so by the forward).
    return this.#forward(x, options) as Tensor<D>;
  }

  #forward(x: Tensor, options: ForwardOptions | null): Tensor {
    this.assertAlive();
    const opts = optionsObject<ForwardOptions>(options, `${this.name}.forward options`, FORWARD_OPTION_KEYS);
    if (this.#skipsEmpty(x)) {
      if (opts.out) checkOutput(this.ctx, opts.out, x, this.name);
      this.#lastForward = null;
      return opts.out ?? this.ctx.allocTensor(x.shape, x.layout, 'output', x.dtype);
    }
    const g = this.#check(x);
    const batchStats = checkBatchStatsOutputs(this.ctx, opts.batchStats, g.c, this.usesBatchStats, this.name);
    const epilogue = checkEpilogue(this.ctx, opts.epilogue, x, `${this.name}.forward`);
    if (opts.out || batchStats || epilogue) this.#checkOutput(x, opts.out ?? null, batchStats, `${this.name}.forward`, epilogue);
    const y = opts.out ?? this.ctx.allocTensor(x.shape, x.layout, 'output', x.dtype);
    try {
      this.#run(x, y, g, epilogue, undefined, batchStats);
    } catch (err) {
      if (!opts.out) y.destroy();
      throw err;
    }
    return y;
  }

  /**
   * Records the forward into your command encoder, reading `x` and writing `y` (both tensors of
   * this context, e.g. from `ctx.tensorFromBuffer`). Nothing is submitted or read back; state
   * updates (running stats, num_batches_tracked) take effect when you submit.
   * @param options.epilogue fused activation / residual add (the residual a tensor of this
   *   context, e.g. your buffer through `ctx.tensorFromBuffer`). Default none; `null` options are
   *   the same as absent.
   */
  encodeForward(encoder: GPUCommandEncoder, x: Tensor, y: Tensor, options: EncodeForwardOptions | null = {}): void {
    this.assertAlive();
    const who = `${this.name}.encodeForward`;
    if (!this.ctx.gpu) throw new ArgumentError(`${who} needs the 'webgpu' backend; this context runs on 'cpu'`);
    checkEncoder(encoder, who);
    const opts = optionsObject<EncodeForwardOptions>(options, `${who} options`, ENCODE_FORWARD_OPTION_KEYS);
    if (this.#skipsEmpty(x)) {
      checkOutput(this.ctx, y, x, this.name);
      this.#lastForward = null;
      return;
    }
    const g = this.#check(x);
    checkOutput(this.ctx, y, x, this.name);
    const batchStats = checkBatchStatsOutputs(this.ctx, opts.batchStats, g.c, this.usesBatchStats, this.name);
    const epilogue = checkEpilogue(this.ctx, opts.epilogue, x, who);
    this.#checkOutput(x, y, batchStats, who, epilogue);
    this.#run(x, y, g, epilogue, encoder, batchStats);
  }

  /**
   * Gradients of the last forward (or encodeForward) with respect to its input, weight and bias,
   * as PyTorch's autograd computes them: through the batch statistics after a training-mode
   * forward, through the running statistics (constants) after an eval-mode one, through the batch
   * statistics again in eval without running statistics. Uses the current weight. State is never
   * changed, so it may be called again, e.g. with another `gradOutput`.
   * @param gradOutput dL/dy: same shape and layout as the forward's input.
   * @param options.outputMask which of [gradInput, gradWeight, gradBias] to compute; default all.
   * @returns new tensors; gradWeight and gradBias are null when not requested or `affine` is false;
   *   gradResidual after a forward whose epilogue had a residual, gradPreluWeight after a PReLU one.
   * @throws BackwardStateError without a forward, or after loadStateDict; ShapeError for a
   *   gradOutput of another shape or layout; DestroyedError if the forward's input (or a tensor
   *   its epilogue's backward reads: output, residual, PReLU weight) was destroyed.
   */
  backward<D extends DType>(gradOutput: Tensor<D>, options: BackwardOptions | null = {}): BackwardResult<D> {
    const opts = optionsObject<BackwardOptions>(options, `${this.name}.backward options`, BACKWARD_OPTION_KEYS);
    // gradInput and gradResidual have gradOutput's dtype (checked against the forward input's).
    return moduleBackward(this.#backwardSource(), gradOutput, opts) as BackwardResult<D>;
  }

  /**
   * Records {@link backward} into your command encoder (WebGPU only), writing the gradients whose
   * output tensors you pass in `outputs` and skipping the others. Nothing is submitted or read
   * back, so a whole training step can be one submit.
   */
  encodeBackward(encoder: GPUCommandEncoder, gradOutput: Tensor, outputs: BackwardOutputs): void {
    moduleEncodeBackward(this.#backwardSource(), encoder, gradOutput, outputs);
  }

  #backwardSource(): ModuleBackwardSource {
    return {
      ctx: this.ctx,
      name: this.name,
      numFeatures: this.numFeatures,
      affine: this.affine,
      weight: this.weight,
      bias: this.bias,
      version: this.version,
      lastForward: this.#lastForward,
      assertAlive: () => this.assertAlive(),
    };
  }

  /** Output checks: shape and layout of x, and no memory shared with anything the forward reads. */
  #checkOutput(x: Tensor, y: Tensor | null, batchStats: BatchStatsOutputs | null, who: string, epilogue: ResolvedEpilogue | null): void {
    if (y) checkOutput(this.ctx, y, x, this.name);
    const updatesRunning = this.updatesRunning;
    checkNoAliasing(
      this.ctx,
      who,
      [
        ['input', x],
        ['epilogue.residual', epilogue?.residual ?? null],
        ['epilogue.activation.weight', epilogue?.activation.weight ?? null],
        ['weight', this.weight],
        ['bias', this.bias],
        ...(updatesRunning
          ? []
          : ([
              ['running_mean', this.runningMean],
              ['running_var', this.runningVar],
            ] as const)),
      ],
      [
        ['output', y],
        ...(updatesRunning
          ? ([
              ['running_mean', this.runningMean],
              ['running_var', this.runningVar],
            ] as const)
          : []),
        ['batchStats.mean', batchStats?.mean ?? null],
        ['batchStats.invstd', batchStats?.invstd ?? null],
        ['batchStats.variance', batchStats?.variance ?? null],
      ],
    );
  }

  #check(x: Tensor): Geometry {
    const g = checkInput(this.ctx, x, 'input', this.ranks, this.numFeatures, this.name, 'any');
    if (this.usesBatchStats && this.convention.singleValue === 'error') checkTrainingValues(g, x.shape, this.name);
    return g;
  }

  /** An empty training batch under a convention that skips it (tf.keras): nothing to compute or update. */
  #skipsEmpty(x: Tensor): boolean {
    this.ctx.assertOwnTensor(x, 'input');
    return this.convention.emptyBatch === 'skip' && this.usesBatchStats && isEmptyBatch(x, this.ranks, this.numFeatures);
  }

  #run(
    x: Tensor,
    y: Tensor,
    g: Geometry,
    epilogue: ResolvedEpilogue | null,
    encoder?: GPUCommandEncoder,
    batchStats: BatchStatsOutputs | null = null,
  ): void {
    const useBatchStats = this.usesBatchStats;
    const updateRunning = this.updatesRunning;
    let record: ForwardRecord | null = null;
    // A failed submit ran nothing: running stats are as before it, so num_batches_tracked (JS and
    // both GPU counter slots) steps back, and its statistics are not there for backward.
    const onFailure = (): void => {
      if (updateRunning) this.stepBackTracked();
      if (this.#lastForward === record) this.#lastForward = null;
    };
    const saved = runForward(
      this.ctx,
      x,
      y,
      g,
      {
        weight: this.kernelWeight,
        bias: this.kernelBias,
        runningMean: this.runningMean,
        runningVar: this.runningVar,
        eps: this.kernelEps,
        update: this.runningUpdate,
        useBatchStats,
        updateRunning,
        tracked: this.tracked,
        batchStats,
        epilogue,
      },
      this.#gpu,
      encoder,
      onFailure,
    );
    if (updateRunning) this.tracked++;
    record = { input: x, output: y, epilogue, geometry: g, usedBatchStats: useBatchStats, saved, version: this.version };
    this.#lastForward = record;
  }

  protected override forgetLastForward(): void {
    this.#lastForward = null;
  }
}

/** PyTorch's `nn.BatchNorm1d`: input (N, C) or (N, C, L). */
export class BatchNorm1d extends BatchNorm {
  protected readonly ranks = [2, 3] as const;
  get name(): string {
    return 'BatchNorm1d';
  }
}

/** PyTorch's `nn.BatchNorm2d`: input (N, C, H, W). */
export class BatchNorm2d extends BatchNorm {
  protected readonly ranks = [4] as const;
  get name(): string {
    return 'BatchNorm2d';
  }
}

/** PyTorch's `nn.BatchNorm3d`: input (N, C, D, H, W). */
export class BatchNorm3d extends BatchNorm {
  protected readonly ranks = [5] as const;
  get name(): string {
    return 'BatchNorm3d';
  }
}
