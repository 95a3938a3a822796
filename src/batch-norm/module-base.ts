import { optionsObject } from '../arguments.js';
import { assertContext, type BatchNormContext } from '../context.js';
import { ArgumentError, DestroyedError, DeviceLimitError } from '../errors.js';
import { BUFFER_COPY_DST, BUFFER_COPY_SRC, BUFFER_STORAGE } from '../gpu/constants.js';
import { channelStatsBytes, COUNTER_BYTES, counterWords } from '../gpu/contracts.js';
import { noteWrites } from '../gpu/dispatch.js';
import type { Tensor } from '../tensor.js';
import type { Convention, MomentumMeaning, RunningUpdate, VarianceEstimator } from './config/conventions.js';
import { BATCH_NORM_OPTION_KEYS, checkBoolean, checkNumFeatures, type BatchNormOptions } from './config/options.js';
import {
  checkConventionEps,
  checkMomentumFor,
  kernelEps,
  resolveAffine,
  resolveConvention,
  runningUpdateOf,
  type ConventionSettings,
} from './config/settings.js';
import { checkStateDict, type StateDict, type StateDictInput } from './state-dict.js';

/** More channels than this cannot be held in host typed arrays on every JS engine. */
const HOST_MAX_CHANNELS = 2 ** 30;

/**
 * The state every batch-norm module holds, whatever computes its statistics: the resolved
 * convention settings (eps, momenta, estimator), the parameters and running statistics, the
 * num_batches_tracked counter, train/eval mode, stateDict/loadStateDict and destroy. BatchNorm1d/2d/3d
 * and SyncBatchNorm extend it, so one set of rules resolves their options and owns their state.
 */
export abstract class BatchNormModuleBase {
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
  readonly weight: Tensor<'float32'> | null;
  /** Learnable shift, shape [C], or null when `center` is false. */
  readonly bias: Tensor<'float32'> | null;
  /** Running mean, shape [C], or null when `trackRunningStats` is false. */
  readonly runningMean: Tensor<'float32'> | null;
  /** Running variance, shape [C], or null when `trackRunningStats` is false. */
  readonly runningVar: Tensor<'float32'> | null;
  /** @internal What the kernels get as weight and bias: a fixed 1 or 0 stands in when only one is learnable. */
  protected readonly kernelWeight: Tensor | null;
  /** @internal */
  protected readonly kernelBias: Tensor | null;
  /** @internal The per-channel constants the statistics stages write and the elementwise stages read. */
  protected readonly channelStats: GPUBuffer | null;
  /**
   * @internal num_batches_tracked on the GPU (COUNTER_SLOTS u32 slots, see contracts.ts), for a
   * cumulative average there: read and advanced by the statistics stages, rewritten by trackedWritten.
   */
  protected readonly counter: GPUBuffer | null;
  /** @internal num_batches_tracked. */
  protected tracked = 0;
  /** @internal Bumped by loadStateDict, so a record of an earlier forward is not differentiated. */
  protected version = 0;
  #settings: ConventionSettings;
  #training = true;
  #destroyed = false;

  /**
   * @param numFeatures C, the number of channels.
   * @param options see {@link BatchNormOptions}; `null` is the same as absent.
   * @throws ArgumentError for a bad option; DeviceLimitError when C channels do not fit the host
   *   or the device's buffer limits (checked before anything is allocated).
   */
  constructor(ctx: BatchNormContext, numFeatures: number, options: BatchNormOptions | null, className: string) {
    assertContext(ctx, className);
    const opts = optionsObject<BatchNormOptions>(options, `${className} options`, BATCH_NORM_OPTION_KEYS);
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
    this.kernelWeight = this.weight ?? (this.bias ? ctx.tensor(filled(1), [c], { label: 'fixed_weight' }) : null);
    this.kernelBias = this.bias ?? (this.weight ? ctx.tensor(filled(0), [c], { label: 'fixed_bias' }) : null);
    this.runningMean = this.trackRunningStats ? ctx.tensor(filled(0), [c], { label: 'running_mean' }) : null;
    this.runningVar = this.trackRunningStats ? ctx.tensor(filled(1), [c], { label: 'running_var' }) : null;
    this.channelStats =
      ctx.gpu?.createBuffer({
        label: 'bn.module.channelStats',
        size: channelStatsBytes(c),
        usage: BUFFER_STORAGE | BUFFER_COPY_DST | BUFFER_COPY_SRC,
      }) ?? null;
    this.counter =
      ctx.gpu?.createBuffer({ label: 'bn.module.counter', size: COUNTER_BYTES, usage: BUFFER_STORAGE | BUFFER_COPY_DST | BUFFER_COPY_SRC }) ??
      null;
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
    return this.trackRunningStats ? this.tracked : null;
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

  /** @internal True once destroy() ran. */
  protected get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * The eps the forward actually adds: {@link eps} raised to the convention's silent floor
   * (tf-keras2-fused: 1.001e-5), equal to {@link eps} elsewhere. Public so that folding reads the
   * same number, and a folded layer computes what the forward it replaces computes.
   */
  get kernelEps(): number {
    return kernelEps(this.#settings);
  }

  /** @internal The running-statistics update of one training step, as the kernels see it. */
  protected get runningUpdate(): RunningUpdate {
    return runningUpdateOf(this.#settings);
  }

  /** @internal Whether a forward now normalizes with batch statistics. */
  protected get usesBatchStats(): boolean {
    return this.#training || !this.trackRunningStats;
  }

  /** @internal Whether a forward now updates the running statistics. */
  protected get updatesRunning(): boolean {
    return this.#training && this.trackRunningStats;
  }

  /** @internal Undoes the count of a training step whose submit failed. */
  protected stepBackTracked(): void {
    this.tracked = Math.max(0, this.tracked - 1);
    this.trackedWritten();
  }

  /**
   * @internal Called after the host sets num_batches_tracked (load, step-back): both GPU counter
   * slots := it, so the next step reads it whichever slot it uses.
   */
  protected trackedWritten(): void {
    const gpu = this.ctx.gpu;
    if (!this.counter || !gpu || this.destroyed || gpu.lostMessage !== null) return;
    gpu.device.queue.writeBuffer(this.counter, 0, counterWords(this.tracked));
  }

  /** @internal Called after loadStateDict: the last forward's record no longer applies. */
  protected abstract forgetLastForward(): void;

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
      if (names.tracked !== null) sd[names.tracked] = this.tracked;
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
      // A queue write, not a tracked submit: it supersedes any failed write still on record.
      noteWrites([t], 0);
      const s = t.storage;
      if (s.kind === 'cpu') s.data.set(v);
      else if (s.kind === 'gpu') this.ctx.gpu?.device.queue.writeBuffer(s.buffer, s.byteOffset, v.buffer, v.byteOffset, v.byteLength);
    };
    write(this.weight, checked.weight);
    write(this.bias, checked.bias);
    write(this.runningMean, checked.running_mean);
    write(this.runningVar, checked.running_var);
    if (checked.num_batches_tracked !== undefined) {
      this.tracked = checked.num_batches_tracked;
      this.trackedWritten();
    }
    this.version++;
    this.forgetLastForward();
  }

  /** Frees the module's tensors and GPU buffers. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const t of [this.weight, this.bias, this.kernelWeight, this.kernelBias, this.runningMean, this.runningVar]) {
      if (!t || t.destroyed) continue;
      // A caller's unsubmitted encoder may still update these: see GpuRuntime.releasingModuleTensor.
      const s = t.storage;
      if (s.kind === 'gpu') this.ctx.gpu?.releasingModuleTensor(s.buffer);
      t.destroy();
    }
    for (const b of [this.channelStats, this.counter]) if (b) this.ctx.gpu?.retire(b);
    this.releaseOwn();
    this.forgetLastForward();
  }

  /** @internal Frees what a subclass allocated beyond the shared state. */
  protected releaseOwn(): void {}
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
