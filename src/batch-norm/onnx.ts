import { optionKeys, optionsObject } from '../arguments.js';
import { assertContext, type BatchNormContext } from '../context.js';
import { ArgumentError } from '../errors.js';
import { BUFFER_COPY_SRC } from '../gpu/constants.js';
import { channelStatsBytes, COUNTER_BYTES } from '../gpu/contracts.js';
import type { Tensor } from '../tensor.js';
import { runGpuOp } from '../gpu/dispatch.js';
import { cpuData, runForward, type ForwardSpec } from './forward.js';
import { encodeForward } from './kernels/gpu-forward.js';
import { checkBoolean, checkEps } from './config/options.js';
import { checkChannelTensor, checkInput } from './validate.js';
import { CONVENTIONS } from './config/conventions.js';

// The ONNX BatchNormalization operator, opset 15 (onnx.ai/onnx/operators/onnx__BatchNormalization):
//   training_mode = 0:  Y = (X − input_mean) / sqrt(input_var + epsilon) · scale + B
//   training_mode = 1:  current_mean = ReduceMean(X, all axes but 1)
//                       current_var  = ReduceVar(X, all axes but 1), the population variance
//                       Y            = (X − current_mean) / sqrt(current_var + epsilon) · scale + B
//                       running_mean = input_mean · momentum + current_mean · (1 − momentum)
//                       running_var  = input_var · momentum + current_var · (1 − momentum)
// Opset 14 is the same with one type for all inputs; opsets 9–13 have no training_mode (training is
// "when the optional outputs are requested") and add the outputs saved_mean / saved_var, which
// `batchNorm`'s `batchStats` option provides; opsets ≤ 8 add `spatial` (and ≤ 6 `is_test`).

/** Inputs of {@link onnxBatchNormalization}, named as in the ONNX spec. */
export interface OnnxBatchNormalizationInputs {
  /** (N, C, D1, ..., Dn), rank ≥ 2, either layout. */
  readonly X: Tensor;
  /** Shape [C]. */
  readonly scale: Tensor;
  /** Shape [C]. */
  readonly B: Tensor;
  /** Shape [C]: the estimated mean (inference) or the running mean (training). */
  readonly inputMean: Tensor;
  /** Shape [C]: the estimated variance (inference) or the running variance (training). */
  readonly inputVar: Tensor;
}

/** Attributes of {@link onnxBatchNormalization}, with the spec's defaults. */
export interface OnnxBatchNormalizationAttributes {
  /** Default 1e-5. Must be ≥ 0 (0 is allowed, as in the spec). */
  epsilon?: number;
  /** Weight of the old running value. Default 0.9. Any finite number, as in the spec. */
  momentum?: number;
  /** Default false (inference). */
  trainingMode?: boolean;
}

/** The keys of {@link OnnxBatchNormalizationAttributes}; any other key is rejected. */
export const ONNX_BATCH_NORMALIZATION_ATTRIBUTE_KEYS = optionKeys<OnnxBatchNormalizationAttributes>({
  epsilon: true,
  momentum: true,
  trainingMode: true,
});

/** Outputs: Y always; running_mean and running_var (new tensors) in training mode. */
export interface OnnxBatchNormalizationOutputs {
  readonly Y: Tensor;
  readonly runningMean?: Tensor;
  readonly runningVar?: Tensor;
}

const WHO = 'onnxBatchNormalization';

/**
 * ONNX `BatchNormalization` (opset 15) on this context's backend. Inputs are never modified: in
 * training mode the updated statistics are returned as new tensors, as the operator's outputs. On
 * WebGPU, training mode copies input_mean and input_var, so their buffers need COPY_SRC usage.
 * @throws ShapeError for X of rank < 2, an empty X, or a [C] input of another length;
 *   ArgumentError for a bad attribute.
 */
export function onnxBatchNormalization(
  ctx: BatchNormContext,
  inputs: OnnxBatchNormalizationInputs,
  attributes: OnnxBatchNormalizationAttributes | null = {},
): OnnxBatchNormalizationOutputs {
  assertContext(ctx, WHO);
  if (inputs === null || typeof inputs !== 'object') {
    throw new ArgumentError(`${WHO}: inputs must be an object { X, scale, B, inputMean, inputVar }, got ${String(inputs)}`);
  }
  const attrs = optionsObject<OnnxBatchNormalizationAttributes>(attributes, `${WHO} attributes`, ONNX_BATCH_NORMALIZATION_ATTRIBUTE_KEYS);
  const { X, scale, B, inputMean, inputVar } = inputs;
  const g = checkInput(ctx, X, 'X', null, null, WHO);
  for (const [name, t] of [
    ['scale', scale],
    ['B', B],
    ['inputMean', inputMean],
    ['inputVar', inputVar],
  ] as const) {
    checkChannelTensor(ctx, t, name, g.c, WHO);
  }
  const epsilon = checkEps(attrs.epsilon ?? CONVENTIONS.onnx.eps, 'epsilon', true);
  const momentum = attrs.momentum ?? CONVENTIONS.onnx.momentum;
  if (typeof momentum !== 'number' || !Number.isFinite(momentum)) {
    throw new ArgumentError(`${WHO}: momentum must be a finite number, got ${String(momentum)}`);
  }
  const training = checkBoolean(attrs.trainingMode ?? false, 'trainingMode');
  const gpu = ctx.gpu;
  if (training && gpu) {
    for (const [name, t] of [
      ['inputMean', inputMean],
      ['inputVar', inputVar],
    ] as const) {
      const s = t.storage;
      if (s.kind === 'gpu' && (s.buffer.usage & BUFFER_COPY_SRC) === 0) {
        throw new ArgumentError(
          `${WHO}: ${name} needs GPUBufferUsage.COPY_SRC in training mode (it is copied to running_${name === 'inputMean' ? 'mean' : 'var'})`,
        );
      }
    }
  }

  const Y = ctx.allocTensor(X.shape, X.layout, 'Y');
  const runningMean = training ? ctx.allocTensor([g.c], 'channels_first', 'running_mean') : null;
  const runningVar = training ? ctx.allocTensor([g.c], 'channels_first', 'running_var') : null;
  const spec: ForwardSpec = {
    weight: scale,
    bias: B,
    runningMean: training ? runningMean : inputMean,
    runningVar: training ? runningVar : inputVar,
    eps: epsilon,
    // The kernels take the weight of the batch value; ONNX's momentum weighs the old value.
    update: { meanFactor: 1 - momentum, varFactor: 1 - momentum, varianceEstimator: 'biased' },
    useBatchStats: training,
    updateRunning: training,
    tracked: 0,
    epilogue: null,
  };
  try {
    if (gpu) {
      // One submit: copy input_mean/input_var into the new running tensors, then the forward
      // updates those copies in place.
      const args = {
        ...spec,
        x: X,
        y: Y,
        counter: gpu.scratch('onnx.counter', COUNTER_BYTES),
        channelStats: gpu.scratch('onnx.channelStats', channelStatsBytes(g.c)),
      };
      runGpuOp(gpu, 'bn.onnx', { outputs: [Y, runningMean, runningVar] }, (encoder) => {
        if (runningMean && runningVar) {
          encoder.copyBufferToBuffer(inputMean.buffer, inputMean.byteOffset, runningMean.buffer, 0, g.c * 4);
          encoder.copyBufferToBuffer(inputVar.buffer, inputVar.byteOffset, runningVar.buffer, 0, g.c * 4);
        }
        encodeForward(gpu, encoder, g, args);
      });
    } else {
      if (runningMean && runningVar) {
        cpuData(runningMean).set(cpuData(inputMean));
        cpuData(runningVar).set(cpuData(inputVar));
      }
      runForward(ctx, X, Y, g, spec, null);
    }
  } catch (err) {
    for (const t of [Y, runningMean, runningVar]) t?.destroy();
    throw err;
  }
  return runningMean && runningVar ? { Y, runningMean, runningVar } : { Y };
}
