/// <reference types="@webgpu/types" preserve="true" />
/**
 * `webgpu-batchnorm/fold`: a trained batch norm folded into the preceding convolution or linear
 * layer for inference, on host arrays or on the context's tensors (one GPU dispatch).
 * @packageDocumentation
 */
export {
  foldBatchNorm,
  type FoldLayer,
  type FoldBatchNormState,
  type FoldOptions,
  type FoldedLayer,
} from './fold-cpu.js';
export type { WeightLayout } from './fold-geometry.js';
export {
  foldBatchNormTensors,
  encodeFoldBatchNorm,
  type FoldTensorLayer,
  type FoldTensorOutputs,
  type FoldTensorOptions,
} from './fold-tensors.js';
