import { optionsObject } from '../arguments.js';
import { assertContext, type BatchNormContext } from '../context.js';
import { ArgumentError, DestroyedError, DeviceLimitError } from '../errors.js';
import { BUFFER_COPY_DST, BUFFER_COPY_SRC, BUFFER_STORAGE } from '../gpu/constants.js';
import type { Tensor } from '../tensor.js';
import { checkEncoder, checkNoAliasing } from './aliasing.js';
import {
  moduleBackward,
  moduleEncodeBackward,
  type BackwardOptions,
  type BackwardOutputs,
  type BackwardResult,
  type ModuleBackwardSource,
} from './backward.js';
import type { Convention, MomentumMeaning, VarianceEstimator } from './conventions.js';
import { checkEpilogue, type Epilogue, type ResolvedEpilogue } from './epilogue.js';
import { noteWrites, runForward, type BatchStatsOutputs, type ForwardRecord, type GpuForwardBuffers } from './forward.js';
import type { Geometry } from './geometry.js';
import { channelStatsBytes } from '../gpu/contracts.js';
import { checkBoolean, checkNumFeatures, type BatchNormOptions } from './options.js';
import {
  checkConventionEps,
  checkMomentumFor,
  kernelEps,
  resolveAffine,
  resolveConvention,
  runningUpdateOf,
  type ConventionSettings,
} from './settings.js';
import { checkStateDict, type StateDict, type StateDictInput } from './state-dict.js';
import { checkBatchStatsOutputs, checkInput, checkOutput, checkTrainingValues, isEmptyBatch } from './validate.js';

/** More channels than this cannot be held in host typed arrays on every JS engine. */
const HOST_MAX_CHANNELS = 2 ** 30;

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

/** Options of {@link BatchNorm.encodeForward}. */
export interface EncodeForwardOptions {
  /** Fused epilogue, as in {@link ForwardOptions.epilogue}. Default none. */
  epilogue?: Epilogue;
  /** Batch-statistics outputs, as in {@link ForwardOptions.batchStats}. Default none. */
  batchStats?: Partial<BatchStatsOutputs>;
}

/**
 * Shared implementation of {@link BatchNorm1d}, {@link BatchNorm2d} and {@link BatchNorm3d}:
 * PyTorch's `_BatchNorm` on this library's backends.
 */
export abstract class BatchNorm {
  readonly ctx: BatchNormContext;
  readonly numFeatures: number;
  /** True when the module has both a weight and a bias (PyTorch's `affine`). */
  readonly affine: boolean;
  /** True when the module has a learnable weight (Keras `scale`). */
  readonly scale: boolean;
  /** True when the module has a learnable bias (Keras `center`). */
  readonly center: boolean;
  readonly trackRunningStats: boolean;
  /** The framework whose conventions this module follows (default PyTorch). */
  readonly convention: Convention;
  /** Learnable scale, shape [C], or null when `scale` is false. */
  readonly weight: Tensor | null;
  /** Learnable shift, shape [C], or null when `center` is false. */
  readonly bias: Tensor | null;
  /** Running mean, shape [C], or null when `trackRunningStats` is false. */
  readonly runningMean: Tensor | null;
  /** Running variance, shape [C], or null when `trackRunningStats` is false. */
  readonly runningVar: Tensor | null;
  /** Input ranks this class accepts. */
  protected abstract readonly ranks: readonly number[];
  #settings: ConventionSettings;
  /** What the kernels get as weight and bias: a fixed 1 or 0 stands in when only one is learnable. */
  #kernelWeight: Tensor | null;
  #kernelBias: Tensor | null;
  #training = true;
  #tracked = 0;
  #gpu: GpuForwardBuffers | null;
  #destroyed = false;
  #version = 0;
  /** What the last forward left for backward. */
  #lastForward: ForwardRecord | null = null;

  /**
   * @param numFeatures C, the number of channels.
   * @param options see {@link BatchNormOptions}; `null` is the same as absent.
   * @throws ArgumentError for a bad option; DeviceLimitError when C channels do not fit the host
   *   or the device's buffer limits (checked before anything is allocated).
   */
  constructor(ctx: BatchNormContext, numFeatures: number, options: BatchNormOptions | null = {}) {
    assertContext(ctx, new.target.name);
    const opts = optionsObject<BatchNormOptions>(options, 'options');
    this.ctx = ctx;
    this.numFeatures = checkNumFeatures(numFeatures);
    this.#settings = resolveConvention(opts, true);
    this.convention = this.#settings.convention;
    const { scale, center } = resolveAffine(opts);
    this.scale = scale;
    this.center = center;
    this.affine = scale && center;
    this.trackRunningStats = checkBoolean(opts.trackRunningStats ?? true, 'trackRunningStats');
    const c = this.numFeatures;
    checkChannelCapacity(ctx, c);
    const filled = (v: number): Float32Array => new Float32Array(c).fill(v);
    this.weight = scale ? ctx.tensor(filled(1), [c], { label: 'weight' }) : null;
    this.bias = center ? ctx.tensor(filled(0), [c], { label: 'bias' }) : null;
    // The kernels apply weight and bias together; a lone one gets a fixed partner.
    this.#kernelWeight = this.weight ?? (this.bias ? ctx.tensor(filled(1), [c], { label: 'fixed_weight' }) : null);
    this.#kernelBias = this.bias ?? (this.weight ? ctx.tensor(filled(0), [c], { label: 'fixed_bias' }) : null);
    this.runningMean = this.trackRunningStats ? ctx.tensor(filled(0), [c], { label: 'running_mean' }) : null;
    this.runningVar = this.trackRunningStats ? ctx.tensor(filled(1), [c], { label: 'running_var' }) : null;
    const gpu = ctx.gpu;
    this.#gpu = gpu
      ? {
          counter: gpu.createBuffer({ label: 'bn.module.counter', size: 16, usage: BUFFER_STORAGE | BUFFER_COPY_DST | BUFFER_COPY_SRC }),
          channelStats: gpu.createBuffer({
            label: 'bn.module.channelStats',
            size: channelStatsBytes(c),
            usage: BUFFER_STORAGE | BUFFER_COPY_DST | BUFFER_COPY_SRC,
          }),
        }
      : null;
  }

  /** Class name used in messages, e.g. `'BatchNorm2d'`. */
  abstract get name(): string;

  /** Added to the variance inside the square root. Setting validates (> 0, finite; ≥ 0 where the convention accepts 0). */
  get eps(): number {
    return this.#settings.eps;
  }
  set eps(value: number) {
    this.#settings = { ...this.#settings, eps: checkConventionEps(value, this.convention) };
  }

  /** Running-average momentum in the meaning of {@link momentumMeaning}, or null for a cumulative average. Setting validates. */
  get momentum(): number | null {
    return this.#settings.momentum;
  }
  set momentum(value: number | null) {
    const momentum = checkMomentumFor(value, this.#settings.varianceMomentum === undefined, this.momentumMeaning, 'momentum');
    this.#settings = { ...this.#settings, momentum };
  }

  /** Momentum of the running variance (MATLAB's VarianceDecay); equals {@link momentum} unless set apart. */
  get varianceMomentum(): number | null {
    const v = this.#settings.varianceMomentum;
    return v === undefined ? this.#settings.momentum : v;
  }
  set varianceMomentum(value: number | null) {
    const varianceMomentum = checkMomentumFor(value, false, this.momentumMeaning, 'varianceMomentum');
    if (this.#settings.momentum === null) throw new ArgumentError('varianceMomentum cannot be set apart from a cumulative (null) momentum');
    this.#settings = { ...this.#settings, varianceMomentum };
  }

  /** What {@link momentum} weighs: the new batch value (`'batch'`) or the old running one (`'running'`). */
  get momentumMeaning(): MomentumMeaning {
    return this.#settings.momentumMeaning;
  }

  /** The variance that feeds running_var. */
  get varianceEstimator(): VarianceEstimator {
    return this.#settings.varianceEstimator;
  }

  /** True in training mode (the default, as in PyTorch). */
  get training(): boolean {
    return this.#training;
  }

  /** Training forwards done since construction or the last loadStateDict, like PyTorch's buffer. */
  get numBatchesTracked(): number | null {
    return this.trackRunningStats ? this.#tracked : null;
  }

  /** Sets training mode (default true). Returns the module. */
  train(mode = true): this {
    this.#training = checkBoolean(mode, 'mode');
    return this;
  }

  /** Sets evaluation mode. Returns the module. */
  eval(): this {
    return this.train(false);
  }

  /** @internal */
  assertAlive(): void {
    if (this.#destroyed) throw new DestroyedError(`${this.name} was used after destroy()`);
    this.ctx.assertUsable();
  }

  /**
   * Normalizes `x` (logical shape (N, C, ...), either layout) and returns a tensor of the same
   * shape and layout. In training mode it uses the batch statistics and updates the running ones;
   * in eval mode it uses the running ones (batch ones if `trackRunningStats` is false).
   */
  forward(x: Tensor, options: ForwardOptions | null = {}): Tensor {
    this.assertAlive();
    const opts = optionsObject<ForwardOptions>(options, `${this.name}.forward options`);
    if (this.#skipsEmpty(x)) {
      if (opts.out) checkOutput(this.ctx, opts.out, x, this.name);
      this.#lastForward = null;
      return opts.out ?? this.ctx.allocTensor(x.shape, x.layout, 'output');
    }
    const g = this.#check(x);
    const batchStats = checkBatchStatsOutputs(this.ctx, opts.batchStats, g.c, this.#usesBatchStats(), this.name);
    const epilogue = checkEpilogue(this.ctx, opts.epilogue, x, `${this.name}.forward`);
    if (opts.out || batchStats || epilogue) this.#checkOutput(x, opts.out ?? null, batchStats, `${this.name}.forward`, epilogue);
    const y = opts.out ?? this.ctx.allocTensor(x.shape, x.layout, 'output');
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
    const opts = optionsObject<EncodeForwardOptions>(options, `${who} options`);
    if (this.#skipsEmpty(x)) {
      checkOutput(this.ctx, y, x, this.name);
      this.#lastForward = null;
      return;
    }
    const g = this.#check(x);
    checkOutput(this.ctx, y, x, this.name);
    const batchStats = checkBatchStatsOutputs(this.ctx, opts.batchStats, g.c, this.#usesBatchStats(), this.name);
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
   * @returns new tensors; gradWeight and gradBias are null when not requested or `affine` is false.
   * @throws BackwardStateError without a forward, or after loadStateDict; ShapeError for a
   *   gradOutput of another shape or layout; DestroyedError if the forward's input was destroyed.
   */
  backward(gradOutput: Tensor, options: BackwardOptions | null = {}): BackwardResult {
    return moduleBackward(this.#backwardSource(), gradOutput, optionsObject<BackwardOptions>(options, `${this.name}.backward options`));
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
      version: this.#version,
      lastForward: this.#lastForward,
      assertAlive: () => this.assertAlive(),
    };
  }

  /** Output checks: shape and layout of x, and no memory shared with anything the forward reads. */
  #checkOutput(x: Tensor, y: Tensor | null, batchStats: BatchStatsOutputs | null, who: string, epilogue: ResolvedEpilogue | null): void {
    if (y) checkOutput(this.ctx, y, x, this.name);
    const updatesRunning = this.#training && this.trackRunningStats;
    checkNoAliasing(
      this.ctx,
      who,
      [
        ['input', x],
        ['epilogue.residual', epilogue?.residual ?? null],
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
    const g = checkInput(this.ctx, x, 'input', this.ranks, this.numFeatures, this.name);
    if (this.#usesBatchStats() && this.convention.singleValue === 'error') checkTrainingValues(g, x.shape, this.name);
    return g;
  }

  #usesBatchStats(): boolean {
    return this.#training || !this.trackRunningStats;
  }

  /** An empty training batch under a convention that skips it (tf.keras): nothing to compute or update. */
  #skipsEmpty(x: Tensor): boolean {
    this.ctx.assertOwnTensor(x, 'input');
    return this.convention.emptyBatch === 'skip' && this.#usesBatchStats() && isEmptyBatch(x, this.ranks, this.numFeatures);
  }

  #run(
    x: Tensor,
    y: Tensor,
    g: Geometry,
    epilogue: ResolvedEpilogue | null,
    encoder?: GPUCommandEncoder,
    batchStats: BatchStatsOutputs | null = null,
  ): void {
    const useBatchStats = this.#training || !this.trackRunningStats;
    const updateRunning = this.#training && this.trackRunningStats;
    let record: ForwardRecord | null = null;
    // A failed submit ran nothing: running stats are as before it, so num_batches_tracked (JS and
    // both GPU counter slots) steps back, and its statistics are not there for backward.
    const onFailure = (): void => {
      if (updateRunning) this.#stepBackTracked();
      if (this.#lastForward === record) this.#lastForward = null;
    };
    const saved = runForward(
      this.ctx,
      x,
      y,
      g,
      {
        weight: this.#kernelWeight,
        bias: this.#kernelBias,
        runningMean: this.runningMean,
        runningVar: this.runningVar,
        eps: kernelEps(this.#settings),
        update: runningUpdateOf(this.#settings),
        useBatchStats,
        updateRunning,
        tracked: this.#tracked,
        batchStats,
        epilogue,
      },
      this.#gpu,
      encoder,
      onFailure,
    );
    if (updateRunning) this.#tracked++;
    record = { input: x, output: y, epilogue, geometry: g, usedBatchStats: useBatchStats, saved, version: this.#version };
    this.#lastForward = record;
  }

  #stepBackTracked(): void {
    this.#tracked = Math.max(0, this.#tracked - 1);
    this.#writeCounter();
  }

  /** Both GPU counter slots := num_batches_tracked, so the next step reads it whichever slot it uses. */
  #writeCounter(): void {
    const gpu = this.ctx.gpu;
    if (!this.#gpu || !gpu || this.#destroyed || gpu.lostMessage !== null) return;
    gpu.device.queue.writeBuffer(this.#gpu.counter, 0, new Uint32Array([this.#tracked, this.#tracked, 0, 0]));
  }

  /**
   * The module's state with its convention's keys (PyTorch `state_dict()` keys by default; Keras
   * gamma/beta/moving_mean/moving_variance; see `CONVENTIONS[name].stateNames`); values are copies.
   */
  async stateDict(): Promise<StateDict> {
    this.assertAlive();
    const names = this.convention.stateNames;
    const sd: StateDict = {};
    if (this.weight) sd[names.weight] = await this.weight.read();
    if (this.bias) sd[names.bias] = await this.bias.read();
    if (this.runningMean && this.runningVar) {
      sd[names.runningMean] = await this.runningMean.read();
      sd[names.runningVar] = await this.runningVar.read();
      if (names.tracked !== null) sd[names.tracked] = this.#tracked;
    }
    return sd;
  }

  /**
   * Replaces parameters and buffers, like PyTorch's `load_state_dict(strict=True)`: the keys must be
   * exactly those of {@link stateDict}, each array of length numFeatures. Everything is checked
   * before anything is written, so a rejected dict changes nothing.
   * @throws StateDictError naming the offending key.
   */
  loadStateDict(sd: StateDictInput): void {
    this.assertAlive();
    const checked = checkStateDict(
      sd,
      this.numFeatures,
      this.convention.stateNames,
      { weight: this.scale, bias: this.center, running: this.trackRunningStats },
      this.name,
    );
    const write = (t: Tensor | null, v: Float32Array | undefined): void => {
      if (!t || !v) return;
      noteWrites([t], 0);
      const s = t.storage;
      if (s.kind === 'cpu') s.data.set(v);
      else this.ctx.gpu?.device.queue.writeBuffer(s.buffer, s.byteOffset, v.buffer, v.byteOffset, v.byteLength);
    };
    write(this.weight, checked.weight);
    write(this.bias, checked.bias);
    write(this.runningMean, checked.running_mean);
    write(this.runningVar, checked.running_var);
    if (checked.num_batches_tracked !== undefined) {
      this.#tracked = checked.num_batches_tracked;
      this.#writeCounter();
    }
    this.#version++;
    this.#lastForward = null;
  }

  /** Frees the module's tensors and GPU buffers. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const t of [this.weight, this.bias, this.#kernelWeight, this.#kernelBias, this.runningMean, this.runningVar]) t?.destroy();
    if (this.#gpu && this.ctx.gpu) {
      this.ctx.gpu.retire(this.#gpu.counter);
      this.ctx.gpu.retire(this.#gpu.channelStats);
    }
    this.#lastForward = null;
  }
}

/**
 * Rejects a channel count whose per-channel buffers cannot exist on this context, before any
 * host array or GPU buffer is allocated.
 */
function checkChannelCapacity(ctx: BatchNormContext, c: number): void {
  if (c > HOST_MAX_CHANNELS) {
    throw new DeviceLimitError(
      `numFeatures = ${c} exceeds the host limit of ${HOST_MAX_CHANNELS} channels per module (per-channel typed arrays)`,
    );
  }
  const gpu = ctx.gpu;
  if (!gpu) return;
  const constantsBytes = channelStatsBytes(c);
  if (constantsBytes > gpu.maxTensorBytes) {
    throw new DeviceLimitError(
      `numFeatures = ${c} needs a ${constantsBytes}-byte per-channel constants buffer, more than this device's limit of ${gpu.maxTensorBytes} bytes per buffer binding (maxBufferSize ${gpu.device.limits.maxBufferSize}, maxStorageBufferBindingSize ${gpu.device.limits.maxStorageBufferBindingSize})`,
    );
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
