import { optionKeys, optionsObject } from '../arguments.js';
import type { BatchNormContext } from '../context.js';
import { ArgumentError, BackwardStateError, DestroyedError, InsufficientValuesError } from '../errors.js';
import { BUFFER_COPY_DST, BUFFER_COPY_SRC, BUFFER_STORAGE } from '../gpu/constants.js';
import type { Tensor } from '../tensor.js';
import { BACKWARD_OPTION_KEYS, type BackwardOptions, type BackwardResult } from '../batch-norm/backward.js';
import { cpuNormalize, cpuUpdateRunning } from '../batch-norm/cpu/cpu.js';
import { cpuData } from '../batch-norm/forward.js';
import { runGpuOp } from '../gpu/dispatch.js';
import { batchNorm } from '../batch-norm/functional.js';
import { checkShapeAndLayout, type Geometry } from '../batch-norm/geometry.js';
import { encodeBackward } from '../batch-norm/kernels/gpu-backward.js';
import { encodeForward } from '../batch-norm/kernels/gpu-forward.js';
import { BatchNormModuleBase } from '../batch-norm/module-base.js';
import type { BatchNormOptions } from '../batch-norm/config/options.js';
import { cpuGradSums, cpuMoments, cpuSyncGradInput } from './sync-cpu.js';
import { encodeBackwardConstants, encodeForwardConstants, encodeMoments, mergedBytes } from './sync-gpu.js';
import {
  checkGradSums,
  checkMoments,
  decodeMomentsRecords,
  GRAD_SUMS_PLANES,
  MOMENTS_RECORD_BYTES,
  type ChannelMoments,
  type GradSums,
} from './sync-merge.js';
import { checkInput, checkOutput } from '../batch-norm/validate.js';

/** Options of {@link SyncBatchNorm.forward}. */
export interface SyncForwardOptions {
  /** Write into this tensor (same shape and layout as the input) instead of allocating one. */
  out?: Tensor;
}

/** The keys of {@link SyncForwardOptions}; any other key is rejected. */
export const SYNC_FORWARD_OPTION_KEYS = optionKeys<SyncForwardOptions>({ out: true });

/** What a synchronized forward leaves for the backward. */
interface SyncRecord {
  readonly input: Tensor;
  readonly geometry: Geometry;
  /** Merged statistics, float64. */
  readonly mean: Float64Array;
  readonly invstd: Float64Array;
  /** Values per channel of the whole (merged) batch. */
  readonly count: number;
  readonly version: number;
}

interface SyncGpuBuffers {
  /** Merged forward records uploaded from the host. */
  readonly merged: GPUBuffer;
  /** Merged backward sums uploaded from the host. */
  readonly mergedGrad: GPUBuffer;
  /** The shard's moments records, read back by {@link SyncBatchNorm.momentsPartial}. */
  readonly moments: GPUBuffer;
  /** The shard's gradient sums, planes Σdy | Σdy·x̂, read back by {@link SyncBatchNorm.gradPartial}. */
  readonly gradSums: GPUBuffer;
  /**
   * Where the backward reduction writes Σdy and Σdy·x̂ (as grad_bias and grad_weight): two
   * buffers, because two writable bindings of one buffer may not overlap, and a binding starts at
   * a 256-byte boundary.
   */
  readonly sumDy: Tensor;
  readonly sumDyXhat: Tensor;
  /** Host staging of the uploads, reused every step. */
  readonly mergedRecords: Float32Array<ArrayBuffer>;
  readonly mergedGradValues: Float32Array<ArrayBuffer>;
}

const NAME = 'SyncBatchNorm';
const MODULE_USAGE = BUFFER_STORAGE | BUFFER_COPY_DST | BUFFER_COPY_SRC;

/**
 * Batch norm over a batch split across devices, threads or machines: PyTorch's
 * `nn.SyncBatchNorm` (Keras' `BatchNormalization(synchronized=True)`), with the communication left
 * to you. Each shard owns one SyncBatchNorm on its own context (WebGPU or CPU; shards may mix
 * backends) holding the same parameters. A training step is:
 *
 * 1. `const p = await bn.momentsPartial(x)`: the shard's per-channel (count, mean, M2).
 * 2. all-gather the partials over your transport, then `merged = mergeMoments(all)` on every shard
 *    (order-independent, bit-identical everywhere).
 * 3. `y = bn.forward(x, merged)`: normalizes with the whole batch's statistics and updates the
 *    running ones with the global count (running_var unbiased by N_total − 1).
 * 4. `const s = await bn.gradPartial(dy)`: the shard's (Σdy, Σdy·x̂); all-gather, `mergeGradSums`.
 * 5. `bn.backward(dy, mergedSums)`: the shard's grad_input (with the global count), and the whole
 *    batch's grad_weight and grad_bias, identical on every shard, so no further all-reduce of the
 *    parameter gradients is needed for this layer.
 *
 * In eval mode `forward(x)` normalizes locally with the running statistics, as PyTorch does.
 */
export class SyncBatchNorm extends BatchNormModuleBase {
  #gpu: SyncGpuBuffers | null;
  #last: SyncRecord | null = null;

  /**
   * @param numFeatures C, the channel count.
   * @param options as {@link BatchNormOptions} (convention, eps, momentum and its meaning, variance
   *   estimator, affine/scale/center, trackRunningStats), resolved by the same rules as BatchNorm2d.
   */
  constructor(ctx: BatchNormContext, numFeatures: number, options: BatchNormOptions | null = {}) {
    super(ctx, numFeatures, options, NAME);
    const c = this.numFeatures;
    const gpu = ctx.gpu;
    this.#gpu = gpu
      ? {
          merged: gpu.createBuffer({ label: 'bn.sync.merged', size: mergedBytes(c), usage: MODULE_USAGE }),
          mergedGrad: gpu.createBuffer({ label: 'bn.sync.mergedGrad', size: gradBytes(c), usage: MODULE_USAGE }),
          moments: gpu.createBuffer({ label: 'bn.sync.moments', size: c * MOMENTS_RECORD_BYTES, usage: MODULE_USAGE }),
          gradSums: gpu.createBuffer({ label: 'bn.sync.gradSums', size: gradBytes(c), usage: MODULE_USAGE }),
          sumDy: ctx.allocTensor([c], 'channels_first', 'sync.sum_dy'),
          sumDyXhat: ctx.allocTensor([c], 'channels_first', 'sync.sum_dy_xhat'),
          mergedRecords: new Float32Array(mergedBytes(c) / 4),
          mergedGradValues: new Float32Array(GRAD_SUMS_PLANES * c),
        }
      : null;
  }

  /** `'SyncBatchNorm'`, used in messages. */
  get name(): string {
    return NAME;
  }

  protected override forgetLastForward(): void {
    this.#last = null;
  }

  protected override releaseOwn(): void {
    const gpu = this.ctx.gpu;
    const own = this.#gpu;
    if (!own || !gpu) return;
    for (const b of [own.merged, own.mergedGrad, own.moments, own.gradSums]) gpu.retire(b);
    own.sumDy.destroy();
    own.sumDyXhat.destroy();
  }

  /** The module's channelStats buffer (WebGPU only). */
  #channelStats(): GPUBuffer {
    if (!this.channelStats) throw new Error('internal: GPU stage on a CPU context');
    return this.channelStats;
  }

  #checkInput(x: Tensor, who: string): Geometry {
    return checkInput(this.ctx, x, 'input', null, this.numFeatures, who);
  }

  /**
   * The shard's per-channel moments of `x` (logical (N, C, ...), either layout): count = N × spatial,
   * mean and M2 = Σ(x − mean)², as Float64Arrays ready for any transport. On WebGPU the statistics
   * kernel runs on the device and C records are read back; on the CPU they are float64 sums.
   * Changes no state. A shard may hold a single value per channel: only the merged batch needs two.
   */
  async momentsPartial(x: Tensor): Promise<ChannelMoments> {
    this.assertAlive();
    const g = this.#checkInput(x, `${NAME}.momentsPartial`);
    const gpu = this.ctx.gpu;
    if (!gpu || !this.#gpu) return cpuMoments(cpuData(x), g);
    const target = this.#gpu.moments;
    // The records land in a module buffer, not a tensor: the handle says whether they are real.
    const op = runGpuOp(gpu, 'bn.sync.moments', {}, (e) => encodeMoments(gpu, e, g, x, target, 0));
    const bytes = await gpu.readFloats(target, 0, g.c * MOMENTS_RECORD_BYTES);
    op.throwIfFailed();
    return decodeMomentsRecords(bytes, g.c);
  }

  /**
   * Records the shard's moments of `x` into your `target` buffer (WebGPU only, zero-copy): C
   * records of {@link MOMENTS_RECORD_BYTES} bytes from `byteOffset`, each
   * vec4<f32>(K, mean − K, M2, bitcast<f32>(count as u32)); decode them with
   * `decodeMomentsRecords` after you copy them out (or hand the buffer to your own transport).
   * @param byteOffset a multiple of 16. Default 0.
   */
  encodeMomentsPartial(encoder: GPUCommandEncoder, x: Tensor, target: GPUBuffer, byteOffset = 0): void {
    this.assertAlive();
    const who = `${NAME}.encodeMomentsPartial`;
    const gpu = this.ctx.gpu;
    if (!gpu) throw new ArgumentError(`${who} needs the 'webgpu' backend; this context runs on 'cpu'`);
    const g = this.#checkInput(x, who);
    checkTarget(target, byteOffset, g.c * MOMENTS_RECORD_BYTES, MOMENTS_RECORD_BYTES, BUFFER_STORAGE, 'STORAGE', who);
    runGpuOp(gpu, 'bn.sync.moments', {}, (e) => encodeMoments(gpu, e, g, x, target, byteOffset), { encoder });
  }

  /**
   * Normalizes the shard's `x` with the whole batch's statistics `merged` (from `mergeMoments`) in
   * training mode, updating running_mean and running_var with them (running_var unbiased by the
   * merged count − 1; factor momentum, or 1 / num_batches_tracked when momentum is null). In eval
   * mode it normalizes locally with the running statistics (with batch statistics when
   * `trackRunningStats` is false, as PyTorch's SyncBatchNorm does), and `merged` must be null or
   * left out.
   * @throws ShapeError / ArgumentError / InsufficientValuesError (merged count ≤ 1), before any work.
   */
  forward(x: Tensor, merged?: ChannelMoments | null, options: SyncForwardOptions | null = {}): Tensor {
    this.assertAlive();
    const who = `${NAME}.forward`;
    if (options && typeof options === 'object' && 'epilogue' in options) {
      // The synchronized backward differentiates the plain normalization only; fusing here would
      // leave the activation's gradient out of every shard's partial sums.
      throw new ArgumentError(
        `${who}: SyncBatchNorm does not fuse an epilogue; apply the activation / residual add to its output (BatchNorm2d.forward takes { epilogue })`,
      );
    }
    options = optionsObject<SyncForwardOptions>(options, `${who} options`, SYNC_FORWARD_OPTION_KEYS);
    const g = this.#checkInput(x, who);
    if (options.out) checkOutput(this.ctx, options.out, x, who);
    if (!this.training) {
      if (merged !== undefined && merged !== null) {
        throw new ArgumentError(
          `${who}: merged statistics are only used in training mode; in eval mode call forward(x) (running statistics)`,
        );
      }
      const track = this.trackRunningStats;
      const y = batchNorm(this.ctx, x, {
        weight: this.kernelWeight,
        bias: this.kernelBias,
        runningMean: track ? this.runningMean : null,
        runningVar: track ? this.runningVar : null,
        training: !track,
        convention: this.convention.name,
        eps: this.eps,
        ...(options.out ? { out: options.out } : {}),
      });
      this.#last = null;
      return y;
    }
    if (merged === undefined || merged === null) {
      throw new ArgumentError(
        `${who}: training mode needs the merged statistics of the whole batch (mergeMoments of every shard's momentsPartial)`,
      );
    }
    const m = checkMoments(merged, 'merged', g.c);
    const count = m.count[0] as number;
    if (m.count.some((n) => n !== count)) {
      throw new ArgumentError(
        `${who}: merged.count must be the same for every channel (N × spatial of the whole batch), got ${Array.from(m.count).join(', ')}`,
      );
    }
    // PyTorch refuses a single value per channel; conventions that allow it (Keras, TF) get var 0.
    const minCount = this.convention.singleValue === 'error' ? 2 : 1;
    if (count < minCount) {
      throw new InsufficientValuesError(
        `${who}: expected ${minCount === 2 ? 'more than 1 value' : 'at least 1 value'} per channel when training under the '${this.convention.name}' convention, got ${count} over the whole (merged) batch`,
      );
    }
    const localCount = g.perChannel;
    if (count < localCount) {
      throw new ArgumentError(
        `${who}: merged.count (${count}) is smaller than this shard's own values per channel (${localCount}); merge every shard's partial, this one included`,
      );
    }

    const eps = this.kernelEps;
    const update = this.runningUpdate;
    const biasedRunning = update.varianceEstimator === 'biased';
    const mean = Float64Array.from(m.mean);
    const biasedVar = new Float64Array(g.c);
    const invstd = new Float64Array(g.c);
    for (let c = 0; c < g.c; c++) {
      biasedVar[c] = (m.m2[c] as number) / count;
      invstd[c] = 1 / Math.sqrt((biasedVar[c] as number) + eps);
    }
    const updateRunning = this.trackRunningStats;
    const cumulative = 1 / (this.tracked + 1);
    const factors = updateRunning
      ? { meanFactor: update.meanFactor ?? cumulative, varFactor: update.varFactor ?? cumulative, biased: biasedRunning }
      : null;

    const y = options.out ?? this.ctx.allocTensor(x.shape, x.layout, 'output');
    let record: SyncRecord | null = null;
    try {
      const gpu = this.ctx.gpu;
      if (gpu && this.#gpu) {
        const buffers = this.#gpu;
        const channelStats = this.#channelStats();
        // The record keeps K = fround(mean) and mean − K, so offset data keeps its spread.
        const unbias = biasedRunning ? 1 : count / Math.max(count - 1, 1);
        const records = buffers.mergedRecords;
        for (let c = 0; c < g.c; c++) {
          const k = Math.fround(mean[c] as number);
          records[4 * c] = k;
          // A non-finite mean travels whole in K (Inf − Inf would make the offset NaN).
          records[4 * c + 1] = Number.isFinite(k) ? (mean[c] as number) - k : 0;
          records[4 * c + 2] = invstd[c] as number;
          records[4 * c + 3] = (biasedVar[c] as number) * unbias;
        }
        records[4 * g.c] = factors?.meanFactor ?? 0;
        records[4 * g.c + 1] = factors?.varFactor ?? 0;
        gpu.device.queue.writeBuffer(buffers.merged, 0, records);
        // A failed submit ran nothing: the running statistics are as before, so
        // num_batches_tracked steps back and the record is not there for a backward.
        runGpuOp(
          gpu,
          'bn.sync.forward',
          { outputs: [y], inPlace: factors ? [this.runningMean, this.runningVar] : [] },
          (e) => {
            encodeForwardConstants(gpu, e, {
              channels: g.c,
              merged: buffers.merged,
              weight: this.kernelWeight,
              bias: this.kernelBias,
              runningMean: this.runningMean,
              runningVar: this.runningVar,
              updateRunning: factors !== null,
              channelStats,
            });
            encodeForward(gpu, e, g, {
              x,
              y,
              weight: this.kernelWeight,
              bias: this.kernelBias,
              runningMean: null,
              runningVar: null,
              useBatchStats: true,
              updateRunning: false,
              update: { meanFactor: null, varFactor: null, varianceEstimator: 'unbiased' },
              eps,
              tracked: 0,
              counter: gpu.dummy('counter'),
              channelStats,
              channelStatsReady: true,
              epilogue: null,
            });
          },
          {
            onFailure: () => {
              if (updateRunning) this.stepBackTracked();
              if (this.#last === record) this.#last = null;
            },
          },
        );
      } else {
        cpuNormalize(
          cpuData(x),
          cpuData(y),
          g,
          mean,
          invstd,
          this.kernelWeight ? cpuData(this.kernelWeight) : null,
          this.kernelBias ? cpuData(this.kernelBias) : null,
        );
        if (factors && this.runningMean && this.runningVar) {
          cpuUpdateRunning(cpuData(this.runningMean), cpuData(this.runningVar), { count, mean, biasedVar }, factors);
        }
      }
    } catch (err) {
      if (!options.out) y.destroy();
      throw err;
    }
    if (updateRunning) this.tracked++;
    record = { input: x, geometry: g, mean, invstd, count, version: this.version };
    this.#last = record;
    return y;
  }

  #record(who: string): SyncRecord {
    const r = this.#last;
    if (!r || r.version !== this.version) {
      throw new BackwardStateError(
        `${who}: no synchronized training forward to differentiate; call forward(x, merged) in training mode first`,
      );
    }
    if (r.input.destroyed)
      throw new DestroyedError(`${who}: the forward's input tensor '${r.input.label}' was destroyed; the backward needs it`);
    return r;
  }

  #checkGradOutput(dy: Tensor, x: Tensor, who: string): void {
    checkShapeAndLayout(this.ctx, dy, x, 'gradOutput', "the forward input's", who);
  }

  /**
   * The shard's backward partial for the last synchronized forward: per channel Σdy and Σdy·x̂ with
   * the merged mean and invstd (its own grad_bias and grad_weight), as Float64Arrays. Changes no
   * state.
   */
  async gradPartial(gradOutput: Tensor): Promise<GradSums> {
    this.assertAlive();
    const who = `${NAME}.gradPartial`;
    const r = this.#record(who);
    this.#checkGradOutput(gradOutput, r.input, who);
    const gpu = this.ctx.gpu;
    if (!gpu || !this.#gpu) return cpuGradSums(cpuData(r.input), cpuData(gradOutput), r.mean, r.invstd, r.geometry);
    const target = this.#gpu.gradSums;
    const c = r.geometry.c;
    const op = runGpuOp(gpu, 'bn.sync.gradSums', {}, (e) => this.#encodeGradSums(e, gradOutput, r, target, 0));
    const f = await gpu.readFloats(target, 0, GRAD_SUMS_PLANES * 4 * c);
    op.throwIfFailed();
    return { sumDy: Float64Array.from(f.subarray(0, c)), sumDyXhat: Float64Array.from(f.subarray(c, 2 * c)) };
  }

  /**
   * Records the shard's backward partial into your `target` buffer (WebGPU only, no readback):
   * from `byteOffset`, C float32 Σdy then C float32 Σdy·x̂ (8·C bytes), copied in by the encoder,
   * so `target` needs GPUBufferUsage.COPY_DST.
   * @param byteOffset a multiple of 4. Default 0.
   */
  encodeGradPartial(encoder: GPUCommandEncoder, gradOutput: Tensor, target: GPUBuffer, byteOffset = 0): void {
    this.assertAlive();
    const who = `${NAME}.encodeGradPartial`;
    if (!this.ctx.gpu) throw new ArgumentError(`${who} needs the 'webgpu' backend; this context runs on 'cpu'`);
    const r = this.#record(who);
    this.#checkGradOutput(gradOutput, r.input, who);
    checkTarget(target, byteOffset, GRAD_SUMS_PLANES * 4 * r.geometry.c, 4, BUFFER_COPY_DST, 'COPY_DST', who);
    runGpuOp(this.ctx.gpu, 'bn.sync.gradSums', {}, (e) => this.#encodeGradSums(e, gradOutput, r, target, byteOffset), { encoder });
  }

  // Σdy and Σdy·x̂ are the plain backward's grad_bias and grad_weight of this shard (with the
  // merged statistics in channelStats), so the library's backward reduction computes them; the
  // encoder then copies them into the two planes of the target.
  #encodeGradSums(encoder: GPUCommandEncoder, dy: Tensor, r: SyncRecord, target: GPUBuffer, byteOffset: number): void {
    const gpu = this.ctx.gpu;
    const own = this.#gpu;
    if (!gpu || !own) throw new Error('internal: GPU partial on a CPU context');
    const bytes = 4 * r.geometry.c;
    encodeBackward(gpu, encoder, r.geometry, {
      x: r.input,
      dy,
      weight: null,
      channelStats: this.#channelStats(),
      useBatchStats: true,
      gradInput: null,
      gradWeight: own.sumDyXhat,
      gradBias: own.sumDy,
      epilogue: null,
    });
    encoder.copyBufferToBuffer(own.sumDy.buffer, own.sumDy.byteOffset, target, byteOffset, bytes);
    encoder.copyBufferToBuffer(own.sumDyXhat.buffer, own.sumDyXhat.byteOffset, target, byteOffset + bytes, bytes);
  }

  /**
   * Gradients of the last synchronized forward from the whole batch's sums `merged` (from
   * `mergeGradSums` of every shard's {@link gradPartial}): the shard's grad_input, computed as
   * torch's SyncBatchNorm does with the global count, and the whole batch's grad_weight (Σdy·x̂)
   * and grad_bias (Σdy), the same on every shard. State is never changed.
   * @param options.outputMask which of [gradInput, gradWeight, gradBias]; default all (the last two
   *   are null when the module is not affine).
   */
  backward(gradOutput: Tensor, merged: GradSums, options: BackwardOptions | null = {}): BackwardResult {
    this.assertAlive();
    const who = `${NAME}.backward`;
    options = optionsObject<BackwardOptions>(options, `${who} options`, BACKWARD_OPTION_KEYS);
    const r = this.#record(who);
    this.#checkGradOutput(gradOutput, r.input, who);
    const sums = checkGradSums(merged, 'merged', r.geometry.c);
    const mask = options.outputMask ?? [true, true, true];
    if (!Array.isArray(mask) || mask.length !== 3 || mask.some((v) => typeof v !== 'boolean')) {
      throw new ArgumentError(
        `${who}: outputMask must be an array of 3 booleans [gradInput, gradWeight, gradBias], got ${JSON.stringify(mask)}`,
      );
    }
    const x = r.input;
    const c = r.geometry.c;
    const gradInput = mask[0] ? this.ctx.allocTensor(x.shape, x.layout, 'grad_input') : null;
    const gradWeight = mask[1] && this.scale ? this.ctx.allocTensor([c], 'channels_first', 'grad_weight') : null;
    const gradBias = mask[2] && this.center ? this.ctx.allocTensor([c], 'channels_first', 'grad_bias') : null;
    try {
      const gpu = this.ctx.gpu;
      if (gpu && this.#gpu) {
        const buffers = this.#gpu;
        const values = buffers.mergedGradValues;
        values.set(sums.sumDy, 0);
        values.set(sums.sumDyXhat, c);
        gpu.device.queue.writeBuffer(buffers.mergedGrad, 0, values);
        runGpuOp(gpu, 'bn.sync.backward', { outputs: [gradInput, gradWeight, gradBias] }, (e) => {
          encodeBackwardConstants(gpu, e, {
            channels: c,
            mergedGrad: buffers.mergedGrad,
            count: r.count,
            channelStats: this.#channelStats(),
            gradWeight,
            gradBias,
          });
          if (gradInput) {
            encodeBackward(gpu, e, r.geometry, {
              x,
              dy: gradOutput,
              weight: this.kernelWeight,
              channelStats: this.#channelStats(),
              useBatchStats: true,
              gradInput,
              gradWeight: null,
              gradBias: null,
              inputConstantsReady: true,
              epilogue: null,
            });
          }
        });
      } else {
        if (gradInput) {
          const w = this.kernelWeight ? cpuData(this.kernelWeight) : null;
          cpuSyncGradInput(cpuData(x), cpuData(gradOutput), r.geometry, r.mean, r.invstd, w, sums, r.count, cpuData(gradInput));
        }
        if (gradWeight) cpuData(gradWeight).set(sums.sumDyXhat);
        if (gradBias) cpuData(gradBias).set(sums.sumDy);
      }
    } catch (err) {
      for (const t of [gradInput, gradWeight, gradBias]) t?.destroy();
      throw err;
    }
    return { gradInput, gradWeight, gradBias, gradResidual: null, gradPreluWeight: null };
  }
}

/** Bytes of a gradient record: two planes of C float32, rounded up to 16 (kernels bind whole vec4s). */
function gradBytes(channels: number): number {
  return Math.ceil((GRAD_SUMS_PLANES * 4 * channels) / 16) * 16;
}

function checkTarget(
  target: GPUBuffer,
  byteOffset: number,
  bytes: number,
  unit: number,
  usage: number,
  usageName: string,
  who: string,
): void {
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % unit !== 0) {
    throw new ArgumentError(`${who}: byteOffset must be a non-negative multiple of ${unit}, got ${byteOffset}`);
  }
  if (target === null || typeof target !== 'object' || typeof (target as { usage?: unknown }).usage !== 'number') {
    throw new ArgumentError(`${who}: target must be a GPUBuffer, got ${String(target)}`);
  }
  if ((target.usage & usage) === 0) {
    throw new ArgumentError(
      `${who}: target buffer '${target.label}' needs GPUBufferUsage.${usageName}, its usage is 0x${target.usage.toString(16)}`,
    );
  }
  const needed = byteOffset + bytes;
  if (needed > target.size) {
    throw new ArgumentError(
      `${who}: target buffer '${target.label}' has ${target.size} bytes; the records at byteOffset ${byteOffset} need ${needed}`,
    );
  }
}
