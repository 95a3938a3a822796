/**
 * One entry point for the three model formats: detects the format, reads the tensors and lists the
 * batch-norm layers the file holds, each with PyTorch `state_dict` values ready for a module.
 */
import type { StateDict } from '../batch-norm/state-dict.js';
import { ArgumentError, ModelFileError } from '../errors.js';
import type { FileTensor, TensorMap } from './file-tensor.js';
import type { ReadLimits } from './limits.js';
import { isOnnxModel, parseOnnx, type OnnxNode } from './onnx.js';
import { parsePyTorch, startsLikePickle } from './pytorch.js';
import { isSafetensors, parseSafetensors, startsLikeSafetensors } from './safetensors.js';
import { sourceBytes, type ModelSource } from './source.js';
import { isZipArchive, startsLikeZip } from './zip.js';

/** The formats {@link readModelFile} reads. */
export type ModelFormat = 'pytorch' | 'safetensors' | 'onnx';

/** ONNX BatchNormalization attributes as the file stores them. */
export interface OnnxLayerAttributes {
  /** `epsilon` (ONNX default 1e-5), as stored (float32). */
  readonly epsilon: number;
  /** `momentum` (ONNX default 0.9): the weight of the OLD running value, unlike PyTorch. */
  readonly momentum: number;
  /** `training_mode` (opset ≥ 14, default 0). */
  readonly trainingMode: number;
  /** The node's input names: X, scale, B, input_mean, input_var. */
  readonly inputs: readonly string[];
}

/** A batch-norm layer found in a model file. */
export interface BatchNormLayer {
  /**
   * The module name for state dicts (`'layer1.0.bn1'` for keys `layer1.0.bn1.weight`, ...; `''` for
   * a bare BatchNorm's state dict), the node name for ONNX (its first output if unnamed).
   */
  readonly name: string;
  /** Channels (C). */
  readonly numFeatures: number;
  /** True when the file holds weight and bias. */
  readonly affine: boolean;
  /**
   * The layer's values with PyTorch keys, float32; `num_batches_tracked` exact (0 when the file
   * has none, as ONNX never does).
   */
  readonly stateDict: StateDict;
  /** ONNX only: eps from the node, as the shortest decimal of the stored float32 (1e-5, not 9.99999974e-6). */
  readonly eps?: number;
  /**
   * ONNX only: the node's momentum in PyTorch's convention (weight of the NEW batch statistic):
   * `1 − momentum_onnx`, rounded like eps (ONNX 0.9 → 0.1).
   */
  readonly momentum?: number;
  /** ONNX only: the node's attributes as stored. */
  readonly onnx?: OnnxLayerAttributes;
}

/** A model file's contents. */
export interface ModelFile {
  readonly format: ModelFormat;
  /** Every tensor: state-dict entries, or ONNX initializers and Constant-node values. */
  readonly tensors: TensorMap;
  /** The ONNX graph's nodes in order; empty for .pt and .safetensors. */
  readonly nodes: readonly OnnxNode[];
  /** Every batch-norm layer whose parameters the file holds, in file order. */
  readonly batchNorms: readonly BatchNormLayer[];
}

/**
 * Options of {@link readModelFile} and {@link parseModelFile}: the format, and the read limits
 * (`maxBytes` default 2 GiB, `maxPickleBytes` default 64 MiB, `maxEntries` default 1,000,000) that
 * a file past them is refused by, with reason LIMIT, before the allocation.
 */
export interface ReadModelOptions extends ReadLimits {
  /** Skip detection and read as this format. Default: detected from the file's structure ({@link detectModelFormat}). */
  format?: ModelFormat;
}

/**
 * Reads a .pt (torch.save, zip format), .safetensors or .onnx file from bytes, a Blob/File or a
 * fetch Response. Browser-safe; in Node pass `readFileSync(path)`.
 * @throws ModelFileError for a file that cannot be read safely; nothing is returned from it.
 */
export async function readModelFile(source: ModelSource, options: ReadModelOptions = {}): Promise<ModelFile> {
  return parseModelFile(await sourceBytes(source), options);
}

/**
 * Detects the format of `bytes` by each format's whole structure, never by one byte: a zip archive
 * (local header at 0 and a central directory that parses) → PyTorch; an 8-byte header length that
 * fits the file followed by a `{...}` header → safetensors; a top-level ModelProto that parses to
 * the last byte → ONNX. Only when none matches whole does the best partial match decide, so a
 * damaged file is refused by the reader of its format (TRUNCATED, not BAD_MAGIC): a zip local
 * header → PyTorch, a safetensors header start → safetensors, a raw pickle (protocol 2 to 5, the
 * legacy format) → PyTorch, else ONNX.
 */
export function detectModelFormat(bytes: Uint8Array): ModelFormat {
  if (isZipArchive(bytes)) return 'pytorch';
  if (isSafetensors(bytes)) return 'safetensors';
  if (isOnnxModel(bytes)) return 'onnx';
  if (startsLikeZip(bytes)) return 'pytorch';
  if (startsLikeSafetensors(bytes)) return 'safetensors';
  if (startsLikePickle(bytes)) return 'pytorch';
  return 'onnx';
}

/** Synchronous {@link readModelFile} on bytes already in memory. */
export function parseModelFile(bytes: Uint8Array, options: ReadModelOptions = {}): ModelFile {
  if (!(bytes instanceof Uint8Array)) throw new ArgumentError('parseModelFile: bytes must be a Uint8Array');
  const format = options.format ?? detectModelFormat(bytes);
  if (format === 'pytorch') {
    const tensors = parsePyTorch(bytes, options);
    return { format, tensors, nodes: [], batchNorms: stateDictBatchNorms(tensors, '.pt') };
  }
  if (format === 'safetensors') {
    const tensors = parseSafetensors(bytes, options);
    return { format, tensors, nodes: [], batchNorms: stateDictBatchNorms(tensors, '.safetensors') };
  }
  if (format === 'onnx') {
    const graph = parseOnnx(bytes, options);
    return { format, tensors: graph.constants, nodes: graph.nodes, batchNorms: onnxBatchNorms(graph.nodes, graph.constants) };
  }
  throw new ArgumentError(`format must be 'pytorch', 'safetensors' or 'onnx', got ${JSON.stringify(format)}`);
}

/**
 * The layer called `name` (a trailing dot is ignored, so `'layer1.0.bn1.'` works too).
 * @throws ModelFileError NOT_FOUND listing the layers the file does hold.
 */
export function findBatchNorm(file: ModelFile, name: string): BatchNormLayer {
  const wanted = name.endsWith('.') ? name.slice(0, -1) : name;
  const layer = file.batchNorms.find((l) => l.name === wanted);
  if (layer) return layer;
  const node = file.nodes.find((n) => n.name === wanted);
  const why =
    node && node.opType === 'BatchNormalization'
      ? ` (node '${wanted}' exists but its scale/B/mean/var are computed, not stored as initializers)`
      : node
        ? ` (node '${wanted}' is a ${node.opType}, not a BatchNormalization)`
        : '';
  const known = file.batchNorms.map((l) => `'${l.name}'`).join(', ') || 'none';
  throw new ModelFileError('NOT_FOUND', `${file.format} file has no batch-norm layer '${wanted}'${why}; it holds: ${known}`);
}

function floatVector(t: FileTensor, name: string, where: string): Float32Array {
  if (!(t.data instanceof Float32Array) || t.shape.length !== 1) {
    throw new ModelFileError(
      'CORRUPT',
      `${where}: '${name}' should be a 1-D float tensor, got ${t.dtype} of shape [${t.shape.join(', ')}]`,
    );
  }
  return t.data;
}

function countValue(t: FileTensor, name: string, where: string): number {
  const v = t.data[0];
  if (t.data.length !== 1 || v === undefined || t.data instanceof Float32Array) {
    throw new ModelFileError('CORRUPT', `${where}: '${name}' should be one integer, got ${t.dtype} of shape [${t.shape.join(', ')}]`);
  }
  const n = typeof v === 'bigint' ? v : BigInt(v);
  if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ModelFileError('CORRUPT', `${where}: '${name}' = ${n} is out of range`);
  return Number(n);
}

/** Layers of a PyTorch state dict: every prefix with `running_mean` and `running_var`. */
function stateDictBatchNorms(tensors: TensorMap, where: string): BatchNormLayer[] {
  const layers: BatchNormLayer[] = [];
  for (const key of tensors.keys()) {
    if (!key.endsWith('running_mean') || !(key === 'running_mean' || key.endsWith('.running_mean'))) continue;
    const prefix = key.slice(0, -'running_mean'.length);
    const get = (k: string): FileTensor | undefined => tensors.get(prefix + k);
    const mean = get('running_mean');
    const variance = get('running_var');
    if (!mean || !variance) continue;
    const sd: StateDict = {};
    const runningMean = floatVector(mean, prefix + 'running_mean', where);
    const runningVar = floatVector(variance, prefix + 'running_var', where);
    const weight = get('weight');
    const bias = get('bias');
    if (weight && bias) {
      sd.weight = floatVector(weight, prefix + 'weight', where);
      sd.bias = floatVector(bias, prefix + 'bias', where);
    }
    sd.running_mean = runningMean;
    sd.running_var = runningVar;
    const tracked = get('num_batches_tracked');
    sd.num_batches_tracked = tracked ? countValue(tracked, prefix + 'num_batches_tracked', where) : 0;
    for (const k of ['weight', 'bias', 'running_var'] as const) {
      const v = sd[k];
      if (v && v.length !== runningMean.length) {
        throw new ModelFileError(
          'CORRUPT',
          `${where}: '${prefix}${k}' has ${v.length} values, '${prefix}running_mean' has ${runningMean.length}`,
        );
      }
    }
    layers.push({
      name: prefix.endsWith('.') ? prefix.slice(0, -1) : prefix,
      numFeatures: runningMean.length,
      affine: !!sd.weight,
      stateDict: sd,
    });
  }
  return layers;
}

/** The shortest decimal whose float32 rounding is `f32` (what the exporter most likely wrote). */
export function shortestFloat32(f32: number): number {
  for (let digits = 1; digits <= 9; digits++) {
    const d = Number(f32.toPrecision(digits));
    if (Math.fround(d) === Math.fround(f32)) return d;
  }
  return f32;
}

/** PyTorch's momentum from ONNX's: 1 − m, rounded to the decimals of m's shortest form. */
export function momentumFromOnnx(onnxMomentum: number): number {
  const m = shortestFloat32(onnxMomentum);
  const decimals = (String(m).split('.')[1] ?? '').length;
  return decimals > 0 && decimals < 16 && !String(m).includes('e') ? Number((1 - m).toFixed(decimals)) : 1 - m;
}

function onnxBatchNorms(nodes: readonly OnnxNode[], constants: TensorMap): BatchNormLayer[] {
  const layers: BatchNormLayer[] = [];
  for (const node of nodes) {
    if (node.opType !== 'BatchNormalization') continue;
    const name = node.name || node.outputs[0] || '';
    const [, scaleName, biasName, meanName, varName] = node.inputs;
    const get = (n: string | undefined): FileTensor | undefined => (n === undefined ? undefined : constants.get(n));
    const scale = get(scaleName);
    const bias = get(biasName);
    const mean = get(meanName);
    const variance = get(varName);
    if (!scale || !bias || !mean || !variance) continue;
    const where = `.onnx node '${name}'`;
    const sd: StateDict = {
      weight: floatVector(scale, scaleName ?? 'scale', where),
      bias: floatVector(bias, biasName ?? 'B', where),
      running_mean: floatVector(mean, meanName ?? 'input_mean', where),
      running_var: floatVector(variance, varName ?? 'input_var', where),
      num_batches_tracked: 0,
    };
    const c = sd.running_mean?.length ?? 0;
    for (const v of [sd.weight, sd.bias, sd.running_var]) {
      if (v?.length !== c) throw new ModelFileError('CORRUPT', `${where}: scale, B, mean and var must all have ${c} values`);
    }
    const number = (key: string, fallback: number): number => {
      const v = node.attributes.get(key);
      return typeof v === 'number' ? v : fallback;
    };
    const attributes: OnnxLayerAttributes = {
      epsilon: number('epsilon', 1e-5),
      momentum: number('momentum', 0.9),
      trainingMode: number('training_mode', 0),
      inputs: node.inputs,
    };
    layers.push({
      name,
      numFeatures: c,
      affine: true,
      stateDict: sd,
      eps: shortestFloat32(attributes.epsilon),
      momentum: momentumFromOnnx(attributes.momentum),
      onnx: attributes,
    });
  }
  return layers;
}
