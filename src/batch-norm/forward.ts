import { optionKeys } from '../arguments.js';
import type { BatchNormContext } from '../context.js';
import { runGpuOp } from '../gpu/dispatch.js';
import type { Tensor } from '../tensor.js';
import { decodeHalf, encodeHalf, isHalf } from '../dtype.js';
import type { NumberArray } from './cpu/cpu-backward.js';
import type { RunningUpdate } from './config/conventions.js';
import { cpuBatchStats, cpuNormalize, cpuUpdateRunning, invstdOf } from './cpu/cpu.js';
import type { ResolvedEpilogue } from './epilogue.js';
import type { Geometry } from './geometry.js';
import { encodeForward } from './kernels/gpu-forward.js';

/** Everything a forward reads besides the input: parameters, running buffers and mode. */
export interface ForwardSpec {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  readonly eps: number;
  /** How the batch statistics are folded into the running ones. */
  readonly update: RunningUpdate;
  /** Normalize with batch statistics (training, or no running statistics). */
  readonly useBatchStats: boolean;
  /** Fold the batch statistics into the running buffers. */
  readonly updateRunning: boolean;
  /** num_batches_tracked before this call. */
  readonly tracked: number;
  /** Where to write this batch's statistics (training only), each shape [C]; null entries are skipped. */
  readonly batchStats?: BatchStatsOutputs | null;
  /** Fused activation / residual add; null for plain BN. */
  readonly epilogue: ResolvedEpilogue | null;
}

/** Tensors that receive the batch statistics of a training forward. */
export interface BatchStatsOutputs {
  /** Batch mean (PyTorch save_mean, cuDNN resultSaveMean). */
  readonly mean: Tensor | null;
  /** 1 / sqrt(biased var + eps) (PyTorch save_invstd, cuDNN resultSaveInvVariance). */
  readonly invstd: Tensor | null;
  /** Biased batch variance, the one used to normalize (MATLAB sigmaSq, ONNX opset ≤ 13 saved_var). */
  readonly variance: Tensor | null;
}

/** The keys of {@link BatchStatsOutputs}; any other key is rejected (a misspelt output would stay unwritten). */
export const BATCH_STATS_OUTPUT_KEYS = optionKeys<BatchStatsOutputs>({ mean: true, invstd: true, variance: true });

/**
 * What the forward leaves for backward: float64 statistics (and the per-channel y = x·scale + shift
 * it applied, for recomputing a pre-activation: SiLU, GELU, ...) on the CPU, a buffer on the GPU.
 */
export type SavedStats =
  | {
      readonly kind: 'cpu';
      readonly mean: Float64Array;
      readonly invstd: Float64Array;
      readonly scale: Float64Array;
      readonly shift: Float64Array;
    }
  | { readonly kind: 'gpu'; readonly channelStats: GPUBuffer };

/** What a module's last forward left for backward. */
export interface ForwardRecord {
  readonly input: Tensor;
  /** The forward's output: a ReLU-family epilogue's backward masks with it. */
  readonly output: Tensor;
  /** The forward's fused epilogue, or null. */
  readonly epilogue: ResolvedEpilogue | null;
  readonly geometry: Geometry;
  readonly usedBatchStats: boolean;
  readonly saved: SavedStats;
  /** The module's state version at forward time; loadStateDict bumps it. */
  readonly version: number;
}

/** GPU buffers a caller keeps across calls: the counter and the per-channel constants. */
export interface GpuForwardBuffers {
  readonly counter: GPUBuffer;
  readonly channelStats: GPUBuffer;
}

/**
 * Runs one forward on the context's backend. Inputs must already be validated: from here on
 * nothing may throw for a reason the caller could have caught earlier. On WebGPU the work is
 * recorded into `encoder` when given (no submit), else submitted once; if that submit fails,
 * the tensors it was to write reject on read() and `onFailure` undoes the caller's own state.
 */
export function runForward(
  ctx: BatchNormContext,
  x: Tensor,
  y: Tensor,
  g: Geometry,
  spec: ForwardSpec,
  gpuBuffers: GpuForwardBuffers | null,
  encoder?: GPUCommandEncoder,
  onFailure?: () => void,
): SavedStats {
  const gpu = ctx.gpu;
  if (gpu) {
    if (!gpuBuffers) throw new Error('internal: GPU forward without buffers');
    const args = { ...spec, x, y, counter: gpuBuffers.counter, channelStats: gpuBuffers.channelStats };
    const stats = spec.useBatchStats && spec.batchStats ? [spec.batchStats.mean, spec.batchStats.invstd, spec.batchStats.variance] : [];
    const outputs = [y, ...stats];
    const inPlace = spec.updateRunning ? [spec.runningMean, spec.runningVar] : [];
    // Outputs never read back as stale values; running statistics the failed submit never
    // touched keep the values (and readability) of their last write.
    runGpuOp(gpu, 'bn.forward', { outputs, inPlace }, (e) => encodeForward(gpu, e, g, args), { encoder, onFailure });
    return { kind: 'gpu', channelStats: gpuBuffers.channelStats };
  }

  const xs = cpuValues(x);
  let mean: Float64Array;
  let invstd: Float64Array;
  if (spec.useBatchStats) {
    const stats = cpuBatchStats(xs, g);
    mean = stats.mean;
    invstd = invstdOf(stats.biasedVar, spec.eps);
    if (spec.updateRunning && spec.runningMean && spec.runningVar) {
      const cumulative = 1 / (spec.tracked + 1);
      const u = spec.update;
      cpuUpdateRunning(cpuData(spec.runningMean), cpuData(spec.runningVar), stats, {
        meanFactor: u.meanFactor ?? cumulative,
        varFactor: u.varFactor ?? cumulative,
        biased: u.varianceEstimator === 'biased',
      });
    }
    const out = spec.batchStats;
    if (out) {
      if (out.mean) cpuData(out.mean).set(mean);
      if (out.invstd) cpuData(out.invstd).set(invstd);
      if (out.variance) cpuData(out.variance).set(stats.biasedVar);
    }
  } else {
    if (!spec.runningMean || !spec.runningVar) throw new Error('internal: eval without running stats');
    mean = Float64Array.from(cpuData(spec.runningMean));
    invstd = invstdOf(cpuData(spec.runningVar), spec.eps);
  }
  const e = spec.epilogue;
  const out = cpuTarget(y);
  const { scale, shift } = cpuNormalize(
    xs,
    out.values,
    g,
    mean,
    invstd,
    spec.weight ? cpuData(spec.weight) : null,
    spec.bias ? cpuData(spec.bias) : null,
    e
      ? {
          activation: e.activation,
          residual: e.residual ? cpuValues(e.residual) : null,
          preluSlope: e.activation.weight ? cpuData(e.activation.weight) : null,
        }
      : null,
  );
  out.commit();
  return { kind: 'cpu', mean, invstd, scale, shift };
}

/** The Float32Array behind a float32 CPU tensor. */
export function cpuData(t: Tensor): Float32Array {
  const s = t.storage;
  if (s.kind !== 'cpu') throw new Error(`internal: tensor '${t.label}' is not a float32 tensor on the CPU`);
  return s.data;
}

/**
 * A CPU tensor's values as float32: the array itself, or a float16 / bfloat16 tensor's bit
 * patterns decoded (exactly: both are subsets of float32).
 */
export function cpuValues(t: Tensor): Float32Array {
  const s = t.storage;
  if (s.kind === 'cpu') return s.data;
  if (s.kind === 'cpu-half' && isHalf(t.dtype)) return decodeHalf(t.dtype, s.data);
  throw new Error(`internal: tensor '${t.label}' is not on the CPU`);
}

/** Where a CPU kernel writes a tensor's values; `commit()` stores them. */
export interface CpuTarget {
  readonly values: NumberArray;
  commit(): void;
}

/**
 * A CPU output: a float32 tensor's own array, or for a float16 / bfloat16 tensor a float64
 * scratch that `commit` rounds once (to nearest, ties to even) into its bit patterns, so a value
 * computed in float64 is never rounded twice (float64 → float32 → half can differ by an ulp).
 */
export function cpuTarget(t: Tensor): CpuTarget {
  const s = t.storage;
  if (s.kind === 'cpu') return { values: s.data, commit: () => {} };
  const dtype = t.dtype;
  if (s.kind !== 'cpu-half' || !isHalf(dtype)) throw new Error(`internal: tensor '${t.label}' is not on the CPU`);
  const values = new Float64Array(t.size);
  return { values, commit: () => void encodeHalf(dtype, values, s.data) };
}
