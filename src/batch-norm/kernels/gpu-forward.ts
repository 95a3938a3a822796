import { BUFFER_INDIRECT, TENSOR_USAGE } from '../../gpu/constants.js';
import {
  bindChannelStats,
  COUNTER_BYTES,
  COUNTER_SLOTS,
  GENERAL_QUEUE_HEADER_WORDS,
  generalQueueBytes,
  FLAG_AFFINE,
  FLAG_BIASED_RUNNING_VAR,
  FLAG_CUMULATIVE,
  FLAG_FROM_RUNNING,
  FLAG_UPDATE_RUNNING,
  PLANE_BATCH_VAR,
  PLANE_INVSTD,
  PLANE_MEAN,
  planeStride,
} from '../../gpu/contracts.js';
import type { GpuRuntime } from '../../gpu/runtime.js';
import { bindOptional, bindTensor, bindUniforms } from '../../gpu/tensor-binding.js';
import type { UniformValues } from '../../gpu/uniforms.js';
import type { Tensor } from '../../tensor.js';
import type { RunningUpdate } from '../config/conventions.js';
import { dispatchPerChannel } from '../../gpu/grid.js';
import { channelScanView, halfFormat, vec4Aligned } from './dispatch-shape.js';
import { isHalf } from '../../dtype.js';
import { encodeElementwise } from './elementwise-pass.js';
import { encodeStatsPass } from './stats-pass.js';
import { activationUniforms, epilogueConstants, type ResolvedEpilogue } from '../epilogue.js';
import type { Geometry } from '../geometry.js';
import { encodePreluSlope, preluFlags } from './gpu-prelu.js';
import { FINALIZE } from './stages/finalize.js';
import { NORMALIZE } from './stages/normalize.js';
import { NORMALIZE_F16 } from './stages/normalize-f16.js';

/** What one forward needs on the GPU; tensors are already validated by the caller. */
export interface GpuForwardArgs {
  readonly x: Tensor;
  readonly y: Tensor;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  /** Normalize with batch statistics (training, or eval without running stats). */
  readonly useBatchStats: boolean;
  /** Update running_mean/var and num_batches_tracked (training with tracking). */
  readonly updateRunning: boolean;
  /** Batch weights of the running update and the variance estimator (conventions.ts). */
  readonly update: RunningUpdate;
  readonly eps: number;
  /** num_batches_tracked before this step: selects the counter slot to read. */
  readonly tracked: number;
  /** Two u32 slots holding num_batches_tracked on the GPU. */
  readonly counter: GPUBuffer;
  /** Receives the per-channel constants (mean, invstd, ...) that backward reuses. */
  readonly channelStats: GPUBuffer;
  /**
   * Batch statistics whose constants are already in `channelStats` (SyncBatchNorm's merged ones):
   * skip statistics and finalize, and only normalize. Default false.
   */
  readonly channelStatsReady?: boolean;
  /** Tensors that get copies of the batch statistics (training only). */
  readonly batchStats?: { readonly mean: Tensor | null; readonly invstd: Tensor | null; readonly variance: Tensor | null } | null;
  /** Fused activation / residual add applied by the normalize pass; null for plain BN. */
  readonly epilogue: ResolvedEpilogue | null;
}

/**
 * Records the forward into one compute pass: statistics, finalize and normalize in training (or
 * without running stats); normalize alone, from the running stats, in evaluation.
 */
export function encodeForward(gpu: GpuRuntime, encoder: GPUCommandEncoder, g: Geometry, a: GpuForwardArgs): void {
  const device = gpu.device;
  const maxDim = device.limits.maxComputeWorkgroupsPerDimension;
  const x = bindTensor(device, a.x);
  const y = bindTensor(device, a.y);
  // float16 / bfloat16 x, y (and residual): the half entries, statistics still in float32.
  const half = isHalf(a.x.dtype) ? a.x.dtype : null;
  const vec4 = !half && vec4Aligned(g, x.base, y.base);
  const width = vec4 ? 4 : 1;
  const channelStats = bindChannelStats(a.channelStats, g.c);

  // finalize's general-path queue starts empty every step (its header is the indirect dispatch).
  const generalQueue: GPUBufferBinding | null =
    a.useBatchStats && a.channelStatsReady !== true
      ? {
          buffer: gpu.scratch('finalize.generalQueue', generalQueueBytes(g.c), TENSOR_USAGE | BUFFER_INDIRECT),
          offset: 0,
          size: generalQueueBytes(g.c),
        }
      : null;
  if (generalQueue) encoder.clearBuffer(generalQueue.buffer, 0, GENERAL_QUEUE_HEADER_WORDS * 4);
  encodePreluSlope(encoder, a.epilogue, a.channelStats, g.c);

  const pass = encoder.beginComputePass({ label: 'bn.forward.pass' });

  if (generalQueue) {
    // Batch statistics (generalQueue exists exactly then): stats, finalize, its general path.
    const { partials, lanes } = encodeStatsPass(gpu, pass, g, x, width, half);

    const finalize = FINALIZE.kernel(device, 'finalize_train');
    const w = bindOptional(gpu, a.weight, 'weight');
    const b = bindOptional(gpu, a.bias, 'bias');
    const rm = bindOptional(gpu, a.updateRunning ? a.runningMean : null, 'runningMean');
    const rv = bindOptional(gpu, a.updateRunning ? a.runningVar : null, 'runningVar');
    const u = a.update;
    const flags =
      (a.weight ? FLAG_AFFINE : 0) |
      (a.updateRunning ? FLAG_UPDATE_RUNNING : 0) |
      (u.meanFactor === null ? FLAG_CUMULATIVE : 0) |
      (u.varianceEstimator === 'biased' ? FLAG_BIASED_RUNNING_VAR : 0);
    const finalizeValues: UniformValues = {
      channels: g.c,
      lanes,
      flags,
      counterSlot: a.tracked % COUNTER_SLOTS,
      eps: a.eps,
      momentum: u.meanFactor ?? 0,
      varianceMomentum: u.varFactor ?? 0,
      weightBase: w.base,
      biasBase: b.base,
      runningMeanBase: rm.base,
      runningVarBase: rv.base,
      planeStride: planeStride(g.c),
      maxGeneralWorkgroups: maxDim,
      ...channelScanView(g, x.base),
    };
    const perChannel = { partials, weight: w.resource, bias: b.resource, runningMean: rm.resource, runningVar: rv.resource, channelStats };
    dispatchPerChannel(gpu, pass, finalize, g.c, finalizeValues, {
      ...perChannel,
      counter: { buffer: a.counter, offset: 0, size: COUNTER_BYTES },
      generalQueue,
    });

    // Channels that are not finite or not ordinary in scale (usually none: zero workgroups).
    const general = FINALIZE.kernel(device, 'finalize_general', half ? { HALF_FORMAT: halfFormat(half) } : {});
    pass.setPipeline(general.pipeline);
    pass.setBindGroup(
      0,
      gpu.bindGroups.get(general, {
        params: bindUniforms(gpu, general, finalizeValues),
        ...perChannel,
        generalList: generalQueue,
        x: x.resource,
      }),
    );
    pass.dispatchWorkgroupsIndirect(generalQueue.buffer, 0);
  } else if (!a.useBatchStats && (!a.runningMean || !a.runningVar)) {
    throw new Error('internal: eval with running stats needs them');
  }

  // Evaluation is this one dispatch: the kernel derives the constants from the running stats.
  const fromRunning = !a.useBatchStats;
  const w = bindOptional(gpu, fromRunning ? a.weight : null, 'weight');
  const b = bindOptional(gpu, fromRunning ? a.bias : null, 'bias');
  const rm = bindOptional(gpu, fromRunning ? a.runningMean : null, 'runningMean');
  const rv = bindOptional(gpu, fromRunning ? a.runningVar : null, 'runningVar');
  // The residual (a dummy without one) is walked like x, so its alignment picks the entry too.
  const residual = bindOptional(gpu, a.epilogue?.residual ?? null, 'residual');
  encodeElementwise(gpu, pass, g, {
    stage: NORMALIZE,
    entry: 'normalize',
    tensors: { x, y, residual },
    uniforms: {
      flags: (fromRunning ? FLAG_FROM_RUNNING : 0) | (a.weight ? FLAG_AFFINE : 0) | preluFlags(a.epilogue),
      eps: a.eps,
      weightBase: w.base,
      biasBase: b.base,
      runningMeanBase: rm.base,
      runningVarBase: rv.base,
      ...activationUniforms(a.epilogue),
    },
    constants: epilogueConstants(a.epilogue),
    resources: {
      channelStats,
      weight: w.resource,
      bias: b.resource,
      runningMean: rm.resource,
      runningVar: rv.resource,
    },
    minInvocations: fromRunning ? g.c : 0,
    half,
    nativeF16Stage: NORMALIZE_F16,
  });
  pass.end();

  // Batch statistics for the caller: finalize left each as one contiguous plane, so a copy (no
  // dispatch) delivers it; finalize has no storage binding to spare for them.
  const out = a.useBatchStats ? a.batchStats : null;
  if (out) {
    const stride = planeStride(g.c);
    for (const [plane, t] of [
      [PLANE_MEAN, out.mean],
      [PLANE_INVSTD, out.invstd],
      [PLANE_BATCH_VAR, out.variance],
    ] as const) {
      if (!t) continue;
      encoder.copyBufferToBuffer(a.channelStats, plane * stride * 16, t.buffer, t.byteOffset, g.c * 4);
    }
  }
}
