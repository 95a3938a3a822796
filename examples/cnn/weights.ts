/**
 * The example network's weights, taken from any of the three model files: PyTorch state-dict keys
 * for .pt and .safetensors, the graph's Conv / BatchNormalization / Gemm nodes (in order) for .onnx.
 */
import { findBatchNorm, type BatchNormLayer, type FileTensor, type ModelFile } from '../../src/io/index.js';

/** A convolution without bias followed by a batch norm. */
export interface ConvBn {
  /** O × I × k × k, PyTorch order. */
  readonly weight: Float32Array;
  readonly shape: readonly [number, number, number, number];
  readonly bn: BatchNormLayer;
}

/** conv1 → bn1 → ReLU → [conv → bn → ReLU → conv → bn, + skip, ReLU] → mean → fc. */
export interface CnnWeights {
  /** Stem, then the residual block's two convolutions. */
  readonly convs: readonly [ConvBn, ConvBn, ConvBn];
  /** out × in. */
  readonly fcWeight: Float32Array;
  readonly fcBias: Float32Array;
  readonly classes: number;
  readonly width: number;
}

function floats(t: FileTensor | undefined, what: string): { data: Float32Array; shape: readonly number[] } {
  if (!t || !(t.data instanceof Float32Array)) throw new Error(`example CNN: ${what} missing or not floating point`);
  return { data: t.data, shape: t.shape };
}

function convBn(weight: FileTensor | undefined, bn: BatchNormLayer, what: string): ConvBn {
  const w = floats(weight, what);
  const [o = 0, i = 0, kh = 0, kw = 0] = w.shape;
  if (w.shape.length !== 4 || kh !== kw || o !== bn.numFeatures) throw new Error(`example CNN: ${what} has shape [${w.shape.join(', ')}]`);
  return { weight: w.data, shape: [o, i, kh, kw], bn };
}

/** Picks the example network's parameters out of a model file of any format. */
export function cnnWeights(file: ModelFile): CnnWeights {
  let convs: [ConvBn, ConvBn, ConvBn];
  let fcWeight: { data: Float32Array; shape: readonly number[] };
  let fcBias: { data: Float32Array; shape: readonly number[] };
  if (file.format === 'onnx') {
    const conv = file.nodes.filter((n) => n.opType === 'Conv');
    const gemm = file.nodes.find((n) => n.opType === 'Gemm');
    if (conv.length !== 3 || file.batchNorms.length !== 3 || !gemm) {
      throw new Error(
        `example CNN: expected 3 Conv, 3 BatchNormalization and a Gemm node, got ${file.nodes.map((n) => n.opType).join(', ')}`,
      );
    }
    if (gemm.attributes.get('transB') !== 1) throw new Error('example CNN: the Gemm node must have transB=1 (weight out × in)');
    const bns = file.batchNorms;
    convs = [0, 1, 2].map((k) => {
      const node = conv[k];
      const bn = bns[k];
      if (!node || !bn) throw new Error('unreachable');
      return convBn(file.tensors.get(node.inputs[1] ?? ''), bn, `Conv node '${node.name}'`);
    }) as [ConvBn, ConvBn, ConvBn];
    fcWeight = floats(file.tensors.get(gemm.inputs[1] ?? ''), 'Gemm weight');
    fcBias = floats(file.tensors.get(gemm.inputs[2] ?? ''), 'Gemm bias');
  } else {
    const t = (name: string): FileTensor | undefined => file.tensors.get(name);
    convs = [
      convBn(t('conv1.weight'), findBatchNorm(file, 'bn1'), 'conv1.weight'),
      convBn(t('layer1.0.conv1.weight'), findBatchNorm(file, 'layer1.0.bn1'), 'layer1.0.conv1.weight'),
      convBn(t('layer1.0.conv2.weight'), findBatchNorm(file, 'layer1.0.bn2'), 'layer1.0.conv2.weight'),
    ];
    fcWeight = floats(t('fc.weight'), 'fc.weight');
    fcBias = floats(t('fc.bias'), 'fc.bias');
  }
  const [classes = 0, width = 0] = fcWeight.shape;
  return { convs, fcWeight: fcWeight.data, fcBias: fcBias.data, classes, width };
}
