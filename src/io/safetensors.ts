/**
 * safetensors (https://github.com/huggingface/safetensors, "Format" in its README): an 8-byte
 * little-endian header length N, N bytes of JSON `{ name: { dtype, shape, data_offsets: [begin,
 * end] }, "__metadata__"?: { string: string } }`, then the little-endian tensor bytes, offsets
 * relative to the end of the header. No code, no pickle: the safe format to hand weights around.
 */
import { ArgumentError, ModelFileError } from '../errors.js';
import type { StateDict } from '../batch-norm/state-dict.js';
import { DTYPE_BYTES, decodeElements, elementCount, type FileDtype, type FileTensor, type TensorMap } from './file-tensor.js';

const READ_DTYPES: readonly string[] = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32'];
/** Largest header the reader accepts (the reference implementation's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/** True when `bytes` start like a safetensors file: a plausible header length, then `{`. */
export function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 9) return false;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return n > 1n && n <= BigInt(Math.min(MAX_HEADER_BYTES, bytes.byteLength - 8)) && bytes[8] === 0x7b;
}

/**
 * Reads every tensor of a safetensors file. Floats (F64, F16, BF16) become float32; I64 stays exact.
 * @throws ModelFileError TRUNCATED, BAD_MAGIC (no header), CORRUPT (bad JSON or offsets) or
 *   UNSUPPORTED_DTYPE (U8, BOOL, F8_*, ...); nothing is returned from a refused file.
 */
export function parseSafetensors(bytes: Uint8Array): TensorMap {
  if (bytes.byteLength < 8)
    throw new ModelFileError('TRUNCATED', `.safetensors: ${bytes.byteLength} bytes, the header length alone needs 8`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelFileError('BAD_MAGIC', `.safetensors: header length ${headerLength} is implausible; this is not a safetensors file`);
  }
  const dataStart = 8 + Number(headerLength);
  if (dataStart > bytes.byteLength) {
    throw new ModelFileError(
      'TRUNCATED',
      `.safetensors: the header says ${headerLength} bytes of JSON but the file has ${bytes.byteLength - 8} after the length`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (err) {
    throw new ModelFileError('BAD_MAGIC', `.safetensors: the header is not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new ModelFileError('CORRUPT', '.safetensors: the header is not a JSON object');
  const data = bytes.subarray(dataStart);
  const out = new Map<string, FileTensor>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw new ModelFileError('CORRUPT', `.safetensors: '${name}' is not a tensor entry`);
    if (typeof e.dtype !== 'string') throw new ModelFileError('CORRUPT', `.safetensors: '${name}' has no dtype`);
    if (!READ_DTYPES.includes(e.dtype)) {
      throw new ModelFileError(
        'UNSUPPORTED_DTYPE',
        `.safetensors: '${name}' has dtype ${e.dtype}; only ${READ_DTYPES.join(', ')} are read`,
      );
    }
    const dtype = e.dtype as FileDtype;
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      throw new ModelFileError('CORRUPT', `.safetensors: '${name}' has a bad shape`);
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new ModelFileError('CORRUPT', `.safetensors: '${name}' has bad data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    const count = elementCount(shape as number[]);
    if (end - begin !== count * DTYPE_BYTES[dtype]) {
      throw new ModelFileError(
        'CORRUPT',
        `.safetensors: '${name}' spans ${end - begin} bytes, shape [${shape.join(', ')}] of ${dtype} needs ${count * DTYPE_BYTES[dtype]}`,
      );
    }
    if (end > data.byteLength)
      throw new ModelFileError('TRUNCATED', `.safetensors: '${name}' ends at data byte ${end}, the file holds ${data.byteLength}`);
    out.set(name, { dtype, shape: shape as number[], data: decodeElements(data.subarray(begin, end), dtype, count) });
  }
  return out;
}

/** A tensor to write: the array type picks the dtype (F32, F64, I64, I32). */
export interface WritableTensor {
  /** Shape; `[]` for a scalar. Its product must equal `data.length`. */
  readonly shape: readonly number[];
  readonly data: Float32Array | Float64Array | BigInt64Array | Int32Array;
}

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** String key/value pairs stored as `__metadata__`. Default: none. */
  metadata?: Readonly<Record<string, string>>;
}

function dtypeOf(data: WritableTensor['data']): FileDtype {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Int32Array) return 'I32';
  throw new ArgumentError(`writeSafetensors: tensor data must be a Float32Array, Float64Array, BigInt64Array or Int32Array`);
}

/**
 * Serializes tensors as a safetensors file, readable by `safetensors.torch.load_file` (and by
 * {@link parseSafetensors}). Tensors are written in the order given.
 * @throws ArgumentError for a shape that does not match its data, or metadata that is not strings.
 */
export function writeSafetensors(
  tensors: ReadonlyMap<string, WritableTensor> | Readonly<Record<string, WritableTensor>>,
  options: WriteSafetensorsOptions = {},
): Uint8Array<ArrayBuffer> {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, WritableTensor>);
  const header: Record<string, unknown> = {};
  if (options.metadata) {
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') throw new ArgumentError(`writeSafetensors: metadata '${k}' must be a string, got ${typeof v}`);
    }
    header['__metadata__'] = { ...options.metadata };
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new ArgumentError(`writeSafetensors: '__metadata__' is reserved and cannot name a tensor`);
    const dtype = dtypeOf(t.data);
    if (
      !Array.isArray(t.shape) ||
      !t.shape.every((d: number) => Number.isInteger(d) && d >= 0) ||
      elementCount(t.shape) !== t.data.length
    ) {
      throw new ArgumentError(`writeSafetensors: '${name}' has shape ${JSON.stringify(t.shape)} but ${t.data.length} values`);
    }
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the tensor bytes start 8-byte aligned, as the reference writer does.
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.byteLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const [, t] of entries) {
    // Typed arrays are little-endian on every platform WebGPU runs on; write through DataView anyway.
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (littleEndian) out.set(bytes, at);
    else writeLittleEndian(view, at, t.data);
    at += t.data.byteLength;
  }
  return out;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function writeLittleEndian(view: DataView, at: number, data: WritableTensor['data']): void {
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float32Array) view.setFloat32(at + i * 4, data[i] ?? 0, true);
    else if (data instanceof Float64Array) view.setFloat64(at + i * 8, data[i] ?? 0, true);
    else if (data instanceof Int32Array) view.setInt32(at + i * 4, data[i] ?? 0, true);
    else view.setBigInt64(at + i * 8, data[i] ?? 0n, true);
  }
}

/**
 * A BatchNorm state dict as safetensors tensors named `${prefix}weight`, ... with PyTorch's dtypes
 * (float32 vectors, int64 scalar `num_batches_tracked`), for {@link writeSafetensors}.
 * @param prefix key prefix such as `'layer1.0.bn1.'`. Default `''`.
 */
export function stateDictTensors(sd: StateDict, prefix = ''): Map<string, WritableTensor> {
  const out = new Map<string, WritableTensor>();
  for (const key of ['weight', 'bias', 'running_mean', 'running_var'] as const) {
    const v = sd[key];
    if (v) out.set(`${prefix}${key}`, { shape: [v.length], data: v });
  }
  if (sd.num_batches_tracked !== undefined) {
    out.set(`${prefix}num_batches_tracked`, { shape: [], data: new BigInt64Array([BigInt(sd.num_batches_tracked)]) });
  }
  return out;
}
