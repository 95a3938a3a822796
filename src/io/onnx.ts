/**
 * ONNX models (`.onnx`, a protobuf `ModelProto`): the graph's nodes and initializers, read with
 * @bufbuild/protobuf's wire-format reader (no code generation, no eval, no schema compiler in the
 * bundle). Only the fields needed here are decoded; every other field is skipped by wire type.
 * Field numbers: onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto).
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { ModelFileError } from '../errors.js';
import { bfloat16Value, float16Value } from '../dtype.js';
import { DTYPE_BYTES, decodeElements, decodedBytes, type FileDtype, type FileTensor } from './file-tensor.js';
import { ByteBudget, checkEntries, checkedCount, resolveLimits, type ReadLimits } from './limits.js';

/** One node of the graph, as ONNX names it. */
export interface OnnxNode {
  /** The node's name (may be empty in hand-written models). */
  readonly name: string;
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  /** Scalar and list attributes by name (tensor and graph attributes are not decoded). */
  readonly attributes: ReadonlyMap<string, number | string | readonly number[]>;
}

/** A model's graph: nodes in order and every constant tensor by name (initializers and Constant nodes). */
export interface OnnxGraph {
  readonly nodes: readonly OnnxNode[];
  readonly constants: ReadonlyMap<string, FileTensor>;
  /** The opset version of the default domain, or null if the model declares none. */
  readonly opset: number | null;
}

// TensorProto.DataType (onnx.proto)
const DATA_FLOAT = 1;
const DATA_INT32 = 6;
const DATA_INT64 = 7;
const DATA_FLOAT16 = 10;
const DATA_DOUBLE = 11;
const DATA_BFLOAT16 = 16;
const RAW_DTYPES: Readonly<Record<number, FileDtype>> = {
  [DATA_FLOAT]: 'F32',
  [DATA_INT32]: 'I32',
  [DATA_INT64]: 'I64',
  [DATA_FLOAT16]: 'F16',
  [DATA_DOUBLE]: 'F64',
  [DATA_BFLOAT16]: 'BF16',
};
// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_TENSOR = 4;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

/**
 * Protobuf has no magic number; a ModelProto's first byte is the tag of one of its fields (ir_version
 * 0x08 for every exporter we know, but field order is free), which rejects most other files early.
 */
const MODEL_FIRST_TAGS: readonly number[] = [0x08, 0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72, 0xa2, 0xca];

/** Reads repeated scalars, packed (length-delimited) or one per tag. */
function repeated(r: BinaryReader, wire: WireType, read: (r: BinaryReader) => number, into: number[]): void {
  if (wire === WireType.LengthDelimited) {
    const end = r.uint32() + r.pos;
    while (r.pos < end) into.push(read(r));
  } else into.push(read(r));
}

const int64 = (r: BinaryReader): number => Number(r.int64());

interface RawTensor {
  name: string;
  dims: number[];
  dataType: number;
  raw: Uint8Array | null;
  external: boolean;
  /**
   * The TensorProto's own bytes. Its typed value fields (float_data, int32_data, int64_data,
   * double_data) are only skipped by readTensor and decoded by toFileTensor, straight into an
   * array of the checked size once the dims are checked and charged to the budget: a forged
   * field of 30M one-byte varints costs nothing until then.
   */
  message: Uint8Array;
}

function readTensor(bytes: Uint8Array): RawTensor {
  const r = new BinaryReader(bytes);
  const t: RawTensor = { name: '', dims: [], dataType: 0, raw: null, external: false, message: bytes };
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1) repeated(r, wire, int64, t.dims);
    else if (field === 2) t.dataType = r.int32();
    else if (field === 8) t.name = r.string();
    else if (field === 9) t.raw = r.bytes();
    else if (field === 13) {
      t.external = true;
      r.skip(wire, field);
    } else if (field === 14) t.external = r.int32() === 1;
    else r.skip(wire, field);
  }
  return t;
}

/** TensorProto fields of the typed values: float_data, int32_data (also float16 / bfloat16 bits), int64_data, double_data. */
const FLOAT_DATA = 4;
const INT32_DATA = 5;
const INT64_DATA = 7;
const DOUBLE_DATA = 10;

/**
 * Decodes every value of the repeated field `field` of `t`'s message (packed or one per tag) into
 * `out`, which must end up exactly full.
 * @throws ModelFileError TRUNCATED when the field holds more or fewer values than `out.length`.
 */
function decodeValueField<A extends Float32Array | Int32Array | BigInt64Array>(
  t: RawTensor,
  field: number,
  out: A,
  read: (r: BinaryReader) => A extends BigInt64Array ? bigint : number,
): A {
  const r = new BinaryReader(t.message);
  let n = 0;
  const wrong = (got: string): ModelFileError =>
    new ModelFileError('TRUNCATED', `.onnx: tensor '${t.name}' has ${got} values, dims [${t.dims.join(', ')}] need ${out.length}`);
  const put = (): void => {
    if (n >= out.length) throw wrong(`more than ${out.length}`);
    (out as Float32Array)[n++] = read(r) as number;
  };
  while (r.pos < r.len) {
    const [f, wire] = r.tag();
    if (f !== field) r.skip(wire, f);
    else if (wire === WireType.LengthDelimited) {
      const end = r.uint32() + r.pos;
      while (r.pos < end) put();
    } else put();
  }
  if (n !== out.length) throw wrong(String(n));
  return out;
}

function toFileTensor(t: RawTensor, budget: ByteBudget): FileTensor {
  const dtype = RAW_DTYPES[t.dataType];
  if (t.external)
    throw new ModelFileError(
      'EXTERNAL_DATA',
      `.onnx: tensor '${t.name}' is stored outside the model file (external data), which is not read`,
    );
  if (!dtype)
    throw new ModelFileError(
      'UNSUPPORTED_DTYPE',
      `.onnx: tensor '${t.name}' has ONNX data type ${t.dataType}; only float, float16, bfloat16, double, int32 and int64 are read`,
    );
  const shape = t.dims;
  const count = checkedCount(shape, `.onnx: tensor '${t.name}'`);
  if (t.raw && t.raw.byteLength !== count * DTYPE_BYTES[dtype]) {
    // Checked before decoding so a forged dims field cannot make us allocate for values that are not there.
    throw new ModelFileError(
      'TRUNCATED',
      `.onnx: tensor '${t.name}' has ${t.raw.byteLength} bytes of raw_data, dims [${shape.join(', ')}] of ${dtype} need ${count * DTYPE_BYTES[dtype]}`,
    );
  }
  budget.charge(count * decodedBytes(dtype), `tensor '${t.name}'`);
  let data: FileTensor['data'];
  if (t.raw) data = decodeElements(t.raw, dtype, count);
  else if (dtype === 'F32') data = decodeValueField(t, FLOAT_DATA, new Float32Array(count), (r) => r.float());
  else if (dtype === 'F64') data = decodeValueField(t, DOUBLE_DATA, new Float32Array(count), (r) => r.double());
  // float16 and bfloat16 values live in int32_data as their bit patterns (onnx.proto, int32_data).
  else if (dtype === 'F16') data = decodeValueField(t, INT32_DATA, new Float32Array(count), (r) => float16Value(r.int32() & 0xffff));
  else if (dtype === 'BF16') data = decodeValueField(t, INT32_DATA, new Float32Array(count), (r) => bfloat16Value(r.int32() & 0xffff));
  else if (dtype === 'I32') data = decodeValueField(t, INT32_DATA, new Int32Array(count), (r) => r.int32());
  else data = decodeValueField(t, INT64_DATA, new BigInt64Array(count), (r) => BigInt(r.int64()));
  return { dtype, shape, data };
}

function readAttribute(bytes: Uint8Array): { name: string; value: number | string | readonly number[] | RawTensor | null } {
  const r = new BinaryReader(bytes);
  let name = '';
  let type = 0;
  let f = 0;
  let i = 0;
  let s: Uint8Array | null = null;
  let t: RawTensor | null = null;
  const floats: number[] = [];
  const ints: number[] = [];
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1) name = r.string();
    else if (field === 20) type = r.int32();
    else if (field === 2) f = r.float();
    else if (field === 3) i = int64(r);
    else if (field === 4) s = r.bytes();
    else if (field === 5) t = readTensor(r.bytes());
    else if (field === 7) repeated(r, wire, (x) => x.float(), floats);
    else if (field === 8) repeated(r, wire, int64, ints);
    else r.skip(wire, field);
  }
  const value =
    type === ATTR_FLOAT
      ? f
      : type === ATTR_INT
        ? i
        : type === ATTR_STRING
          ? new TextDecoder().decode(s ?? new Uint8Array())
          : type === ATTR_TENSOR
            ? t
            : type === ATTR_FLOATS
              ? floats
              : type === ATTR_INTS
                ? ints
                : null;
  return { name, value };
}

function readNode(bytes: Uint8Array, constants: Map<string, FileTensor>, budget: ByteBudget): OnnxNode {
  const r = new BinaryReader(bytes);
  const inputs: string[] = [];
  const outputs: string[] = [];
  let name = '';
  let opType = '';
  let domain = '';
  const attributes = new Map<string, number | string | readonly number[]>();
  let constantValue: RawTensor | null = null;
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1) inputs.push(r.string());
    else if (field === 2) outputs.push(r.string());
    else if (field === 3) name = r.string();
    else if (field === 4) opType = r.string();
    else if (field === 7) domain = r.string();
    else if (field === 5) {
      const a = readAttribute(r.bytes());
      if (a.value !== null && typeof a.value === 'object' && !Array.isArray(a.value)) {
        if (a.name === 'value') constantValue = a.value as RawTensor;
      } else if (a.value !== null) attributes.set(a.name, a.value as number | string | readonly number[]);
    } else r.skip(wire, field);
  }
  // Exporters that keep constants as nodes (do_constant_folding=False) put BN parameters here.
  if (opType === 'Constant' && (domain === '' || domain === 'ai.onnx') && constantValue && outputs[0] !== undefined) {
    constants.set(outputs[0], toFileTensor(constantValue, budget));
  }
  return { name, opType, inputs, outputs, attributes };
}

function readGraph(bytes: Uint8Array, constants: Map<string, FileTensor>, budget: ByteBudget, maxEntries: number): OnnxNode[] {
  const r = new BinaryReader(bytes);
  const nodes: OnnxNode[] = [];
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1) nodes.push(readNode(r.bytes(), constants, budget));
    else if (field === 5) {
      const t = readTensor(r.bytes());
      constants.set(t.name, toFileTensor(t, budget));
    } else r.skip(wire, field);
    checkEntries(nodes.length + constants.size, maxEntries, '.onnx', 'the number of nodes and constant tensors');
  }
  return nodes;
}

/**
 * True when `bytes` parse as a protobuf ModelProto at the top level: every field a valid tag
 * (field 1..20, wire type 0/1/2/5), every length inside the file, the last field ending exactly at
 * the end, and both ir_version (1, varint) and graph (7, bytes) present. Protobuf has no magic
 * number, so this walks the whole top level (cheap: length-delimited fields are skipped).
 */
export function isOnnxModel(bytes: Uint8Array): boolean {
  if (!startsLikeOnnx(bytes)) return false;
  try {
    const r = new BinaryReader(bytes);
    let ir = false;
    let graph = false;
    while (r.pos < r.len) {
      const [field, wire] = r.tag();
      if (field < 1 || field > 20) return false;
      if (wire === WireType.Varint) r.uint64();
      else if (wire === WireType.LengthDelimited) {
        const length = r.uint32();
        if (r.pos + length > r.len) return false;
        r.pos += length;
      } else if (wire === WireType.Bit64 || wire === WireType.Bit32) r.skip(wire, field);
      else return false;
      if (field === 1 && wire === WireType.Varint) ir = true;
      if (field === 7 && wire === WireType.LengthDelimited) graph = true;
    }
    return r.pos === r.len && ir && graph;
  } catch {
    return false;
  }
}

/** True when the first byte is the tag of a ModelProto field (ir_version for every exporter). */
export function startsLikeOnnx(bytes: Uint8Array): boolean {
  return MODEL_FIRST_TAGS.includes(bytes[0] ?? -1);
}

/**
 * Reads an ONNX model's graph: its nodes (name, op type, inputs, outputs, scalar attributes) and
 * its constant tensors (initializers and Constant-node values), floats converted to float32.
 * @param options read limits: `maxBytes` bounds the decoded tensors (default 2 GiB), `maxEntries`
 *   the nodes plus constants (default 1,000,000).
 * @throws ModelFileError BAD_MAGIC (not an ONNX ModelProto), TRUNCATED, CORRUPT, BAD_SHAPE, LIMIT,
 *   EXTERNAL_DATA or UNSUPPORTED_DTYPE.
 */
export function parseOnnx(bytes: Uint8Array, options: ReadLimits = {}): OnnxGraph {
  const limits = resolveLimits(options);
  if (!startsLikeOnnx(bytes)) {
    throw new ModelFileError(
      'BAD_MAGIC',
      `.onnx: not an ONNX model (first byte 0x${(bytes[0] ?? 0).toString(16)} starts no ModelProto field)`,
    );
  }
  try {
    const r = new BinaryReader(bytes);
    let graph: Uint8Array | null = null;
    let irVersion: number | null = null;
    let opset: number | null = null;
    while (r.pos < r.len) {
      const [field, wire] = r.tag();
      if (field === 1 && wire === WireType.Varint) irVersion = int64(r);
      else if (field === 7 && wire === WireType.LengthDelimited) graph = r.bytes();
      else if (field === 8 && wire === WireType.LengthDelimited) {
        const o = new BinaryReader(r.bytes());
        let domain = '';
        let version = 0;
        while (o.pos < o.len) {
          const [f, w] = o.tag();
          if (f === 1) domain = o.string();
          else if (f === 2) version = int64(o);
          else o.skip(w, f);
        }
        if (domain === '' || domain === 'ai.onnx') opset = version;
      } else r.skip(wire, field);
    }
    if (irVersion === null || graph === null) {
      throw new ModelFileError('BAD_MAGIC', '.onnx: not an ONNX model (no ir_version or graph in the protobuf)');
    }
    const constants = new Map<string, FileTensor>();
    const nodes = readGraph(graph, constants, new ByteBudget(limits.maxBytes, '.onnx'), limits.maxEntries);
    return { nodes, constants, opset };
  } catch (err) {
    if (err instanceof ModelFileError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    if (/premature EOF|out of range|EOF/i.test(message))
      throw new ModelFileError('TRUNCATED', `.onnx: the protobuf ends early (${message})`);
    throw new ModelFileError('CORRUPT', `.onnx: not a valid ONNX protobuf (${message})`);
  }
}
