import {
  bindChannelStats,
  COUNTER_BYTES,
  COUNTER_SLOTS,
  F64_MOMENTS_RECORD_BYTES,
  FLAG_AFFINE,
  FLAG_BIASED_RUNNING_VAR,
  FLAG_CUMULATIVE,
  FLAG_GRAD_BIAS,
  FLAG_GRAD_WEIGHT,
  FLAG_UPDATE_RUNNING,
  GRAD_RECORD_BYTES,
  MERGED_RECORD_BYTES,
  MOMENTS_RECORD_BYTES,
  planeStride,
} from '../gpu/contracts.js';
import type { RunningUpdate } from '../batch-norm/config/conventions.js';
import { dispatchPerChannel, encodePerChannel } from '../gpu/grid.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { bindOptional, bindTensor } from '../gpu/tensor-binding.js';
import type { Tensor } from '../tensor.js';
import { channelScanView, vec4Aligned } from '../batch-norm/kernels/dispatch-shape.js';
import type { Geometry } from '../batch-norm/geometry.js';
import { encodeStatsPass } from '../batch-norm/kernels/stats-pass.js';
import { SYNC_BATCH_NORM } from '../batch-norm/kernels/stages/sync-batch-norm.js';
import { SYNC_MERGE } from '../batch-norm/kernels/stages/sync-merge.js';

// SyncBatchNorm's GPU stages (shaders/sync-batch-norm.wgsl). They only add per-channel dispatches
// around the library's own data passes: stats.wgsl for the local moments, normalize.wgsl and the
// backward kernels (through encodeForward / encodeBackward) for everything that touches x or dy.

/** Bytes of the merged-statistics upload: C records, then vec4(meanFactor, varFactor, 0, 0). */
export function mergedBytes(channels: number): number {
  return (channels + 1) * MERGED_RECORD_BYTES;
}

/** A storage range of a caller's or the module's buffer, and where record 0 sits inside it. */
interface RecordBinding {
  readonly resource: GPUBufferBinding;
  /** Offset of record 0 in the binding, in units of `unit` bytes. */
  readonly base: number;
}

/** Binds `bytes` bytes of `buffer` at `byteOffset` (a multiple of `unit`) from an aligned start. */
export function bindRecords(gpu: GpuRuntime, buffer: GPUBuffer, byteOffset: number, bytes: number, unit: number): RecordBinding {
  const align = gpu.device.limits.minStorageBufferOffsetAlignment;
  const start = byteOffset - (byteOffset % align);
  return { resource: { buffer, offset: start, size: byteOffset - start + bytes }, base: (byteOffset - start) / unit };
}

/**
 * Records the shard's local moments into `target`: stats.wgsl over x (the forward's own split and
 * access pattern), then sync_moments, one {@link MOMENTS_RECORD_BYTES}-byte record per channel.
 */
export function encodeMoments(
  gpu: GpuRuntime,
  encoder: GPUCommandEncoder,
  g: Geometry,
  x: Tensor,
  target: GPUBuffer,
  byteOffset: number,
): void {
  const device = gpu.device;
  const xb = bindTensor(device, x);
  const vec4 = vec4Aligned(g, xb.base);
  const width = vec4 ? 4 : 1;
  const out = bindRecords(gpu, target, byteOffset, g.c * MOMENTS_RECORD_BYTES, MOMENTS_RECORD_BYTES);
  const merge = SYNC_BATCH_NORM.kernel(device, 'sync_moments');

  const pass = encoder.beginComputePass({ label: 'bn.sync.moments.pass' });
  // The forward's own statistics dispatch, so the shard's partials are exactly the forward's.
  const { partials, lanes } = encodeStatsPass(gpu, pass, g, xb, width);
  // x again, as scalars, for a channel holding NaN or ±Inf (common/channel-scan.wgsl).
  dispatchPerChannel(
    gpu,
    pass,
    merge,
    g.c,
    { channels: g.c, lanes, recordBase: out.base, ...channelScanView(g, xb.base) },
    { partials, moments: out.resource, x: xb.resource },
  );
  pass.end();
}

/** What sync_forward_constants needs; tensors are already validated by the caller. */
export interface SyncForwardConstantsArgs {
  readonly channels: number;
  /** The merged records, {@link MERGED_RECORD_BYTES} bytes per channel from offset 0, then the factor. */
  readonly merged: GPUBuffer;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  /** Update the running statistics with the factor stored after the records. */
  readonly updateRunning: boolean;
  readonly channelStats: GPUBuffer;
  /** num_batches_tracked in two u32 slots (as finalize.wgsl's); bumped when the running stats update. */
  readonly counter: GPUBuffer;
  /** num_batches_tracked before this step: selects the counter slot. */
  readonly tracked: number;
}

/** Records sync_forward_constants: channelStats planes from merged statistics, running update. */
export function encodeForwardConstants(gpu: GpuRuntime, encoder: GPUCommandEncoder, a: SyncForwardConstantsArgs): void {
  const kernel = SYNC_BATCH_NORM.kernel(gpu.device, 'sync_forward_constants');
  const update = a.updateRunning && a.runningMean !== null && a.runningVar !== null;
  const w = bindOptional(gpu, a.weight, 'weight');
  const b = bindOptional(gpu, a.bias, 'bias');
  const rm = bindOptional(gpu, update ? a.runningMean : null, 'runningMean');
  const rv = bindOptional(gpu, update ? a.runningVar : null, 'runningVar');
  encodePerChannel(
    gpu,
    encoder,
    'bn.sync.forwardConstants.pass',
    kernel,
    a.channels,
    {
      channels: a.channels,
      flags: (a.weight ? FLAG_AFFINE : 0) | (update ? FLAG_UPDATE_RUNNING : 0),
      planeStride: planeStride(a.channels),
      recordBase: 0,
      weightBase: w.base,
      biasBase: b.base,
      runningMeanBase: rm.base,
      runningVarBase: rv.base,
      counterSlot: a.tracked % COUNTER_SLOTS,
    },
    {
      merged: { buffer: a.merged, offset: 0, size: mergedBytes(a.channels) },
      weight: w.resource,
      bias: b.resource,
      runningMean: rm.resource,
      runningVar: rv.resource,
      channelStats: bindChannelStats(a.channelStats, a.channels),
      counter: { buffer: a.counter, offset: 0, size: COUNTER_BYTES },
    },
  );
}

/** What sync_forward_merged needs; tensors are already validated by the caller. */
export interface SyncForwardMergedArgs {
  readonly channels: number;
  /** The GPU-merged moments records (C of them, F64_MOMENTS_RECORD_BYTES each, from offset 0). */
  readonly mergedMoments: GPUBuffer;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  readonly updateRunning: boolean;
  /** Batch weights of the running update (null factors: cumulative average) and the estimator. */
  readonly update: RunningUpdate;
  readonly eps: number;
  /** Fewer merged values per channel than this: NaN statistics and no running update. */
  readonly minCount: number;
  readonly channelStats: GPUBuffer;
  readonly counter: GPUBuffer;
  readonly tracked: number;
}

/** Records sync_forward_merged: channelStats planes and the running update from a GPU-merged record. */
export function encodeForwardMerged(gpu: GpuRuntime, encoder: GPUCommandEncoder, a: SyncForwardMergedArgs): void {
  const kernel = SYNC_BATCH_NORM.kernel(gpu.device, 'sync_forward_merged');
  const update = a.updateRunning && a.runningMean !== null && a.runningVar !== null;
  const w = bindOptional(gpu, a.weight, 'weight');
  const b = bindOptional(gpu, a.bias, 'bias');
  const rm = bindOptional(gpu, update ? a.runningMean : null, 'runningMean');
  const rv = bindOptional(gpu, update ? a.runningVar : null, 'runningVar');
  const u = a.update;
  const eps = f64Words(a.eps);
  encodePerChannel(
    gpu,
    encoder,
    'bn.sync.forwardMerged.pass',
    kernel,
    a.channels,
    {
      channels: a.channels,
      flags:
        (a.weight ? FLAG_AFFINE : 0) |
        (update ? FLAG_UPDATE_RUNNING : 0) |
        (u.meanFactor === null ? FLAG_CUMULATIVE : 0) |
        (u.varianceEstimator === 'biased' ? FLAG_BIASED_RUNNING_VAR : 0),
      planeStride: planeStride(a.channels),
      recordBase: 0,
      weightBase: w.base,
      biasBase: b.base,
      runningMeanBase: rm.base,
      runningVarBase: rv.base,
      counterSlot: a.tracked % COUNTER_SLOTS,
      minCount: a.minCount,
      // The host's float64 eps, as binary64 bits: the kernel derives invstd as the host does.
      epsLo: eps[0],
      epsHi: eps[1],
      meanFactor: u.meanFactor ?? 0,
      varFactor: u.varFactor ?? 0,
      varCumulative: u.varFactor === null ? 1 : 0,
    },
    {
      mergedF64: { buffer: a.mergedMoments, offset: 0, size: a.channels * F64_MOMENTS_RECORD_BYTES },
      weight: w.resource,
      bias: b.resource,
      runningMean: rm.resource,
      runningVar: rv.resource,
      channelStats: bindChannelStats(a.channelStats, a.channels),
      counter: { buffer: a.counter, offset: 0, size: COUNTER_BYTES },
    },
  );
}

/** What sync_backward_constants needs. */
export interface SyncBackwardConstantsArgs {
  readonly channels: number;
  /** Merged sums: two planes of C float32 (Σdy, Σdy·x̂) from offset 0. */
  readonly mergedGrad: GPUBuffer;
  /**
   * Values per channel of the whole batch: a number known on the host, or the GPU-merged moments
   * records whose count the kernel reads (SyncBatchNorm.encodeForward's).
   */
  readonly count: number | GPUBuffer;
  readonly channelStats: GPUBuffer;
  readonly gradWeight: Tensor | null;
  readonly gradBias: Tensor | null;
}

/** Records sync_backward_constants: planes 6 and 7 for grad_input, and the whole batch's grad_weight/bias. */
export function encodeBackwardConstants(gpu: GpuRuntime, encoder: GPUCommandEncoder, a: SyncBackwardConstantsArgs): void {
  const kernel = SYNC_BATCH_NORM.kernel(gpu.device, 'sync_backward_constants');
  const gw = bindOptional(gpu, a.gradWeight, 'gradWeight');
  const gb = bindOptional(gpu, a.gradBias, 'gradBias');
  encodePerChannel(
    gpu,
    encoder,
    'bn.sync.backwardConstants.pass',
    kernel,
    a.channels,
    {
      channels: a.channels,
      flags: (a.gradWeight ? FLAG_GRAD_WEIGHT : 0) | (a.gradBias ? FLAG_GRAD_BIAS : 0),
      planeStride: planeStride(a.channels),
      invCount: typeof a.count === 'number' ? 1 / a.count : 0,
      countFromRecord: typeof a.count === 'number' ? 0 : 1,
      recordBase: 0,
      gradWeightBase: gw.base,
      gradBiasBase: gb.base,
    },
    {
      mergedF64:
        typeof a.count === 'number'
          ? { buffer: gpu.dummy('mergedF64'), offset: 0, size: 16 }
          : { buffer: a.count, offset: 0, size: a.channels * F64_MOMENTS_RECORD_BYTES },
      mergedGrad: { buffer: a.mergedGrad, offset: 0, size: a.channels * GRAD_RECORD_BYTES },
      channelStats: bindChannelStats(a.channelStats, a.channels),
      gradWeight: gw.resource,
      gradBias: gb.resource,
    },
  );
}

/** Gathered records in a buffer and where the merged ones go, for {@link encodeMergeMoments} / {@link encodeMergeGrad}. */
export interface MergeRecordsArgs {
  readonly channels: number;
  readonly shards: number;
  /** S shards' records back to back from `byteOffset` (a multiple of the record unit). */
  readonly gathered: GPUBuffer;
  readonly byteOffset: number;
  /** Receives one merged record (C channels) at `targetOffset`. */
  readonly target: GPUBuffer;
  readonly targetOffset: number;
}

/**
 * Records sync_merge_moments: S moments records per channel into one GPU-merged record of
 * F64_MOMENTS_RECORD_BYTES (binary64 mean and M2, mergeMoments' bits, and the count) at `targetOffset`
 * (a multiple of 16), see shaders/sync-merge.wgsl.
 */
export function encodeMergeMoments(gpu: GpuRuntime, encoder: GPUCommandEncoder, a: MergeRecordsArgs): void {
  const kernel = SYNC_MERGE.kernel(gpu.device, 'sync_merge_moments');
  const unit = MOMENTS_RECORD_BYTES;
  const input = bindRecords(gpu, a.gathered, a.byteOffset, a.shards * a.channels * unit, unit);
  // outBase counts vec4s; a merged record is two of them.
  const out = bindRecords(gpu, a.target, a.targetOffset, a.channels * F64_MOMENTS_RECORD_BYTES, 16);
  encodePerChannel(
    gpu,
    encoder,
    'bn.sync.mergeMoments.pass',
    kernel,
    a.channels,
    { channels: a.channels, shards: a.shards, recordBase: input.base, outBase: out.base },
    { gathered: input.resource, mergedF64: out.resource },
  );
}

/** Records sync_merge_grad: S gradient records per channel summed into one (shaders/sync-merge.wgsl). */
export function encodeMergeGrad(gpu: GpuRuntime, encoder: GPUCommandEncoder, a: MergeRecordsArgs): void {
  const kernel = SYNC_MERGE.kernel(gpu.device, 'sync_merge_grad');
  const input = bindRecords(gpu, a.gathered, a.byteOffset, a.shards * a.channels * GRAD_RECORD_BYTES, 4);
  const out = bindRecords(gpu, a.target, a.targetOffset, a.channels * GRAD_RECORD_BYTES, 4);
  encodePerChannel(
    gpu,
    encoder,
    'bn.sync.mergeGrad.pass',
    kernel,
    a.channels,
    { channels: a.channels, shards: a.shards, recordBase: input.base, outBase: out.base },
    { gatheredGrad: input.resource, mergedGrad: out.resource },
  );
}

/** The two u32 words (lo, hi) of a float64. */
const f64Scratch = new Float64Array(1);
const f64ScratchWords = new Uint32Array(f64Scratch.buffer);

function f64Words(v: number): [number, number] {
  // One shared scratch: a step packs its eps without allocating typed arrays.
  f64Scratch[0] = v;
  return [f64ScratchWords[0] as number, f64ScratchWords[1] as number];
}
