/// <reference types="@webgpu/types" preserve="true" />
/**
 * webgpu-batchnorm: PyTorch's BatchNorm1d/2d/3d and F.batch_norm on WebGPU, with a CPU fallback of
 * identical semantics.
 * @packageDocumentation
 */
export {
  createContext,
  BatchNormContext,
  DEFAULT_GPU_POOL_BYTES,
  DEFAULT_CPU_POOL_BYTES,
  type BackendChoice,
  type BackendName,
  type ContextOptions,
  type ContextStats,
  type TensorOptions,
  type TensorData,
  type BufferTensorOptions,
} from './context.js';
export { Tensor, type Layout } from './tensor.js';
export { bfloat16Bits, bfloat16Value, float16Bits, float16Value, type DType } from './dtype.js';
export {
  BatchNorm,
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  type ForwardOptions,
  type EncodeForwardOptions,
} from './batch-norm/module.js';
export type { Activation, Epilogue } from './batch-norm/epilogue.js';
export type { BatchNormOptions } from './batch-norm/config/options.js';
export type { StateDict, StateDictInput } from './batch-norm/state-dict.js';
export { batchNorm, type BatchNormFunctionalOptions } from './batch-norm/functional.js';
export type { BatchStatsOutputs } from './batch-norm/forward.js';
export {
  CONVENTIONS,
  type Convention,
  type ConventionName,
  type MomentumMeaning,
  type StateNames,
  type VarianceEstimator,
} from './batch-norm/config/conventions.js';
export {
  onnxBatchNormalization,
  type OnnxBatchNormalizationAttributes,
  type OnnxBatchNormalizationInputs,
  type OnnxBatchNormalizationOutputs,
} from './batch-norm/onnx.js';
export {
  batchNormBackward,
  type BatchNormBackwardArgs,
  type BackwardOptions,
  type BackwardOutputs,
  type BackwardResult,
  type OutputMask,
} from './batch-norm/backward.js';
export {
  BatchNormError,
  ShapeError,
  InsufficientValuesError,
  ArgumentError,
  ContextMismatchError,
  DestroyedError,
  StateDictError,
  DeviceLimitError,
  WebGPUUnavailableError,
  DeviceLostError,
  GPUOperationError,
  BackwardStateError,
  ModelFileError,
  type ModelFileErrorReason,
} from './errors.js';
