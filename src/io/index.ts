/// <reference types="@webgpu/types" preserve="true" />
/**
 * `webgpu-batchnorm/io`: model files (.pt, .safetensors, .onnx) read with bounded, allowlist
 * parsers, batch-norm layers found and loaded into modules, and state dicts written as safetensors.
 * In Node, `webgpu-batchnorm/node` adds reading by path.
 * @packageDocumentation
 */
export { ModelFileError, type ModelFileErrorReason } from '../errors.js';
export type { FileDtype, FileTensor, TensorMap } from './file-tensor.js';
export type { ModelSource } from './source.js';
export { DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_PICKLE_BYTES, MAX_DEPTH, type ReadLimits } from './limits.js';
export { parsePyTorch } from './pytorch.js';
export {
  parseSafetensors,
  writeSafetensors,
  stateDictTensors,
  type WritableTensor,
  type WriteSafetensorsOptions,
} from './safetensors.js';
export { parseOnnx, type OnnxGraph, type OnnxNode } from './onnx.js';
export {
  readModelFile,
  parseModelFile,
  detectModelFormat,
  findBatchNorm,
  type BatchNormLayer,
  type ModelFile,
  type ModelFormat,
  type OnnxLayerAttributes,
  type ReadModelOptions,
} from './model-file.js';
export { loadBatchNorm, type LoadBatchNormOptions } from './load-batch-norm.js';
