/**
 * PyTorch checkpoints written by `torch.save(obj, f)` since PyTorch 1.6: a zip archive holding
 * `<archive>/data.pkl` (the pickled object, storages as persistent ids) and `<archive>/data/<key>`
 * (each storage's raw little-endian bytes). Reference: `torch/serialization.py` (`_save`,
 * `_load`, `_is_zipfile`).
 */
import { unzipSync } from 'fflate';
import { ModelFileError } from '../errors.js';
import { DTYPE_BYTES, decodeElements, elementCount, type FileTensor, type TensorMap } from './file-tensor.js';
import { unpickle, type PickleDict, type PickleValue, type TensorRef } from './pickle.js';

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
/** The legacy format starts with a pickled magic number: PROTO 2, LONG1 0x1950a86a20f9469cfc6c. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return magic.every((b, i) => bytes[i] === b);
}

/** True when `bytes` look like a zip-format PyTorch checkpoint (or any zip). */
export function isZip(bytes: Uint8Array): boolean {
  return startsWith(bytes, ZIP_MAGIC);
}

/**
 * Reads the tensors of a `torch.save` checkpoint. A state dict gives its own keys
 * (`layer1.0.bn1.running_mean`); nested dicts (`{'model': state_dict, 'epoch': 3}`) give dotted keys
 * (`model.layer1.0.bn1.running_mean`); values that are not tensors (epochs, `_metadata`) are skipped.
 * @throws ModelFileError LEGACY_FORMAT for pre-1.6 files, BAD_MAGIC for anything that is not a
 *   zip, TRUNCATED/CORRUPT for damaged archives, and the pickle errors of {@link unpickle}.
 */
export function parsePyTorch(bytes: Uint8Array): TensorMap {
  if (startsWith(bytes, LEGACY_MAGIC)) {
    throw new ModelFileError(
      'LEGACY_FORMAT',
      ".pt: this is PyTorch's legacy (pre-1.6, non-zip) serialization, which is not read; re-save it with torch.save(obj, f) from PyTorch ≥ 1.6 (the default since then)",
    );
  }
  if (!isZip(bytes)) {
    throw new ModelFileError('BAD_MAGIC', `.pt: not a zip archive (expected bytes 50 4b 03 04, got ${hex(bytes.subarray(0, 4))})`);
  }
  let files: Record<string, Uint8Array>;
  try {
    // Only the pickle and the storages are extracted: other entries (version, byteorder, anything
    // added by hand) are never decompressed, so they cannot cost memory.
    files = unzipSync(bytes, { filter: (f) => /^[^/]+\/(data\.pkl|data\/[^/]+)$/.test(f.name) });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new ModelFileError(
      /unexpected EOF|invalid zip/i.test(message) ? 'TRUNCATED' : 'CORRUPT',
      `.pt: the zip archive cannot be read (${message}); is the file complete?`,
    );
  }
  const pickleName = Object.keys(files).find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pickleName) throw new ModelFileError('CORRUPT', '.pt: the zip archive has no <archive>/data.pkl; it was not written by torch.save');
  const root = pickleName.slice(0, -'data.pkl'.length);
  const pickle = files[pickleName] ?? new Uint8Array();
  const value = unpickle(pickle);

  const out = new Map<string, FileTensor>();
  const visit = (v: PickleValue, prefix: string): void => {
    if (isTensor(v)) {
      out.set(prefix, materialize(v, files, root, prefix));
      return;
    }
    if (isDict(v)) for (const [k, child] of v.entries) visit(child, prefix ? `${prefix}.${String(k)}` : String(k));
  };
  if (!isDict(value)) throw new ModelFileError('CORRUPT', '.pt: the checkpoint is not a dict of tensors (a state_dict)');
  visit(value, '');
  return out;
}

function materialize(t: TensorRef, files: Record<string, Uint8Array>, root: string, name: string): FileTensor {
  const dtype = t.storage.type.dtype;
  if (dtype === null) throw new ModelFileError('UNSUPPORTED_DTYPE', `.pt: '${name}' has an unsupported dtype (${t.storage.type.name})`);
  const data = files[`${root}data/${t.storage.key}`];
  if (!data) throw new ModelFileError('CORRUPT', `.pt: '${name}' refers to storage ${t.storage.key}, which the archive does not hold`);
  const storageBytes = t.storage.numel * DTYPE_BYTES[dtype];
  if (data.byteLength < storageBytes) {
    throw new ModelFileError(
      'TRUNCATED',
      `.pt: storage ${t.storage.key} of '${name}' has ${data.byteLength} bytes, its ${t.storage.numel} elements need ${storageBytes}`,
    );
  }
  const count = elementCount(t.shape);
  const rank = t.shape.length;
  // The view's last element must lie inside the storage; checked before allocating `count` values.
  const last = t.shape.reduce((at, size, d) => at + (size > 0 ? (size - 1) * (t.stride[d] ?? 0) : 0), t.offset);
  if (count > 0 && (t.offset < 0 || t.stride.some((s) => s < 0) || last >= t.storage.numel)) {
    throw new ModelFileError(
      'CORRUPT',
      `.pt: '${name}' (shape [${t.shape.join(', ')}], stride [${t.stride.join(', ')}], offset ${t.offset}) reaches past its ${t.storage.numel}-element storage`,
    );
  }
  // A saved tensor may be a strided view of its storage; gather it into row-major order.
  const index = (i: number): number => {
    let rest = i;
    let at = t.offset;
    for (let d = rank - 1; d >= 0; d--) {
      const size = t.shape[d] ?? 1;
      at += (rest % size) * (t.stride[d] ?? 0);
      rest = Math.floor(rest / size);
    }
    return at;
  };
  return { dtype, shape: t.shape, data: decodeElements(data.subarray(0, storageBytes), dtype, count, index) };
}

function isTensor(v: PickleValue): v is TensorRef {
  return (
    typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && (v as { kind?: string }).kind === 'tensor'
  );
}

function isDict(v: PickleValue): v is PickleDict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && (v as { kind?: string }).kind === 'dict';
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ') || '(empty file)';
}
