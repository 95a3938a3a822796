import { getKernel } from '../gpu/kernel-cache.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { bindOptional, bindTensor, bindUniforms } from '../gpu/tensor-binding.js';
import type { UniformValues } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor.js';
import type { Geometry } from './geometry.js';
import { elementwiseShape, grid, reductionShape, vec4Aligned, WORKGROUP } from './dispatch-shape.js';
import { channelStatsBytes } from './gpu-forward.js';

/** Bytes of one backward partial: vec2f(sumDy, sumDyXmu). */
const PARTIAL_BYTES = 8;

// Flags of backward-reduce.wgsl.
const FLAG_GRAD_WEIGHT = 1;
const FLAG_GRAD_BIAS = 2;
const FLAG_INPUT_CONSTANTS = 4;
const FLAG_FROM_VAR = 8;

/** What one backward needs on the GPU; tensors are already validated by the caller. */
export interface GpuBackwardArgs {
  /** The forward's input. */
  readonly x: Tensor;
  /** Upstream gradient, same shape and layout as `x`. */
  readonly dy: Tensor;
  /** Current weight, or null for an implicit weight of 1. */
  readonly weight: Tensor | null;
  /** Per-channel constants of the forward (planes 0-5); planes 6 and 7 are written here. */
  readonly channelStats: GPUBuffer;
  /** The forward normalized with batch statistics (training formula) rather than running ones. */
  readonly useBatchStats: boolean;
  /** Outputs; null = not requested, and its work is skipped. */
  readonly gradInput: Tensor | null;
  readonly gradWeight: Tensor | null;
  readonly gradBias: Tensor | null;
}

/** The functional API's statistics, turned into channelStats planes by `backward_prepare`. */
export interface GpuPrepareArgs {
  readonly channels: number;
  readonly mean: Tensor;
  /** invstd, or the running variance when `fromVar` is true. */
  readonly invstd: Tensor;
  readonly fromVar: boolean;
  readonly eps: number;
  readonly channelStats: GPUBuffer;
}

/**
 * Records the functional API's `backward_prepare` dispatch: channelStats planes 0, 3, 4, 5 from a
 * caller's mean and invstd (or running variance), with K = mean and meanOffset = 0.
 */
export function encodePrepare(gpu: GpuRuntime, encoder: GPUCommandEncoder, a: GpuPrepareArgs): void {
  const device = gpu.device;
  const kernel = getKernel(device, 'backward-reduce', 'backward_prepare');
  const mean = bindTensor(device, a.mean);
  const invstd = bindTensor(device, a.invstd);
  const pass = encoder.beginComputePass({ label: 'bn.backward.prepare.pass' });
  pass.setPipeline(kernel.pipeline);
  pass.setBindGroup(
    0,
    gpu.bindGroups.get(kernel, {
      params: bindUniforms(gpu, kernel, {
        channels: a.channels,
        planeStride: Math.ceil(a.channels / 4),
        flags: a.fromVar ? FLAG_FROM_VAR : 0,
        meanBase: mean.base,
        invstdBase: invstd.base,
        eps: a.eps,
      }),
      mean: mean.resource,
      invstd: invstd.resource,
      channelStats: { buffer: a.channelStats, offset: 0, size: channelStatsBytes(a.channels) },
    }),
  );
  pass.dispatchWorkgroups(...grid(Math.ceil(a.channels / WORKGROUP), device.limits.maxComputeWorkgroupsPerDimension));
  pass.end();
}

/**
 * Records the backward into one compute pass: the reduction and its per-channel finalize when
 * grad_weight or grad_bias is requested, or grad_input with batch statistics; then the
 * elementwise grad_input pass when grad_input is requested. Nothing when nothing is requested.
 */
export function encodeBackward(gpu: GpuRuntime, encoder: GPUCommandEncoder, g: Geometry, a: GpuBackwardArgs): void {
  const needInputConstants = a.gradInput !== null && a.useBatchStats;
  const needReduce = a.gradWeight !== null || a.gradBias !== null || needInputConstants;
  if (!needReduce && !a.gradInput) return;

  const device = gpu.device;
  const maxDim = device.limits.maxComputeWorkgroupsPerDimension;
  const x = bindTensor(device, a.x);
  const dy = bindTensor(device, a.dy);
  const planeStride = Math.ceil(g.c / 4);
  const channelStats: GPUBufferBinding = { buffer: a.channelStats, offset: 0, size: channelStatsBytes(g.c) };
  const pass = encoder.beginComputePass({ label: 'bn.backward.pass' });

  if (needReduce) {
    const vec4 = vec4Aligned(g, x.base, dy.base);
    const width = vec4 ? 4 : 1;
    const r = reductionShape(g, width, maxDim, gpu.contiguousAccess);
    const reduce = getKernel(device, 'backward-reduce', `reduce_${g.order}${width}`, r.constants);
    const lanes = r.lanes;
    const workgroups = r.workgroups;
    const values: UniformValues = {
      rows: r.rows,
      cols: r.cols,
      rowStride: r.rowStride,
      lanes,
      channels: g.c,
      xBase: x.base / width,
      dyBase: dy.base / width,
      planeStride,
      colsPerLane: Math.ceil(r.cols / lanes),
    };
    const partialBytes = g.c * lanes * PARTIAL_BYTES;
    const partials: GPUBufferBinding = { buffer: gpu.scratch('backward.partials', partialBytes), offset: 0, size: partialBytes };
    pass.setPipeline(reduce.pipeline);
    pass.setBindGroup(
      0,
      gpu.bindGroups.get(reduce, {
        params: bindUniforms(gpu, reduce, values),
        [vec4 ? 'x' : 'xScalar']: x.resource,
        [vec4 ? 'dy' : 'dyScalar']: dy.resource,
        partials,
        channelStats,
      }),
    );
    pass.dispatchWorkgroups(...workgroups);

    const finalize = getKernel(device, 'backward-reduce', 'reduce_finalize');
    const gw = bindOptional(gpu, a.gradWeight, 'gradWeight');
    const gb = bindOptional(gpu, a.gradBias, 'gradBias');
    const flags =
      (a.gradWeight ? FLAG_GRAD_WEIGHT : 0) | (a.gradBias ? FLAG_GRAD_BIAS : 0) | (needInputConstants ? FLAG_INPUT_CONSTANTS : 0);
    pass.setPipeline(finalize.pipeline);
    pass.setBindGroup(
      0,
      gpu.bindGroups.get(finalize, {
        params: bindUniforms(gpu, finalize, {
          lanes,
          channels: g.c,
          planeStride,
          flags,
          count: g.perChannel,
          gradWeightBase: gw.base,
          gradBiasBase: gb.base,
        }),
        partials,
        channelStats,
        gradWeight: gw.resource,
        gradBias: gb.resource,
      }),
    );
    pass.dispatchWorkgroups(...grid(Math.ceil(g.c / WORKGROUP), maxDim));
  }

  if (a.gradInput) {
    const dx = bindTensor(device, a.gradInput);
    const vec4 = vec4Aligned(g, x.base, dy.base, dx.base);
    const width = vec4 ? 4 : 1;
    const shape = elementwiseShape(g, width, gpu.contiguousAccess);
    const kernel = getKernel(device, 'backward-elementwise', `elementwise_${g.order}${width}`, {
      BATCH_STATS: a.useBatchStats ? 1 : 0,
      ...shape.constants,
    });
    const w = bindOptional(gpu, a.weight, 'weight');
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(
      0,
      gpu.bindGroups.get(kernel, {
        params: bindUniforms(gpu, kernel, {
          rows: shape.rows,
          cols: shape.cols,
          lanes: shape.lanes,
          channels: g.c,
          laneChannelStep: shape.laneChannelStep,
          xBase: x.base / width,
          dyBase: dy.base / width,
          dxBase: dx.base / width,
          weightBase: w.base,
          planeStride,
          flags: a.weight ? 1 : 0,
          blocksPerRow: shape.blocksPerRow,
        }),
        [vec4 ? 'x' : 'xScalar']: x.resource,
        [vec4 ? 'dy' : 'dyScalar']: dy.resource,
        [vec4 ? 'dx' : 'dxScalar']: dx.resource,
        channelStats,
        weight: w.resource,
      }),
    );
    pass.dispatchWorkgroups(...grid(Math.ceil(shape.invocations / WORKGROUP), maxDim));
  }
  pass.end();
}
