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
import { noteWrites, runForward, type ForwardRecord, type GpuForwardBuffers } from './forward.js';
import type { Geometry } from './geometry.js';
import { channelStatsBytes } from '../gpu/contracts.js';
import { checkBoolean, checkEps, checkMomentum, checkNumFeatures, type BatchNormOptions } from './options.js';
import { checkStateDict, type StateDict, type StateDictInput } from './state-dict.js';
import { checkInput, checkOutput, checkTrainingValues } from './validate.js';

/** More channels than this cannot be held in host typed arrays on every JS engine. */
const HOST_MAX_CHANNELS = 2 ** 30;

/** Options of {@link BatchNorm.forward}. */
export interface ForwardOptions {
  /** Write into this tensor (same shape and layout as the input) instead of allocating one. */
  out?: Tensor;
}

/**
 * Shared implementation of {@link BatchNorm1d}, {@link BatchNorm2d} and {@link BatchNorm3d}:
 * PyTorch's `_BatchNorm` on this library's backends.
 */
export abstract class BatchNorm {
  readonly ctx: BatchNormContext;
  readonly numFeatures: number;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  /** Learnable scale, shape [C], or null when `affine` is false. */
  readonly weight: Tensor | null;
  /** Learnable shift, shape [C], or null when `affine` is false. */
  readonly bias: Tensor | null;
  /** Running mean, shape [C], or null when `trackRunningStats` is false. */
  readonly runningMean: Tensor | null;
  /** Running (unbiased) variance, shape [C], or null when `trackRunningStats` is false. */
  readonly runningVar: Tensor | null;
  /** Input ranks this class accepts. */
  protected abstract readonly ranks: readonly number[];
  #eps: number;
  #momentum: number | null;
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
    this.#eps = checkEps(opts.eps ?? 1e-5);
    this.#momentum = checkMomentum(opts.momentum === undefined ? 0.1 : opts.momentum, true);
    this.affine = checkBoolean(opts.affine ?? true, 'affine');
    this.trackRunningStats = checkBoolean(opts.trackRunningStats ?? true, 'trackRunningStats');
    const c = this.numFeatures;
    checkChannelCapacity(ctx, c);
    const filled = (v: number): Float32Array => new Float32Array(c).fill(v);
    this.weight = this.affine ? ctx.tensor(filled(1), [c], { label: 'weight' }) : null;
    this.bias = this.affine ? ctx.tensor(filled(0), [c], { label: 'bias' }) : null;
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

  /** Added to the variance inside the square root. Setting validates (> 0, finite). */
  get eps(): number {
    return this.#eps;
  }
  set eps(value: number) {
    this.#eps = checkEps(value);
  }

  /** Running-average factor, or null for a cumulative average. Setting validates. */
  get momentum(): number | null {
    return this.#momentum;
  }
  set momentum(value: number | null) {
    this.#momentum = checkMomentum(value, true);
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
    const g = this.#check(x);
    if (opts.out) this.#checkOutput(x, opts.out, `${this.name}.forward`);
    const y = opts.out ?? this.ctx.allocTensor(x.shape, x.layout, 'output');
    try {
      this.#run(x, y, g);
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
   */
  encodeForward(encoder: GPUCommandEncoder, x: Tensor, y: Tensor): void {
    this.assertAlive();
    const who = `${this.name}.encodeForward`;
    if (!this.ctx.gpu) throw new ArgumentError(`${who} needs the 'webgpu' backend; this context runs on 'cpu'`);
    checkEncoder(encoder, who);
    const g = this.#check(x);
    this.#checkOutput(x, y, who);
    this.#run(x, y, g, encoder);
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
      version: this.#version,
      lastForward: this.#lastForward,
      assertAlive: () => this.assertAlive(),
    };
  }

  /** Output checks: shape and layout of x, and no memory shared with anything the forward reads. */
  #checkOutput(x: Tensor, y: Tensor, who: string): void {
    checkOutput(this.ctx, y, x, this.name);
    const updatesRunning = this.#training && this.trackRunningStats;
    checkNoAliasing(
      this.ctx,
      who,
      [
        ['input', x],
        ['weight', this.weight],
        ['bias', this.bias],
        ...(updatesRunning ? [] : ([['running_mean', this.runningMean], ['running_var', this.runningVar]] as const)),
      ],
      [['output', y], ...(updatesRunning ? ([['running_mean', this.runningMean], ['running_var', this.runningVar]] as const) : [])],
    );
  }

  #check(x: Tensor): Geometry {
    const g = checkInput(this.ctx, x, 'input', this.ranks, this.numFeatures, this.name);
    if (this.#training || !this.trackRunningStats) checkTrainingValues(g, x.shape, this.name);
    return g;
  }

  #run(x: Tensor, y: Tensor, g: Geometry, encoder?: GPUCommandEncoder): void {
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
        weight: this.weight,
        bias: this.bias,
        runningMean: this.runningMean,
        runningVar: this.runningVar,
        eps: this.#eps,
        momentum: this.#momentum,
        useBatchStats,
        updateRunning,
        tracked: this.#tracked,
      },
      this.#gpu,
      encoder,
      onFailure,
    );
    if (updateRunning) this.#tracked++;
    record = { input: x, geometry: g, usedBatchStats: useBatchStats, saved, version: this.#version };
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

  /** The module's state with PyTorch's `state_dict()` keys; values are copies. */
  async stateDict(): Promise<StateDict> {
    this.assertAlive();
    const sd: StateDict = {};
    if (this.weight && this.bias) {
      sd.weight = await this.weight.read();
      sd.bias = await this.bias.read();
    }
    if (this.runningMean && this.runningVar) {
      sd.running_mean = await this.runningMean.read();
      sd.running_var = await this.runningVar.read();
      sd.num_batches_tracked = this.#tracked;
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
    const checked = checkStateDict(sd, this.numFeatures, this.affine, this.trackRunningStats, this.name);
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
    for (const t of [this.weight, this.bias, this.runningMean, this.runningVar]) t?.destroy();
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
    throw new DeviceLimitError(`numFeatures = ${c} exceeds the host limit of ${HOST_MAX_CHANNELS} channels per module (per-channel typed arrays)`);
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
