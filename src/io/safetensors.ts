/**
 * safetensors (https://github.com/huggingface/safetensors, "Format" in its README): an 8-byte
 * little-endian header length N, N bytes of JSON `{ name: { dtype, shape, data_offsets: [begin,
 * end] }, "__metadata__"?: { string: string } }`, then the little-endian tensor bytes, offsets
 * relative to the end of the header. No code, no pickle: the safe format to hand weights around.
 */
import { ArgumentError, ModelFileError } from '../errors.js';
import type { StateDict } from '../batch-norm/state-dict.js';
import { DTYPE_BYTES, decodeElements, decodedBytes, elementCount, type FileDtype, type FileTensor, type TensorMap } from './file-tensor.js';
import { ByteBudget, checkEntries, checkedCount, resolveLimits, type ReadLimits } from './limits.js';

const READ_DTYPES: readonly string[] = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32'];
/** Largest header the reader accepts (the reference implementation's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
/** Space, tab, line feed, carriage return. */
const JSON_WHITESPACE: readonly number[] = [0x20, 0x09, 0x0a, 0x0d];

function headerLength(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

/**
 * True when `bytes` start like a safetensors file: a header length no larger than the reference
 * limit and `{` right after it. A file cut short inside its header still starts like one.
 */
export function startsLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 9) return false;
  const n = headerLength(bytes);
  return n >= 2n && n <= BigInt(MAX_HEADER_BYTES) && bytes[8] === OPEN_BRACE;
}

/**
 * True when `bytes` are a whole safetensors file by structure: the 8-byte little-endian header
 * length fits in the file, the header starts with `{` and ends with `}` (then only the whitespace
 * writers pad with). Never decided by one byte: a header length of 384 starts with 0x80 like a pickle.
 */
export function isSafetensors(bytes: Uint8Array): boolean {
  if (!startsLikeSafetensors(bytes)) return false;
  const end = 8 + Number(headerLength(bytes));
  if (end > bytes.byteLength) return false;
  let last = end - 1;
  // Writers pad with spaces (the reference does); any JSON whitespace is accepted.
  while (last > 8 && JSON_WHITESPACE.includes(bytes[last] ?? 0)) last--;
  return bytes[last] === CLOSE_BRACE;
}

interface Entry {
  readonly name: string;
  readonly dtype: FileDtype;
  readonly shape: number[];
  readonly count: number;
  readonly begin: number;
  readonly end: number;
}

/**
 * Reads every tensor of a safetensors file. Floats (F64, F16, BF16) become float32; I64 stays exact.
 * Checked as the reference reader (`safetensors` `Metadata::validate`) checks, before any tensor
 * is decoded: offsets inside the data, sizes matching shapes, and entries that tile the data
 * exactly (no two sharing bytes, no byte between or after them).
 * @param options read limits: `maxBytes` bounds the decoded tensors (default 2 GiB), `maxEntries` the tensor count.
 * @throws ModelFileError TRUNCATED, BAD_MAGIC (no header), CORRUPT (bad JSON or sizes, data bytes
 *   that belong to no tensor), BAD_SHAPE,
 *   OVERLAP (entries sharing bytes), LIMIT or UNSUPPORTED_DTYPE (U8, BOOL, F8_*, ...); nothing is
 *   returned from a refused file.
 */
export function parseSafetensors(bytes: Uint8Array, options: ReadLimits = {}): TensorMap {
  const limits = resolveLimits(options);
  if (bytes.byteLength < 8)
    throw new ModelFileError('TRUNCATED', `.safetensors: ${bytes.byteLength} bytes, the header length alone needs 8`);
  const n = headerLength(bytes);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelFileError('BAD_MAGIC', `.safetensors: header length ${n} is implausible; this is not a safetensors file`);
  }
  const dataStart = 8 + Number(n);
  if (dataStart > bytes.byteLength) {
    throw new ModelFileError(
      'TRUNCATED',
      `.safetensors: the header says ${n} bytes of JSON but the file has ${bytes.byteLength - 8} after the length`,
    );
  }
  if (bytes[8] !== OPEN_BRACE) {
    throw new ModelFileError('BAD_MAGIC', `.safetensors: the header does not start with '{'; this is not a safetensors file`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (err) {
    throw new ModelFileError('CORRUPT', `.safetensors: the header is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new ModelFileError('CORRUPT', '.safetensors: the header is not a JSON object');
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  checkEntries(names.length, limits.maxEntries, '.safetensors', 'the number of tensors');
  const data = bytes.subarray(dataStart);
  const entries: Entry[] = [];
  for (const name of names) {
    const e = (header as Record<string, unknown>)[name] as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
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
    if (!Array.isArray(shape)) throw new ModelFileError('BAD_SHAPE', `.safetensors: '${name}' has no shape list`);
    const count = checkedCount(shape, `.safetensors: '${name}'`);
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new ModelFileError('CORRUPT', `.safetensors: '${name}' has bad data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    const needed = count * DTYPE_BYTES[dtype];
    if (end < begin || end - begin !== needed) {
      throw new ModelFileError(
        'CORRUPT',
        `.safetensors: '${name}' spans ${end - begin} bytes, shape [${shape.join(', ')}] of ${dtype} needs ${needed}`,
      );
    }
    if (end > data.byteLength)
      throw new ModelFileError('TRUNCATED', `.safetensors: '${name}' ends at data byte ${end}, the file holds ${data.byteLength}`);
    entries.push({ name, dtype, shape: shape as number[], count, begin, end });
  }
  // The reference refuses entries that share bytes or leave bytes between them (InvalidOffset), and
  // data past the last entry (MetadataIncompleteBuffer): the entries tile the data exactly, so no
  // byte of the file is something else as well (the format's rule against polyglot files). Checked
  // before decoding any: 400 entries on the same 4 MiB would otherwise decode 400 copies.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let last: Entry | undefined;
  for (const cur of sorted) {
    if (cur.begin < covered && last) {
      throw new ModelFileError(
        'OVERLAP',
        `.safetensors: '${cur.name}' (data bytes ${cur.begin}..${cur.end}) overlaps '${last.name}' (${last.begin}..${last.end})`,
      );
    }
    if (cur.begin > covered) {
      throw new ModelFileError(
        'CORRUPT',
        `.safetensors: data bytes ${covered}..${cur.begin} (before '${cur.name}') belong to no tensor; the entries must cover the data without gaps`,
      );
    }
    covered = cur.end;
    last = cur;
  }
  if (covered !== data.byteLength) {
    throw new ModelFileError(
      'CORRUPT',
      `.safetensors: data bytes ${covered}..${data.byteLength} (after the last tensor) belong to no tensor; the data must end where the last tensor does`,
    );
  }
  const budget = new ByteBudget(limits.maxBytes, '.safetensors');
  for (const e of entries) budget.charge(e.count * decodedBytes(e.dtype), `tensor '${e.name}'`);
  const out = new Map<string, FileTensor>();
  for (const e of entries)
    out.set(e.name, { dtype: e.dtype, shape: e.shape, data: decodeElements(data.subarray(e.begin, e.end), e.dtype, e.count) });
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
