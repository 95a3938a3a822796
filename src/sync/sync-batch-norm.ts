import { optionKeys, optionsObject, rejectUnknownKeys } from '../arguments.js';
import type { BatchNormContext } from '../context.js';
import { ArgumentError, BackwardStateError, DeviceLimitError, InsufficientValuesError, ShapeError } from '../errors.js';
import { BUFFER_COPY_DST, BUFFER_COPY_SRC, BUFFER_STORAGE } from '../gpu/constants.js';
import type { Tensor } from '../tensor.js';
import {
  BACKWARD_OPTION_KEYS,
  checkBackwardOutputs,
  checkBackwardOutputsObject,
  checkForwardTensorsAlive,
  type BackwardOptions,
  type CheckedBackwardOutputs,
  type BackwardOutputs,
  type BackwardResult,
} from '../batch-norm/backward.js';
import { checkEncoder, checkNoAliasing, type NamedTensor } from '../batch-norm/aliasing.js';
import { cpuNormalize, cpuUpdateRunning } from '../batch-norm/cpu/cpu.js';
import { cpuEpilogueGrad } from '../batch-norm/cpu/cpu-backward.js';
import { checkEpilogue, masksFromOutput, usesPreActivation, type Epilogue, type ResolvedEpilogue } from '../batch-norm/epilogue.js';
import { cpuData } from '../batch-norm/forward.js';
import { F64_MOMENTS_RECORD_BYTES } from '../gpu/contracts.js';
import { roundUp } from '../gpu/buffer-pool.js';
import { runGpuOp } from '../gpu/dispatch.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { batchNorm } from '../batch-norm/functional.js';
import { checkShapeAndLayout, type Geometry } from '../batch-norm/geometry.js';
import { encodeBackward } from '../batch-norm/kernels/gpu-backward.js';
import { encodeForward } from '../batch-norm/kernels/gpu-forward.js';
import { BatchNormModuleBase } from '../batch-norm/module-base.js';
import type { BatchNormOptions } from '../batch-norm/config/options.js';
import { cpuGradSums, cpuMoments, cpuSyncGradInput } from './sync-cpu.js';
import {
  encodeBackwardConstants,
  encodeForwardConstants,
  encodeForwardMerged,
  encodeMergeGrad,
  encodeMergeMoments,
  encodeMoments,
  mergedBytes,
} from './sync-gpu.js';
import {
  checkGradSums,
  checkMoments,
  decodeMomentsRecords,
  GRAD_RECORD_BYTES,
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
  /**
   * Fused epilogue y = activation(bn(x) + residual), as BatchNorm2d.forward's. Default none. The
   * shard's gradient partial and the backward then differentiate through it: the partial sums are
   * Σ dt and Σ dt·x̂ with dt = dL/d(bn(x)) of the shard, so the merged sums stay the whole batch's.
   * A ReLU-family activation needs the output kept alive until the backward.
   */
  epilogue?: Epilogue;
}

/** The keys of {@link SyncForwardOptions}; any other key is rejected. */
export const SYNC_FORWARD_OPTION_KEYS = optionKeys<SyncForwardOptions>({ out: true, epilogue: true });

/** Options of {@link SyncBatchNorm.encodeForward}. */
export interface SyncEncodeForwardOptions {
  /** Fused epilogue, as in {@link SyncForwardOptions.epilogue}. Default none. */
  epilogue?: Epilogue;
}

/** The keys of {@link SyncEncodeForwardOptions}; any other key is rejected. */
export const SYNC_ENCODE_FORWARD_OPTION_KEYS = optionKeys<SyncEncodeForwardOptions>({ epilogue: true });

/**
 * S shards' records all-gathered by your transport into one GPUBuffer of this context's device
 * (NCCL-style all-gather, a copy from a peer, ...): shard s's C records start at
 * `byteOffset + s·C·recordBytes`, in the layout that `encodeMomentsPartial`
 * ({@link MOMENTS_RECORD_BYTES} per channel) or `encodeGradPartial` ({@link GRAD_RECORD_BYTES} per
 * channel) wrote. The shards may come in any order, this shard's own included once; the merge does
 * not depend on the order, bit for bit.
 */
export interface GatheredRecords {
  /** The buffer; it needs GPUBufferUsage.STORAGE. */
  readonly buffer: GPUBuffer;
  /** S ≥ 1, the number of shards whose records it holds. */
  readonly shards: number;
  /** Where shard 0's records start. Default 0; a multiple of 16 (moments) or of 4 (gradient sums). */
  readonly byteOffset?: number;
  /**
   * The channel count of each shard's records, if you want it checked (records do not carry it):
   * must equal the module's numFeatures. Default: not checked.
   */
  readonly channels?: number;
}

/** The keys of {@link GatheredRecords}; any other key is rejected. */
const GATHERED_KEYS = optionKeys<GatheredRecords>({ buffer: true, shards: true, byteOffset: true, channels: true });

/**
 * The statistics a synchronized forward normalized with: float64 on the host (forward with merged
 * ChannelMoments), or only on the GPU (encodeForward: the merged record in the module's
 * mergedMoments buffer and the channelStats planes).
 */
type SyncStats =
  | {
      readonly kind: 'host';
      readonly mean: Float64Array;
      readonly invstd: Float64Array;
      /** Values per channel of the whole (merged) batch. */
      readonly count: number;
      /** CPU only: the per-channel y = x·scale + shift it applied, for a pre-activation epilogue's backward. */
      readonly scale: Float64Array | null;
      readonly shift: Float64Array | null;
    }
  | { readonly kind: 'gpu' };

/** What a synchronized forward leaves for the backward. */
interface SyncRecord {
  readonly input: Tensor;
  /** The forward's output: a ReLU-family epilogue's backward masks with it. */
  readonly output: Tensor;
  readonly epilogue: ResolvedEpilogue | null;
  readonly geometry: Geometry;
  readonly stats: SyncStats;
  readonly version: number;
}

interface SyncGpuBuffers {
  /** Merged forward records uploaded from the host. */
  readonly merged: GPUBuffer;
  /** Merged backward sums uploaded from the host. */
  readonly mergedGrad: GPUBuffer;
  /** encodeForward's merged moments records (C of them), merged on the GPU from the gathered ones. */
  readonly mergedMoments: GPUBuffer;
  /** The module's step counter (BatchNormModuleBase.counter), for a cumulative average on the GPU. */
  readonly counter: GPUBuffer;
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

/** The normalize pass after the merged constants: the running update already ran in their dispatch (sync_forward_constants / sync_forward_merged). */
const NO_RUNNING_UPDATE = { meanFactor: null, varFactor: null, varianceEstimator: 'unbiased' } as const;

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
 *
 * When your transport all-gathers GPU buffers, the whole step can stay in your command encoder:
 * `encodeMomentsPartial` → all-gather → {@link encodeForward} (the merge runs on the GPU) →
 * `encodeGradPartial` → all-gather → {@link encodeBackward}, one submit and no readback, with the
 * host path's results bit for bit.
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
          mergedMoments: gpu.createBuffer({ label: 'bn.sync.mergedMoments', size: c * F64_MOMENTS_RECORD_BYTES, usage: MODULE_USAGE }),
          counter: this.counter as GPUBuffer,
          gradSums: gpu.createBuffer({ label: 'bn.sync.gradSums', size: gradBytes(c), usage: MODULE_USAGE }),
          // Module buffers wrapped as tensors, not pooled ones: a caller's unsubmitted encoder may
          // still write them after destroy(), so they are retired (kept while referenced), never recycled.
          sumDy: moduleTensor(ctx, gpu, c, 'bn.sync.sumDy'),
          sumDyXhat: moduleTensor(ctx, gpu, c, 'bn.sync.sumDyXhat'),
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
    for (const b of [own.merged, own.mergedGrad, own.moments, own.gradSums, own.mergedMoments]) gpu.retire(b);
    for (const t of [own.sumDy, own.sumDyXhat]) {
      const buffer = t.buffer;
      t.destroy();
      gpu.retire(buffer);
    }
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
    options = optionsObject<SyncForwardOptions>(options, `${who} options`, SYNC_FORWARD_OPTION_KEYS);
    const g = this.#checkInput(x, who);
    if (options.out) checkOutput(this.ctx, options.out, x, who);
    const epilogue = checkEpilogue(this.ctx, options.epilogue, x, who);
    if (options.out || epilogue) this.#checkForwardAliasing(x, options.out ?? null, epilogue, who);
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
        ...(options.epilogue ? { epilogue: options.epilogue } : {}),
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
    const minCount = this.#minCount;
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
    let affine: { scale: Float64Array; shift: Float64Array } | null = null;
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
              counter: buffers.counter,
              tracked: this.tracked,
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
              update: NO_RUNNING_UPDATE,
              eps,
              tracked: 0,
              counter: buffers.counter,
              channelStats,
              channelStatsReady: true,
              epilogue,
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
        affine = cpuNormalize(
          cpuData(x),
          cpuData(y),
          g,
          mean,
          invstd,
          this.kernelWeight ? cpuData(this.kernelWeight) : null,
          this.kernelBias ? cpuData(this.kernelBias) : null,
          epilogue
            ? {
                activation: epilogue.activation,
                residual: epilogue.residual ? cpuData(epilogue.residual) : null,
                preluSlope: epilogue.activation.weight ? cpuData(epilogue.activation.weight) : null,
              }
            : null,
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
    record = {
      input: x,
      output: y,
      epilogue,
      geometry: g,
      stats: { kind: 'host', mean, invstd, count, scale: affine?.scale ?? null, shift: affine?.shift ?? null },
      version: this.version,
    };
    this.#last = record;
    return y;
  }

  /**
   * Records the synchronized forward into your command encoder (WebGPU only), with the merge on
   * the GPU: the all-gathered moments records of every shard (`encodeMomentsPartial`'s, in
   * `merged.buffer`) are merged per channel by a WGSL kernel (shaders/sync-merge.wgsl), and `x` is
   * normalized into `y` with the whole batch's statistics, with no readback: a multi-GPU step is
   * encodeMomentsPartial → your all-gather → encodeForward → ... → one submit. Running statistics
   * update as {@link forward} updates them (factor momentum, or 1 / num_batches_tracked counted
   * on the GPU; running_var unbiased by the merged count − 1) and num_batches_tracked counts the
   * step now; everything takes effect when you submit. Work recorded here stays valid until you
   * submit: the module's buffers it uses are never freed before the context is destroyed.
   *
   * The merge is {@link mergeMoments} itself, run on the GPU in emulated float64 (its canonical
   * order, its fold, its non-finite rules), and the constants are derived from it with this
   * forward's float64 arithmetic, so the step is **bit-identical to the host path** (`forward(x,
   * mergeMoments(partials))`) on every device, independent of the order of the shards;
   * {@link mergeMomentsRecords} gives the merged statistics on the CPU.
   *
   * The merged count is only known on the GPU, so a whole batch with fewer values per channel
   * than the convention allows (PyTorch: 2) cannot throw InsufficientValuesError as
   * {@link forward} does: its output is NaN and the running statistics are left unchanged.
   *
   * In eval mode `merged` must be null: the forward is local, with the running statistics.
   * @param y this context's tensor of x's shape and layout (e.g. `ctx.tensorFromBuffer`).
   * @param options.epilogue fused activation / residual add, as {@link forward}'s. Default none.
   * @throws ArgumentError (CPU context, bad encoder, bad `merged`: not a GPUBuffer, no STORAGE
   *   usage, too small for S·C records, bad shard count or offset), ShapeError, before any work.
   */
  encodeForward(
    encoder: GPUCommandEncoder,
    x: Tensor,
    y: Tensor,
    merged: GatheredRecords | null,
    options: SyncEncodeForwardOptions | null = {},
  ): void {
    this.assertAlive();
    const who = `${NAME}.encodeForward`;
    const gpu = this.ctx.gpu;
    const own = this.#gpu;
    if (!gpu || !own) throw new ArgumentError(`${who} needs the 'webgpu' backend; this context runs on 'cpu'`);
    checkEncoder(encoder, who);
    const opts = optionsObject<SyncEncodeForwardOptions>(options, `${who} options`, SYNC_ENCODE_FORWARD_OPTION_KEYS);
    const g = this.#checkInput(x, who);
    checkOutput(this.ctx, y, x, who);
    const epilogue = checkEpilogue(this.ctx, opts.epilogue, x, who);
    this.#checkForwardAliasing(x, y, epilogue, who);
    const channelStats = this.#channelStats();
    if (!this.training) {
      if (merged !== undefined && merged !== null) {
        throw new ArgumentError(`${who}: merged records are only used in training mode; in eval mode pass null (running statistics)`);
      }
      const track = this.trackRunningStats;
      runGpuOp(
        gpu,
        'bn.sync.forward',
        { outputs: [y] },
        (e) =>
          encodeForward(gpu, e, g, {
            x,
            y,
            weight: this.kernelWeight,
            bias: this.kernelBias,
            runningMean: track ? this.runningMean : null,
            runningVar: track ? this.runningVar : null,
            useBatchStats: !track,
            updateRunning: false,
            update: this.runningUpdate,
            eps: this.kernelEps,
            tracked: this.tracked,
            counter: own.counter,
            channelStats,
            epilogue,
          }),
        { encoder },
      );
      this.#last = null;
      return;
    }
    if (merged === undefined || merged === null) {
      throw new ArgumentError(
        `${who}: training mode needs the all-gathered moments records of every shard ({ buffer, shards }, each shard's from encodeMomentsPartial)`,
      );
    }
    const gathered = checkGathered(merged, g.c, MOMENTS_RECORD_BYTES, 16, who, gpu.maxTensorBytes);
    const updateRunning = this.trackRunningStats;
    runGpuOp(
      gpu,
      'bn.sync.forward',
      { outputs: [y], inPlace: updateRunning ? [this.runningMean, this.runningVar] : [] },
      (e) => {
        encodeMergeMoments(gpu, e, { channels: g.c, ...gathered, target: own.mergedMoments, targetOffset: 0 });
        encodeForwardMerged(gpu, e, {
          channels: g.c,
          mergedMoments: own.mergedMoments,
          weight: this.kernelWeight,
          bias: this.kernelBias,
          runningMean: this.runningMean,
          runningVar: this.runningVar,
          updateRunning,
          update: this.runningUpdate,
          eps: this.kernelEps,
          minCount: this.#minCount,
          channelStats,
          counter: own.counter,
          tracked: this.tracked,
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
          update: NO_RUNNING_UPDATE,
          eps: this.kernelEps,
          tracked: 0,
          counter: own.counter,
          channelStats,
          channelStatsReady: true,
          epilogue,
        });
      },
      { encoder },
    );
    if (updateRunning) this.tracked++;
    this.#last = { input: x, output: y, epilogue, geometry: g, stats: { kind: 'gpu' }, version: this.version };
  }

  /** Fewest merged values per channel a training step takes: PyTorch refuses one (2); Keras, TF allow it (var 0). */
  get #minCount(): number {
    return this.convention.singleValue === 'error' ? 2 : 1;
  }

  /** Outputs share no memory with anything the forward reads (WebGPU forbids it within a dispatch). */
  #checkForwardAliasing(x: Tensor, y: Tensor | null, epilogue: ResolvedEpilogue | null, who: string): void {
    const update = this.training && this.trackRunningStats;
    const running: NamedTensor[] = [
      ['running_mean', this.runningMean],
      ['running_var', this.runningVar],
    ];
    checkNoAliasing(
      this.ctx,
      who,
      [
        ['input', x],
        ['epilogue.residual', epilogue?.residual ?? null],
        ['epilogue.activation.weight', epilogue?.activation.weight ?? null],
        ['weight', this.weight],
        ['bias', this.bias],
        ...(update ? [] : running),
      ],
      [['output', y], ...(update ? running : [])],
    );
  }

  #record(who: string): SyncRecord {
    const r = this.#last;
    if (!r || r.version !== this.version) {
      throw new BackwardStateError(
        `${who}: no synchronized training forward to differentiate; call forward(x, merged) or encodeForward in training mode first`,
      );
    }
    checkForwardTensorsAlive(r, who);
    return r;
  }

  #checkGradOutput(dy: Tensor, x: Tensor, who: string): void {
    checkShapeAndLayout(this.ctx, dy, x, 'gradOutput', "the forward input's", who);
  }

  /** Host statistics of a CPU forward (the CPU backend has no encoder path, so it always has them). */
  #hostStats(r: SyncRecord): Extract<SyncStats, { kind: 'host' }> {
    if (r.stats.kind !== 'host') throw new Error('internal: GPU-merged statistics on a CPU context');
    return r.stats;
  }

  /**
   * dL/dt per element on the CPU: dy through the forward's epilogue (dy itself without one), and
   * the PReLU slope's gradient of this shard into `gradPreluWeight`.
   */
  #cpuEpilogueGrad(r: SyncRecord, dy: Tensor, gradPreluWeight: Tensor | null): ArrayLike<number> {
    const e = r.epilogue;
    if (!e) return cpuData(dy);
    const stats = this.#hostStats(r);
    return cpuEpilogueGrad(cpuData(r.input), cpuData(dy), r.geometry, {
      activation: e.activation,
      output: masksFromOutput(e.activation) ? cpuData(r.output) : null,
      residual: e.residual ? cpuData(e.residual) : null,
      scale: stats.scale,
      shift: stats.shift,
      preluSlope: e.activation.weight ? cpuData(e.activation.weight) : null,
      gradPreluWeight: gradPreluWeight ? cpuData(gradPreluWeight) : null,
    });
  }

  /**
   * The shard's backward partial for the last synchronized forward: per channel Σdy and Σdy·x̂ with
   * the merged mean and invstd (its own grad_bias and grad_weight), as Float64Arrays. After a
   * forward with an epilogue, dy is first taken through it (Σ dt, Σ dt·x̂). Changes no state.
   */
  async gradPartial(gradOutput: Tensor): Promise<GradSums> {
    this.assertAlive();
    const who = `${NAME}.gradPartial`;
    const r = this.#record(who);
    this.#checkGradOutput(gradOutput, r.input, who);
    const gpu = this.ctx.gpu;
    if (!gpu || !this.#gpu) {
      const stats = this.#hostStats(r);
      return cpuGradSums(cpuData(r.input), this.#cpuEpilogueGrad(r, gradOutput, null), stats.mean, stats.invstd, r.geometry);
    }
    const target = this.#gpu.gradSums;
    const c = r.geometry.c;
    const op = runGpuOp(gpu, 'bn.sync.gradSums', {}, (e) => this.#encodeGradSums(e, gradOutput, r, target, 0));
    const f = await gpu.readFloats(target, 0, GRAD_RECORD_BYTES * c);
    op.throwIfFailed();
    return { sumDy: Float64Array.from(f.subarray(0, c)), sumDyXhat: Float64Array.from(f.subarray(c, 2 * c)) };
  }

  /**
   * Records the shard's backward partial into your `target` buffer (WebGPU only, no readback):
   * from `byteOffset`, C float32 Σdy then C float32 Σdy·x̂ (8·C bytes, {@link GRAD_RECORD_BYTES}
   * per channel), copied in by the encoder, so `target` needs GPUBufferUsage.COPY_DST.
   * @param byteOffset a multiple of 4. Default 0.
   */
  encodeGradPartial(encoder: GPUCommandEncoder, gradOutput: Tensor, target: GPUBuffer, byteOffset = 0): void {
    this.assertAlive();
    const who = `${NAME}.encodeGradPartial`;
    if (!this.ctx.gpu) throw new ArgumentError(`${who} needs the 'webgpu' backend; this context runs on 'cpu'`);
    const r = this.#record(who);
    this.#checkGradOutput(gradOutput, r.input, who);
    checkTarget(target, byteOffset, GRAD_RECORD_BYTES * r.geometry.c, 4, BUFFER_COPY_DST, 'COPY_DST', who);
    runGpuOp(this.ctx.gpu, 'bn.sync.gradSums', {}, (e) => this.#encodeGradSums(e, gradOutput, r, target, byteOffset), { encoder });
  }

  // Σdy and Σdy·x̂ are the plain backward's grad_bias and grad_weight of this shard (with the
  // merged statistics in channelStats, and through the forward's epilogue), so the library's
  // backward reduction computes them; the encoder then copies them into the two planes of the target.
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
      epilogue: r.epilogue ? { epilogue: r.epilogue, output: r.output, gradResidual: null, gradPreluWeight: null } : null,
    });
    encoder.copyBufferToBuffer(own.sumDy.buffer, own.sumDy.byteOffset, target, byteOffset, bytes);
    encoder.copyBufferToBuffer(own.sumDyXhat.buffer, own.sumDyXhat.byteOffset, target, byteOffset + bytes, bytes);
  }

  /**
   * Gradients of the last synchronized forward from the whole batch's sums `merged` (from
   * `mergeGradSums` of every shard's {@link gradPartial}): the shard's grad_input, computed as
   * torch's SyncBatchNorm does with the global count, and the whole batch's grad_weight (Σdy·x̂)
   * and grad_bias (Σdy), the same on every shard. After a forward with an epilogue, also
   * gradResidual (dL/dresidual of this shard) and gradPreluWeight (this shard's part of the PReLU
   * slope's gradient: all-reduce it like any parameter gradient of your data-parallel step). State
   * is never changed.
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
    const e = r.epilogue;
    const gradInput = mask[0] ? this.ctx.allocTensor(x.shape, x.layout, 'grad_input') : null;
    const gradWeight = mask[1] && this.scale ? this.ctx.allocTensor([c], 'channels_first', 'grad_weight') : null;
    const gradBias = mask[2] && this.center ? this.ctx.allocTensor([c], 'channels_first', 'grad_bias') : null;
    const gradResidual = e?.residual ? this.ctx.allocTensor(x.shape, x.layout, 'grad_residual') : null;
    const preluWeight = e?.activation.weight ?? null;
    const gradPreluWeight = preluWeight ? this.ctx.allocTensor(preluWeight.shape, 'channels_first', 'grad_prelu_weight') : null;
    const all = [gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight];
    try {
      const gpu = this.ctx.gpu;
      if (gpu && this.#gpu) {
        const buffers = this.#gpu;
        const values = buffers.mergedGradValues;
        values.set(sums.sumDy, 0);
        values.set(sums.sumDyXhat, c);
        gpu.device.queue.writeBuffer(buffers.mergedGrad, 0, values);
        runGpuOp(gpu, 'bn.sync.backward', { outputs: all }, (enc) =>
          this.#encodeBackwardFromMerged(enc, gradOutput, r, { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight }),
        );
      } else {
        const stats = this.#hostStats(r);
        const dt = this.#cpuEpilogueGrad(r, gradOutput, gradPreluWeight);
        if (gradInput) {
          const w = this.kernelWeight ? cpuData(this.kernelWeight) : null;
          cpuSyncGradInput(cpuData(x), dt, r.geometry, stats.mean, stats.invstd, w, sums, stats.count, cpuData(gradInput));
        }
        if (gradWeight) cpuData(gradWeight).set(sums.sumDyXhat);
        if (gradBias) cpuData(gradBias).set(sums.sumDy);
        if (gradResidual) cpuData(gradResidual).set(dt);
      }
    } catch (err) {
      for (const t of all) t?.destroy();
      throw err;
    }
    return { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight };
  }

  /**
   * Records the synchronized backward into your command encoder (WebGPU only), with the merge on
   * the GPU: the all-gathered gradient records of every shard (`encodeGradPartial`'s, in
   * `merged.buffer`) are summed per channel by a WGSL kernel (ascending order, in emulated float64,
   * rounded once to float32: the bits of {@link mergeGradSums} as the host path uploads them, and
   * of {@link mergeGradRecords}; independent of the order of the shards), then the gradients whose
   * tensors you pass in `outputs` are written, as {@link backward} computes them: gradInput of
   * this shard with the whole batch's count, gradWeight / gradBias of the whole batch, and after
   * a forward with an epilogue gradResidual and this shard's gradPreluWeight. Nothing is read
   * back or submitted; the work stays valid until you submit.
   * @throws ArgumentError / ShapeError / BackwardStateError / DestroyedError before any work.
   */
  encodeBackward(encoder: GPUCommandEncoder, gradOutput: Tensor, merged: GatheredRecords, outputs: BackwardOutputs): void {
    this.assertAlive();
    const who = `${NAME}.encodeBackward`;
    const gpu = this.ctx.gpu;
    const own = this.#gpu;
    if (!gpu || !own) throw new ArgumentError(`${who} needs the 'webgpu' backend; this context runs on 'cpu'`);
    checkEncoder(encoder, who);
    const r = this.#record(who);
    this.#checkGradOutput(gradOutput, r.input, who);
    const gathered = checkGathered(merged, r.geometry.c, GRAD_RECORD_BYTES, 4, who, gpu.maxTensorBytes);
    const out = this.#checkBackwardOutputs(outputs, r, gradOutput, who);
    runGpuOp(
      gpu,
      'bn.sync.backward',
      { outputs: [out.gradInput, out.gradWeight, out.gradBias, out.gradResidual, out.gradPreluWeight] },
      (e) => {
        encodeMergeGrad(gpu, e, { channels: r.geometry.c, ...gathered, target: own.mergedGrad, targetOffset: 0 });
        this.#encodeBackwardFromMerged(e, gradOutput, r, out);
      },
      { encoder },
    );
  }

  #checkBackwardOutputs(
    outputs: unknown,
    r: SyncRecord,
    dy: Tensor,
    who: string,
  ): CheckedBackwardOutputs {
    const given = checkBackwardOutputsObject(outputs, who);
    const { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight } = checkBackwardOutputs(this, given, r, who);
    const x = r.input;
    const e = r.epilogue;
    checkNoAliasing(
      this.ctx,
      who,
      [
        ['input', x],
        ['gradOutput', dy],
        ['weight', this.kernelWeight],
        ['the forward output', e && masksFromOutput(e.activation) ? r.output : null],
        ['epilogue.residual', e && usesPreActivation(e.activation) ? e.residual : null],
        ['epilogue.activation.weight', e?.activation.weight ?? null],
      ],
      [
        ['gradInput', gradInput],
        ['gradWeight', gradWeight],
        ['gradBias', gradBias],
        ['gradResidual', gradResidual],
        ['gradPreluWeight', gradPreluWeight],
      ],
    );
    return { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight };
  }

  // The whole batch's sums are in mergedGrad (uploaded, or merged on the GPU): planes 6 and 7 and
  // grad_weight / grad_bias from them, then the elementwise pass (through the epilogue) for
  // grad_input / gradResidual, and the PReLU slope's reduction of this shard.
  #encodeBackwardFromMerged(
    encoder: GPUCommandEncoder,
    dy: Tensor,
    r: SyncRecord,
    out: Required<{ [K in keyof BackwardOutputs]: Tensor | null }>,
  ): void {
    const gpu = this.ctx.gpu;
    const own = this.#gpu;
    if (!gpu || !own) throw new Error('internal: GPU backward on a CPU context');
    const channelStats = this.#channelStats();
    encodeBackwardConstants(gpu, encoder, {
      channels: r.geometry.c,
      mergedGrad: own.mergedGrad,
      count: r.stats.kind === 'host' ? r.stats.count : own.mergedMoments,
      channelStats,
      gradWeight: out.gradWeight,
      gradBias: out.gradBias,
    });
    if (!out.gradInput && !out.gradResidual && !out.gradPreluWeight) return;
    const e = r.epilogue;
    encodeBackward(gpu, encoder, r.geometry, {
      x: r.input,
      dy,
      weight: this.kernelWeight,
      channelStats,
      useBatchStats: true,
      gradInput: out.gradInput,
      gradWeight: null,
      gradBias: null,
      inputConstantsReady: true,
      epilogue: e ? { epilogue: e, output: r.output, gradResidual: out.gradResidual, gradPreluWeight: out.gradPreluWeight } : null,
    });
  }
}

/**
 * Checks `merged` of encodeForward / encodeBackward: a { buffer, shards, byteOffset? } whose buffer
 * has STORAGE usage and room for S·C records of `recordBytes` from a `unit`-aligned offset,
 * bindable in one piece.
 */
function checkGathered(
  merged: unknown,
  channels: number,
  recordBytes: number,
  unit: number,
  who: string,
  maxBindingBytes: number,
): { gathered: GPUBuffer; shards: number; byteOffset: number } {
  if (merged === null || typeof merged !== 'object') {
    throw new ArgumentError(`${who}: merged must be { buffer, shards, byteOffset? } (the all-gathered records), got ${String(merged)}`);
  }
  rejectUnknownKeys(merged, GATHERED_KEYS, `${who} merged`);
  const m = merged as { buffer?: unknown; shards?: unknown; byteOffset?: unknown; channels?: unknown };
  if (m.channels !== undefined && m.channels !== channels) {
    throw new ShapeError(`${who}: merged.channels must be the module's ${channels} channels, got ${String(m.channels)}`);
  }
  const buffer = m.buffer as GPUBuffer;
  if (buffer === null || typeof buffer !== 'object' || typeof buffer.usage !== 'number' || typeof buffer.size !== 'number') {
    throw new ArgumentError(`${who}: merged.buffer must be a GPUBuffer, got ${String(m.buffer)}`);
  }
  const shards = m.shards;
  if (typeof shards !== 'number' || !Number.isInteger(shards) || shards < 1) {
    throw new ArgumentError(`${who}: merged.shards must be a positive integer (the number of shards gathered), got ${String(shards)}`);
  }
  const byteOffset = m.byteOffset ?? 0;
  if (typeof byteOffset !== 'number' || !Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % unit !== 0) {
    throw new ArgumentError(`${who}: merged.byteOffset must be a non-negative multiple of ${unit}, got ${String(byteOffset)}`);
  }
  if ((buffer.usage & BUFFER_STORAGE) === 0) {
    throw new ArgumentError(
      `${who}: merged.buffer '${buffer.label}' needs GPUBufferUsage.STORAGE, its usage is 0x${buffer.usage.toString(16)}`,
    );
  }
  const bytes = shards * channels * recordBytes;
  if (byteOffset + bytes > buffer.size) {
    throw new ArgumentError(
      `${who}: merged.buffer '${buffer.label}' has ${buffer.size} bytes; ${shards} shards × ${channels} channels of ${recordBytes}-byte records at byteOffset ${byteOffset} need ${byteOffset + bytes}`,
    );
  }
  // The merge binds all S·C records in one piece (from the aligned offset below byteOffset).
  if (bytes + 256 > maxBindingBytes) {
    throw new DeviceLimitError(
      `${who}: ${shards} shards × ${channels} channels of ${recordBytes}-byte records (${bytes} bytes) exceed the device's largest storage binding (${maxBindingBytes} bytes)`,
    );
  }
  return { gathered: buffer, shards, byteOffset };
}

/** A [C] tensor over a buffer of the module's own (see the constructor). */
function moduleTensor(ctx: BatchNormContext, gpu: GpuRuntime, channels: number, label: string): Tensor {
  const buffer = gpu.createBuffer({ label, size: roundUp(4 * channels, 16), usage: MODULE_USAGE });
  return ctx.tensorFromBuffer(buffer, [channels], { label });
}

/** Bytes of a gradient record: two planes of C float32, rounded up to 16 (kernels bind whole vec4s). */
function gradBytes(channels: number): number {
  return roundUp(GRAD_RECORD_BYTES * channels, 16);
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
