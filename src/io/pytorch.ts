/**
 * PyTorch checkpoints written by `torch.save(obj, f)` since PyTorch 1.6: a zip archive holding
 * `<archive>/data.pkl` (the pickled object, storages as persistent ids) and `<archive>/data/<key>`
 * (each storage's raw little-endian bytes). Reference: `torch/serialization.py` (`_save`,
 * `_load`, `_is_zipfile`).
 */
import { ModelFileError } from '../errors.js';
import { DTYPE_BYTES, decodeElements, decodedBytes, type FileDtype, type FileTensor, type TensorMap } from './file-tensor.js';
import { ByteBudget, checkEntries, checkedCount, MAX_DEPTH, resolveLimits, type ReadLimits } from './limits.js';
import { unpickle, type PickleDict, type PickleValue, type TensorRef } from './pickle.js';
import { readZipDirectory, zipEntryData, type ZipEntry } from './zip.js';

/** The legacy format starts with a pickled magic number: PROTO 2, LONG1 0x1950a86a20f9469cfc6c. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return magic.every((b, i) => bytes[i] === b);
}

/** True when `bytes` start like a raw pickle of protocol 2 to 5 (the legacy format is one). */
export function startsLikePickle(bytes: Uint8Array): boolean {
  return bytes[0] === 0x80 && (bytes[1] ?? 0) >= 2 && (bytes[1] ?? 0) <= 5;
}

/**
 * Reads the tensors of a `torch.save` checkpoint. A state dict gives its own keys
 * (`layer1.0.bn1.running_mean`); nested dicts (`{'model': state_dict, 'epoch': 3}`) give dotted keys
 * (`model.layer1.0.bn1.running_mean`); values that are not tensors (epochs, `_metadata`) are skipped.
 * Tensors that view one storage contiguously share its decoded values (subarrays, not copies).
 * @param options read limits: `maxBytes` (inflated entries + decoded tensors, default 2 GiB),
 *   `maxPickleBytes` (data.pkl, default 64 MiB), `maxEntries` (tensor names, default 1,000,000).
 * @throws ModelFileError LEGACY_FORMAT for pre-1.6 files, BAD_MAGIC for anything that is not a
 *   zip, TRUNCATED/CORRUPT for damaged archives, LIMIT, TOO_DEEP, CYCLE, BAD_SHAPE, and the pickle
 *   errors of {@link unpickle}.
 */
export function parsePyTorch(bytes: Uint8Array, options: ReadLimits = {}): TensorMap {
  const limits = resolveLimits(options);
  if (startsWith(bytes, LEGACY_MAGIC)) {
    throw new ModelFileError(
      'LEGACY_FORMAT',
      ".pt: this is PyTorch's legacy (pre-1.6, non-zip) serialization, which is not read; re-save it with torch.save(obj, f) from PyTorch ≥ 1.6 (the default since then)",
    );
  }
  const entries = readZipDirectory(bytes, '.pt');
  // Only the pickle and the storages it names are ever inflated: other entries (version,
  // byteorder, anything added by hand) cost nothing.
  const pickles = entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pickles.length === 0)
    throw new ModelFileError('CORRUPT', '.pt: the zip archive has no <archive>/data.pkl; it was not written by torch.save');
  if (pickles.length > 1)
    throw new ModelFileError(
      'CORRUPT',
      `.pt: the zip archive has ${pickles.length} data.pkl entries; which one torch would read is ambiguous`,
    );
  const pickleEntry = pickles[0] as ZipEntry;
  if (pickleEntry.size > limits.maxPickleBytes) {
    throw new ModelFileError(
      'LIMIT',
      `.pt: ${pickleEntry.name} declares ${pickleEntry.size} bytes, over the maxPickleBytes limit of ${limits.maxPickleBytes} (a state dict's pickle is a few bytes per tensor); pass a larger { maxPickleBytes } to read it`,
    );
  }
  const budget = new ByteBudget(limits.maxBytes, '.pt');
  const root = pickleEntry.name.slice(0, -'data.pkl'.length);
  const storageEntries = new Map<string, ZipEntry>();
  for (const e of entries) {
    if (!e.name.startsWith(`${root}data/`)) continue;
    if (storageEntries.has(e.name)) throw new ModelFileError('CORRUPT', `.pt: the zip archive holds '${e.name}' twice`);
    storageEntries.set(e.name, e);
  }
  const value = unpickle(zipEntryData(bytes, pickleEntry, budget, '.pt'), budget);
  if (!isDict(value)) throw new ModelFileError('CORRUPT', '.pt: the checkpoint is not a dict of tensors (a state_dict)');
  const { total, counts } = countTensorPaths(value);
  checkEntries(total, limits.maxEntries, '.pt', 'the number of tensor names (one per path through nested dicts)');

  const storages = new Map<string, { dtype: FileDtype; numel: number; data: FileTensor['data'] }>();
  const tensors = new Map<TensorRef, FileTensor>();
  const storageData = (t: TensorRef, name: string): FileTensor['data'] => {
    const key = t.storage.key;
    const dtype = t.storage.type.dtype;
    const known = storages.get(key);
    if (known) {
      if (known.dtype !== dtype || known.numel !== t.storage.numel) {
        throw new ModelFileError(
          'CORRUPT',
          `.pt: storage ${key} is named as ${known.dtype}[${known.numel}] and as ${String(dtype)}[${t.storage.numel}]`,
        );
      }
      return known.data;
    }
    if (dtype === null) throw new ModelFileError('UNSUPPORTED_DTYPE', `.pt: '${name}' has an unsupported dtype (${t.storage.type.name})`);
    if (!Number.isSafeInteger(t.storage.numel) || t.storage.numel < 0) {
      throw new ModelFileError('BAD_SHAPE', `.pt: storage ${key} of '${name}' has ${t.storage.numel} elements`);
    }
    const entry = storageEntries.get(`${root}data/${key}`);
    if (!entry) throw new ModelFileError('CORRUPT', `.pt: '${name}' refers to storage ${key}, which the archive does not hold`);
    const storageBytes = t.storage.numel * DTYPE_BYTES[dtype];
    if (entry.size < storageBytes) {
      throw new ModelFileError(
        'TRUNCATED',
        `.pt: storage ${key} of '${name}' has ${entry.size} bytes, its ${t.storage.numel} elements need ${storageBytes}`,
      );
    }
    const raw = zipEntryData(bytes, entry, budget, '.pt');
    budget.charge(t.storage.numel * decodedBytes(dtype), `decoding storage ${key}`);
    const decoded = decodeElements(raw.subarray(0, storageBytes), dtype, t.storage.numel);
    storages.set(key, { dtype, numel: t.storage.numel, data: decoded });
    return decoded;
  };
  const materialize = (t: TensorRef, name: string): FileTensor => {
    const known = tensors.get(t);
    if (known) return known;
    const made = view(t, storageData(t, name), budget, name);
    tensors.set(t, made);
    return made;
  };

  const out = new Map<string, FileTensor>();
  // Depth and cycles were checked by countTensorPaths; the walk is iterative all the same, and
  // enters only dicts that name a tensor, so it does as many steps as there are names (bounded by
  // maxEntries above): a DAG of empty dicts reached 2^60 ways costs nothing.
  const pending: [PickleValue, string][] = [[value, '']];
  while (pending.length > 0) {
    const [v, prefix] = pending.pop() as [PickleValue, string];
    if (isTensor(v)) out.set(prefix, materialize(v, prefix));
    else if (isDict(v)) {
      const children = [...v.entries].reverse();
      for (const [k, child] of children) {
        if (isTensor(child) || (isDict(child) && (counts.get(child) ?? 0n) > 0n)) {
          pending.push([child, prefix ? `${prefix}.${String(k)}` : String(k)]);
        }
      }
    }
  }
  return out;
}

/** A dict or a list/tuple of the unpickled value. */
type PickleContainer = PickleDict | readonly PickleValue[];

/**
 * How many tensor names the dict yields: one per path from the root through dicts to a tensor.
 * Each container is visited once (memoized), so a DAG that reaches one dict 2^60 ways costs its
 * size, not 2^60. Lists and tuples are walked too (for depth and cycles) though their tensors are
 * not named. Iterative, so no nesting depth can overflow the JS stack.
 * Returns the root's count and every container's.
 * @throws ModelFileError TOO_DEEP past {@link MAX_DEPTH} nested containers, CYCLE for a container inside itself.
 */
function countTensorPaths(root: PickleDict): { total: bigint; counts: ReadonlyMap<PickleContainer, bigint> } {
  const counts = new Map<PickleContainer, bigint>();
  const onPath = new Set<PickleContainer>();
  const stack: { container: PickleContainer; children: readonly PickleValue[]; next: number; sum: bigint; named: boolean }[] = [];
  const enter = (container: PickleContainer): void => {
    if (stack.length >= MAX_DEPTH) {
      throw new ModelFileError(
        'TOO_DEEP',
        `.pt: containers nest deeper than ${MAX_DEPTH} levels, which no state dict does (torch.save itself stops at Python's recursion limit)`,
      );
    }
    onPath.add(container);
    const dict = isDict(container as PickleValue);
    const children = dict ? [...(container as PickleDict).entries.values()] : (container as readonly PickleValue[]);
    stack.push({ container, children, next: 0, sum: 0n, named: dict });
  };
  enter(root);
  let result = 0n;
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as (typeof stack)[number];
    if (frame.next < frame.children.length) {
      const child = frame.children[frame.next++] as PickleValue;
      if (isTensor(child)) {
        if (frame.named) frame.sum += 1n;
      } else if (isDict(child) || Array.isArray(child)) {
        const c = child as PickleContainer;
        const known = counts.get(c);
        if (known !== undefined) {
          if (frame.named) frame.sum += known;
        } else if (onPath.has(c)) {
          throw new ModelFileError(
            'CYCLE',
            `.pt: a ${isDict(child) ? 'dict' : 'list'} contains itself (at nesting level ${stack.length}); a state dict is a tree`,
          );
        } else enter(c);
      }
      continue;
    }
    stack.pop();
    onPath.delete(frame.container);
    // A list's tensors get no names, and neither do the tensors below it.
    const sum = frame.named ? frame.sum : 0n;
    counts.set(frame.container, sum);
    const parent = stack[stack.length - 1];
    if (parent) {
      if (parent.named) parent.sum += sum;
    } else result = sum;
  }
  return { total: result, counts };
}

/**
 * The tensor a `_rebuild_tensor_v2` describes, from its decoded storage: a subarray when the view
 * is contiguous (row-major strides), else gathered into row-major order (charged to the budget).
 */
function view(t: TensorRef, storage: FileTensor['data'], budget: ByteBudget, name: string): FileTensor {
  const dtype = t.storage.type.dtype as FileDtype;
  const where = `.pt: '${name}' (shape [${t.shape.join(', ')}], stride [${t.stride.join(', ')}], offset ${t.offset})`;
  const count = checkedCount(t.shape, where);
  if (t.offset < 0 || !Number.isSafeInteger(t.offset) || t.stride.some((s) => s < 0)) {
    throw new ModelFileError('BAD_SHAPE', `${where}: strides and the offset must be non-negative`);
  }
  let last = t.offset;
  for (let d = 0; d < t.shape.length; d++) {
    const size = t.shape[d] as number;
    last += size > 0 ? (size - 1) * (t.stride[d] as number) : 0;
  }
  if (count === 0) return { dtype, shape: t.shape, data: storage.subarray(0, 0) };
  if (!Number.isSafeInteger(last) || last >= t.storage.numel) {
    throw new ModelFileError('BAD_SHAPE', `${where} reaches past its ${t.storage.numel}-element storage`);
  }
  let contiguous = true;
  for (let d = t.shape.length - 1, expect = 1; d >= 0; d--) {
    const size = t.shape[d] as number;
    if (size !== 1 && t.stride[d] !== expect) contiguous = false;
    expect *= size;
  }
  if (contiguous) return { dtype, shape: t.shape, data: storage.subarray(t.offset, t.offset + count) };
  // Stride 0 (expand) can describe 2^30 elements with one stored float: charged before allocating.
  budget.charge(count * decodedBytes(dtype), `gathering the strided view '${name}' (${count} elements)`);
  const data =
    storage instanceof Float32Array
      ? new Float32Array(count)
      : storage instanceof BigInt64Array
        ? new BigInt64Array(count)
        : new Int32Array(count);
  const rank = t.shape.length;
  for (let i = 0; i < count; i++) {
    let rest = i;
    let at = t.offset;
    for (let d = rank - 1; d >= 0; d--) {
      const size = t.shape[d] as number;
      at += (rest % size) * (t.stride[d] as number);
      rest = Math.floor(rest / size);
    }
    (data as Float32Array)[i] = (storage as Float32Array)[at] as number;
  }
  return { dtype, shape: t.shape, data };
}

function isTensor(v: PickleValue): v is TensorRef {
  return (
    typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && (v as { kind?: string }).kind === 'tensor'
  );
}

function isDict(v: PickleValue): v is PickleDict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && (v as { kind?: string }).kind === 'dict';
}
