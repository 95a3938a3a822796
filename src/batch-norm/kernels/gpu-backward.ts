import {
  BACKWARD_PARTIAL_BYTES,
  bindChannelStats,
  FLAG_AFFINE,
  FLAG_FROM_VAR,
  FLAG_GRAD_BIAS,
  FLAG_GRAD_WEIGHT,
  FLAG_INPUT_CONSTANTS,
  FLAG_PREPARE_BIAS,
  FLAG_PREPARE_WEIGHT,
  planeStride,
} from '../../gpu/contracts.js';
import type { StageOverrides, VectorWidth } from '../../gpu/stage.js';
import type { GpuRuntime } from '../../gpu/runtime.js';
import { bindOptional, bindTensor, bindUniforms, type TensorBinding } from '../../gpu/tensor-binding.js';
import type { UniformValues } from '../../gpu/uniforms.js';
import type { Tensor } from '../../tensor.js';
import type { Geometry } from '../geometry.js';
import { dispatchPerChannel, encodePerChannel } from '../../gpu/grid.js';
import { halfFormat, halfWordShape, reductionShape, vec4Aligned } from './dispatch-shape.js';
import { isHalf, type HalfDType } from '../../dtype.js';
import { encodeElementwise } from './elementwise-pass.js';
import { activationUniforms, ACTIVATION_CODE, masksFromOutput, usesPreActivation, type ResolvedEpilogue } from '../epilogue.js';
import { encodePreluSlope, preluFlags } from './gpu-prelu.js';
import { BACKWARD_ELEMENTWISE } from './stages/backward-elementwise.js';
import { BACKWARD_PREPARE } from './stages/backward-prepare.js';
import { BACKWARD_REDUCE } from './stages/backward-reduce.js';

/** The fused epilogue a backward differentiates through (see shaders/common/epilogue.wgsl). */
export interface GpuBackwardEpilogue {
  /** The forward's activation and residual. */
  readonly epilogue: ResolvedEpilogue;
  /** The forward's output: required for a ReLU-family activation (its mask), else unused. */
  readonly output: Tensor | null;
  /** dL/dresidual, written by the elementwise pass; null = not requested. */
  readonly gradResidual: Tensor | null;
  /** PReLU: dL/dweight of the slope ([C] or [1]), by a reduction of its own; null = not requested. */
  readonly gradPreluWeight: Tensor | null;
}

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
  /**
   * Planes 6 and 7 are already written (SyncBatchNorm, from the merged sums): grad_input needs no
   * reduction here. Default false.
   */
  readonly inputConstantsReady?: boolean;
  /** Fused epilogue of the forward; null for plain BN. */
  readonly epilogue: GpuBackwardEpilogue | null;
}

/** The functional API's statistics, turned into channelStats planes by `backward_prepare`. */
export interface GpuPrepareArgs {
  readonly channels: number;
  readonly mean: Tensor;
  /** invstd, or the running variance when `fromVar` is true. */
  readonly invstd: Tensor;
  readonly fromVar: boolean;
  readonly eps: number;
  /** The forward's weight and bias (null: 1 and 0): only a pre-activation epilogue's backward reads them. */
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly channelStats: GPUBuffer;
}

/**
 * Records the functional API's `backward_prepare` dispatch: channelStats planes PLANE_SHIFT ..
 * PLANE_MEAN_OFFSET from a caller's mean and invstd (or running variance), weight and bias, with
 * K = mean and meanOffset = 0.
 */
export function encodePrepare(gpu: GpuRuntime, encoder: GPUCommandEncoder, a: GpuPrepareArgs): void {
  const device = gpu.device;
  const kernel = BACKWARD_PREPARE.kernel(device, 'backward_prepare');
  const mean = bindTensor(device, a.mean);
  const invstd = bindTensor(device, a.invstd);
  const weight = bindOptional(gpu, a.weight, 'weight');
  const bias = bindOptional(gpu, a.bias, 'bias');
  encodePerChannel(
    gpu,
    encoder,
    'bn.backward.prepare.pass',
    kernel,
    a.channels,
    {
      channels: a.channels,
      planeStride: planeStride(a.channels),
      flags: (a.fromVar ? FLAG_FROM_VAR : 0) | (a.weight ? FLAG_PREPARE_WEIGHT : 0) | (a.bias ? FLAG_PREPARE_BIAS : 0),
      meanBase: mean.base,
      invstdBase: invstd.base,
      eps: a.eps,
      weightBase: weight.base,
      biasBase: bias.base,
    },
    {
      mean: mean.resource,
      invstd: invstd.resource,
      weight: weight.resource,
      bias: bias.resource,
      channelStats: bindChannelStats(a.channelStats, a.channels),
    },
  );
}

/**
 * Records the backward into one compute pass: the reduction and its per-channel finalize when
 * grad_weight or grad_bias is requested, or grad_input with batch statistics; then the
 * elementwise grad_input pass when grad_input is requested. Nothing when nothing is requested.
 */
export function encodeBackward(gpu: GpuRuntime, encoder: GPUCommandEncoder, g: Geometry, a: GpuBackwardArgs): void {
  const gradResidualTensor = a.epilogue?.gradResidual ?? null;
  const needInputConstants = a.gradInput !== null && a.useBatchStats && a.inputConstantsReady !== true;
  const needReduce = a.gradWeight !== null || a.gradBias !== null || needInputConstants;
  const needElementwise = a.gradInput !== null || gradResidualTensor !== null;
  const gradPreluWeight = a.epilogue?.gradPreluWeight ?? null;
  if (!needReduce && !needElementwise && !gradPreluWeight) return;

  const device = gpu.device;
  const maxDim = device.limits.maxComputeWorkgroupsPerDimension;
  const x = bindTensor(device, a.x);
  const dy = bindTensor(device, a.dy);
  // float16 / bfloat16 tensors: the half entries (sums and coefficients stay float32).
  const half: HalfDType | null = isHalf(a.x.dtype) ? a.x.dtype : null;
  // The epilogue's reads: the output for a mask, the residual for a recomputed pre-activation.
  const e = a.epilogue;
  const activation = e?.epilogue.activation ?? null;
  const masked = activation !== null && masksFromOutput(activation);
  const recomputes = activation !== null && usesPreActivation(activation);
  const savedOutput = bindOptional(gpu, masked ? (e?.output ?? null) : null, 'output');
  const residual = bindOptional(gpu, recomputes ? (e?.epilogue.residual ?? null) : null, 'residual');
  const epilogueConstants: Record<string, number> = {};
  if (activation && activation.kind !== 'none') epilogueConstants['ACTIVATION'] = ACTIVATION_CODE[activation.kind];
  if (recomputes && e?.epilogue.residual) epilogueConstants['RESIDUAL'] = 1;
  const epilogueUniforms = activationUniforms(e?.epilogue ?? null);
  const slopeFlags = preluFlags(e?.epilogue ?? null);
  // PReLU's slope: into channelStats before the pass (the functional backward's planes are fresh).
  encodePreluSlope(encoder, e?.epilogue ?? null, a.channelStats, g.c);
  // With a residual, the reduce pass stores dL/dt as gradResidual and the elementwise pass reads
  // it back as its gradient: 7 tensor passes instead of 8. Not when gradInput shares the buffer
  // (one dispatch cannot read and write it), nor without a reduce pass (eval, no weight grads).
  const sharesGradBuffer =
    a.gradInput !== null &&
    gradResidualTensor !== null &&
    bindTensor(device, a.gradInput).resource.buffer === bindTensor(device, gradResidualTensor).resource.buffer;
  // Half precision never: the single-value reductions (odd rows) share words between invocations,
  // so the word-owning elementwise pass writes it, whatever the shape.
  const reduceWritesResidual = needReduce && gradResidualTensor !== null && !sharesGradBuffer && half === null;
  const gradResidual = bindOptional(gpu, gradResidualTensor, 'gradResidual');
  const channelStats = bindChannelStats(a.channelStats, g.c);
  const pass = encoder.beginComputePass({ label: 'bn.backward.pass' });
  const vec4 = !half && vec4Aligned(g, x.base, dy.base, savedOutput.base, residual.base, reduceWritesResidual ? gradResidual.base : 0);
  // Half precision reads words (two values) where rows are whole words, else single values.
  const width = half ? (halfWordShape(g) ? 2 : 1) : vec4 ? 4 : 1;
  const r = reductionShape(g, width, maxDim, gpu.contiguousAccess);
  const lanes = r.lanes;
  const partialBytes = g.c * lanes * BACKWARD_PARTIAL_BYTES;
  const reduceValues: UniformValues = {
    rows: r.rows,
    cols: r.cols,
    rowStride: r.rowStride,
    lanes,
    channels: g.c,
    xBase: x.base / width,
    dyBase: dy.base / width,
    planeStride: planeStride(g.c),
    colsPerLane: Math.ceil(r.cols / lanes),
    flags: slopeFlags,
    ...epilogueUniforms,
    outputBase: savedOutput.base / width,
    residualBase: residual.base / width,
    gradResidualBase: 0,
  };

  if (gradPreluWeight) {
    // The PReLU weight's gradient Σ dy·min(t, 0): the reduce pass with PRELU_WEIGHT_GRAD sums it
    // in place of dL/dt, and reduce_finalize writes that sum as its "grad_bias" output, into
    // gradPreluWeight. A [1] weight sums every channel: finalize as one channel whose partials are
    // all channels' (partials are laid out channel after channel). Before the main reduction,
    // which then reuses the partials buffer.
    const reduce = reduceKernel(device, g, width, half, {
      ...r.constants,
      ...epilogueConstants,
      PRELU_WEIGHT_GRAD: 1,
    });
    const partials: GPUBufferBinding = { buffer: gpu.scratch('backward.partials', partialBytes), offset: 0, size: partialBytes };
    pass.setPipeline(reduce.pipeline);
    pass.setBindGroup(
      0,
      gpu.bindGroups.get(reduce, {
        params: bindUniforms(gpu, reduce, reduceValues),
        ...reduceTensors(width, {
          x: x.resource,
          dy: dy.resource,
          output: savedOutput.resource,
          residual: residual.resource,
          gradResidual: bindOptional(gpu, null, 'gradResidual').resource,
        }),
        partials,
        channelStats,
      }),
    );
    pass.dispatchWorkgroups(...r.workgroups);
    const shared = gradPreluWeight.size === 1;
    const gw = bindTensor(device, gradPreluWeight);
    const finalize = BACKWARD_REDUCE.kernel(device, 'reduce_finalize');
    dispatchPerChannel(
      gpu,
      pass,
      finalize,
      shared ? 1 : g.c,
      {
        lanes: shared ? lanes * g.c : lanes,
        channels: shared ? 1 : g.c,
        planeStride: planeStride(g.c),
        flags: FLAG_GRAD_BIAS,
        count: g.perChannel,
        gradWeightBase: 0,
        gradBiasBase: gw.base,
      },
      { partials, channelStats, gradWeight: bindOptional(gpu, null, 'gradWeight').resource, gradBias: gw.resource },
    );
  }

  if (needReduce) {
    const reduce = reduceKernel(device, g, width, half, {
      ...r.constants,
      ...epilogueConstants,
      ...(reduceWritesResidual ? { GRAD_RESIDUAL: 1 } : {}),
    });
    const workgroups = r.workgroups;
    const values: UniformValues = {
      ...reduceValues,
      gradResidualBase: reduceWritesResidual ? gradResidual.base / width : 0,
    };
    const partials: GPUBufferBinding = { buffer: gpu.scratch('backward.partials', partialBytes), offset: 0, size: partialBytes };
    pass.setPipeline(reduce.pipeline);
    pass.setBindGroup(
      0,
      gpu.bindGroups.get(reduce, {
        params: bindUniforms(gpu, reduce, values),
        ...reduceTensors(width, {
          x: x.resource,
          dy: dy.resource,
          output: savedOutput.resource,
          residual: residual.resource,
          gradResidual: reduceWritesResidual ? gradResidual.resource : bindOptional(gpu, null, 'gradResidual').resource,
        }),
        partials,
        channelStats,
      }),
    );
    pass.dispatchWorkgroups(...workgroups);

    const finalize = BACKWARD_REDUCE.kernel(device, 'reduce_finalize');
    const gw = bindOptional(gpu, a.gradWeight, 'gradWeight');
    const gb = bindOptional(gpu, a.gradBias, 'gradBias');
    const flags =
      (a.gradWeight ? FLAG_GRAD_WEIGHT : 0) | (a.gradBias ? FLAG_GRAD_BIAS : 0) | (needInputConstants ? FLAG_INPUT_CONSTANTS : 0);
    dispatchPerChannel(
      gpu,
      pass,
      finalize,
      g.c,
      {
        lanes,
        channels: g.c,
        planeStride: planeStride(g.c),
        flags,
        count: g.perChannel,
        gradWeightBase: gw.base,
        gradBiasBase: gb.base,
      },
      { partials, channelStats, gradWeight: gw.resource, gradBias: gb.resource },
    );
  }

  if (reduceWritesResidual) {
    // dL/dt is in gradResidual now: the plain elementwise pass turns it into dx.
    if (a.gradInput) {
      const w = bindOptional(gpu, a.weight, 'weight');
      const none = (name: string): TensorBinding => bindOptional(gpu, null, name);
      encodeElementwise(gpu, pass, g, {
        stage: BACKWARD_ELEMENTWISE,
        entry: 'elementwise',
        tensors: {
          x,
          dy: gradResidual,
          dx: bindTensor(device, a.gradInput),
          output: none('output'),
          residual: none('residual'),
          gradResidual: none('gradResidual'),
        },
        uniforms: { weightBase: w.base, flags: a.weight ? FLAG_AFFINE : 0, ...activationUniforms(null) },
        resources: { channelStats, weight: w.resource },
        constants: { BATCH_STATS: a.useBatchStats ? 1 : 0 },
      });
    }
  } else if (needElementwise) {
    const w = bindOptional(gpu, a.weight, 'weight');
    encodeElementwise(gpu, pass, g, {
      stage: BACKWARD_ELEMENTWISE,
      entry: 'elementwise',
      tensors: {
        x,
        dy,
        dx: bindOptional(gpu, a.gradInput, 'dx'),
        output: savedOutput,
        residual,
        gradResidual,
      },
      uniforms: { weightBase: w.base, flags: (a.weight ? FLAG_AFFINE : 0) | slopeFlags, ...epilogueUniforms },
      resources: { channelStats, weight: w.resource },
      constants: {
        BATCH_STATS: a.useBatchStats ? 1 : 0,
        ...epilogueConstants,
        // Specialise only when the epilogue asks, so plain BN keeps its one pipeline.
        ...(a.gradInput ? {} : { GRAD_INPUT: 0 }),
        ...(gradResidualTensor ? { GRAD_RESIDUAL: 1 } : {}),
      },
      half,
    });
  }
  pass.end();
}

/**
 * The reduction's kernel: the word entries `*_2h` for half precision whose rows are whole words
 * (width 2), else the width's variant (vec4, or scalar loads through the word view, which read
 * float32 and, with HALF_FORMAT set, float16 / bfloat16).
 */
function reduceKernel(
  device: GPUDevice,
  g: Geometry,
  width: VectorWidth | 2,
  half: HalfDType | null,
  overrides: StageOverrides<'backward-reduce'>,
) {
  const constants = half ? { ...overrides, HALF_FORMAT: halfFormat(half) } : overrides;
  if (width === 2) return BACKWARD_REDUCE.kernel(device, `reduce_${g.order}2h`, constants);
  return BACKWARD_REDUCE.variant(device, 'reduce', g.order, width, constants);
}

/**
 * The reduction's tensor bindings by WGSL name: the vec4 views, or the word views of the scalar
 * and word entries; the word entries (half precision only) have no gradResidual
 * (backward-elementwise.wgsl writes it then).
 */
function reduceTensors(
  width: number,
  t: { x: GPUBufferBinding; dy: GPUBufferBinding; output: GPUBufferBinding; residual: GPUBufferBinding; gradResidual: GPUBufferBinding },
): Record<string, GPUBufferBinding> {
  if (width === 4) return t;
  const words = { xWords: t.x, dyWords: t.dy, outputWords: t.output, residualWords: t.residual };
  return width === 2 ? words : { ...words, gradResidualScalar: t.gradResidual };
}
