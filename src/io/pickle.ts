/**
 * A minimal, allowlist-only reader for the Python pickles inside `torch.save` checkpoints.
 *
 * Unpickling in Python is code execution: GLOBAL names any callable and REDUCE calls it. Here no
 * Python name is ever resolved to code. The reader knows exactly the globals that a state dict
 * uses — `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` and
 * the typed storage classes (`torch.FloatStorage`, ...) — and builds plain data for them. Any other
 * global (`os.system`, `builtins.eval`, `subprocess.Popen`, ...) is refused the moment its name is
 * read, and so is every opcode outside the subset below (object construction such as INST, OBJ,
 * NEWOBJ, extension registries, text persistent ids). Nothing is returned from a refused pickle.
 *
 * Opcodes: the protocol-2 set `torch.save` writes (PROTO, GLOBAL, BINPERSID, REDUCE, BUILD, MARK,
 * TUPLE*, EMPTY_*, SETITEM(S), BIN(UNI)CODE, BININT*, LONG1, NEWTRUE/FALSE, NONE, BINGET/PUT, ...)
 * plus the protocol-4 framing ones (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL). Reference:
 * CPython `Lib/pickletools.py` (opcode table) and `torch/serialization.py` (`_save`, `_load`).
 */
import { ModelFileError } from '../errors.js';
import type { FileDtype } from './file-tensor.js';
import { ByteBudget, DEFAULT_MAX_BYTES } from './limits.js';

/** A storage class named in the pickle: its dtype, or null for dtypes this library does not read. */
export interface StorageType {
  readonly kind: 'storage-type';
  readonly name: string;
  readonly dtype: FileDtype | null;
}

/** A persistent reference to `archive/data/<key>` (what BINPERSID yields for a storage). */
export interface StorageRef {
  readonly kind: 'storage';
  readonly type: StorageType;
  readonly key: string;
  /** Elements in the storage. */
  readonly numel: number;
}

/** What `_rebuild_tensor_v2(storage, offset, size, stride, ...)` describes: a strided view. */
export interface TensorRef {
  readonly kind: 'tensor';
  readonly storage: StorageRef;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly stride: readonly number[];
}

/** A Python dict (or OrderedDict): keys kept in insertion order. */
export interface PickleDict {
  readonly kind: 'dict';
  readonly entries: Map<string | number, PickleValue>;
}

/** Everything the reader can produce. Tuples and lists are arrays. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly PickleValue[]
  | PickleDict
  | StorageRef
  | TensorRef
  | StorageType
  | AllowedCallable;

/** A callable from the allowlist; REDUCE on it builds data, never runs Python. */
interface AllowedCallable {
  readonly kind: 'callable';
  readonly name: string;
  readonly build: (args: readonly PickleValue[]) => PickleValue;
}

const STORAGE_DTYPES: Readonly<Record<string, FileDtype | null>> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  // Real storage classes whose dtypes cannot become float32 or an exact integer here: allowed as
  // names so the error can say "unsupported dtype" instead of "forbidden global".
  ByteStorage: null,
  CharStorage: null,
  ShortStorage: null,
  BoolStorage: null,
  ComplexFloatStorage: null,
  ComplexDoubleStorage: null,
};

const MARK = Symbol('mark');
type StackItem = PickleValue | typeof MARK;

function isDict(v: StackItem): v is PickleDict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && (v as { kind?: string }).kind === 'dict';
}

function corrupt(message: string): ModelFileError {
  return new ModelFileError('CORRUPT', `pickle: ${message}`);
}

function intArg(v: PickleValue | undefined, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw corrupt(`${what} must be an integer, got ${typeof v}`);
}

function intTuple(v: PickleValue | undefined, what: string): number[] {
  if (!Array.isArray(v)) throw corrupt(`${what} must be a tuple of integers`);
  return (v as readonly PickleValue[]).map((e, i) => intArg(e, `${what}[${i}]`));
}

function rebuildTensor(args: readonly PickleValue[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (typeof storage !== 'object' || storage === null || (storage as { kind?: string }).kind !== 'storage') {
    throw corrupt('_rebuild_tensor_v2 expects a storage as its first argument');
  }
  const shape = intTuple(size, 'tensor size');
  const strides = intTuple(stride, 'tensor stride');
  if (shape.length !== strides.length) throw corrupt(`tensor size has ${shape.length} dims but stride ${strides.length}`);
  return { kind: 'tensor', storage: storage as StorageRef, offset: intArg(offset, 'storage offset'), shape, stride: strides };
}

/** The allowlist: `module name` → what REDUCE builds from it (or the storage class it names). */
function resolveGlobal(module: string, name: string, at: number): PickleValue {
  const full = `${module}.${name}`;
  if (full === 'collections.OrderedDict') {
    return { kind: 'callable', name: full, build: () => ({ kind: 'dict', entries: new Map() }) };
  }
  if (full === 'torch._utils._rebuild_tensor_v2') return { kind: 'callable', name: full, build: rebuildTensor };
  if (full === 'torch._utils._rebuild_parameter') {
    // (data, requires_grad, backward_hooks): a Parameter is its tensor here.
    return {
      kind: 'callable',
      name: full,
      build: (args) => {
        const t = args[0];
        if (typeof t !== 'object' || t === null || (t as { kind?: string }).kind !== 'tensor')
          throw corrupt('_rebuild_parameter expects a tensor');
        return t as TensorRef;
      },
    };
  }
  if (module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name)) {
    return { kind: 'storage-type', name: full, dtype: STORAGE_DTYPES[name] ?? null };
  }
  throw new ModelFileError(
    'FORBIDDEN_GLOBAL',
    `pickle: global '${full}' at byte ${at} is not allowed; a state-dict pickle may only name collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and torch.<Type>Storage (nothing was loaded or run)`,
  );
}

/**
 * Reads a pickle into plain data. Throws {@link ModelFileError} (FORBIDDEN_GLOBAL,
 * UNSUPPORTED_OPCODE, UNSUPPORTED_DTYPE, TRUNCATED, CORRUPT or LIMIT) and returns nothing on
 * anything outside a state dict's vocabulary. Every value built is charged to `budget` (an
 * estimate of its size in memory: one byte of EMPTY_DICT builds a ~235-byte Map), so a small
 * pickle cannot build gigabytes of objects.
 */
export function unpickle(bytes: Uint8Array, budget: ByteBudget = new ByteBudget(DEFAULT_MAX_BYTES, 'pickle')): PickleValue {
  try {
    return run(bytes, budget);
  } catch (err) {
    if (err instanceof ModelFileError) throw err;
    // Invalid UTF-8, a RangeError from a malformed length: still a refused file, never a crash.
    throw corrupt(err instanceof Error ? err.message : String(err));
  }
}

/** Estimated bytes of what each value costs in memory (V8, measured: an empty dict ~235 with its Map, an array slot 8). */
const COST = { slot: 8, dict: 256, list: 48, item: 16, memo: 40, object: 96 } as const;

function run(bytes: Uint8Array, budget: ByteBudget): PickleValue {
  let cost = 0;
  // Charged in batches of 1 MiB: one call per opcode would dominate the loop.
  const use = (amount: number): void => {
    cost += amount;
    if (cost >= 2 ** 20) {
      budget.charge(cost, 'the values the pickle builds');
      cost = 0;
    }
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder('utf-8', { fatal: true });
  const stack: StackItem[] = [];
  const memo = new Map<number, PickleValue>();
  let pos = 0;

  const need = (n: number): number => {
    if (pos + n > bytes.byteLength) throw new ModelFileError('TRUNCATED', `pickle: ends at byte ${bytes.byteLength}, needs ${pos + n}`);
    const at = pos;
    pos += n;
    return at;
  };
  const pop = (): PickleValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) throw corrupt(`stack underflow at byte ${pos}`);
    return v;
  };
  const top = (): PickleValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw corrupt(`empty stack at byte ${pos}`);
    return v;
  };
  const popMark = (): PickleValue[] => {
    const m = stack.lastIndexOf(MARK);
    if (m < 0) throw corrupt(`no MARK before byte ${pos}`);
    const items = stack.splice(m) as StackItem[];
    return items.slice(1) as PickleValue[];
  };
  const readLine = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw new ModelFileError('TRUNCATED', 'pickle: unterminated GLOBAL name');
    const s = text.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const utf8 = (length: number): string => {
    const at = need(length);
    use(COST.item + length);
    return text.decode(bytes.subarray(at, at + length));
  };
  const setItems = (dict: PickleValue, items: PickleValue[]): void => {
    if (!isDict(dict)) throw corrupt(`SETITEM(S) on a non-dict at byte ${pos}`);
    for (let i = 0; i + 1 < items.length; i += 2) {
      const key = items[i];
      if (typeof key !== 'string' && typeof key !== 'number') throw corrupt(`dict key of type ${typeof key}`);
      use(COST.item);
      dict.entries.set(key, items[i + 1] ?? null);
    }
  };
  const setMemo = (index: number): void => {
    use(COST.memo);
    memo.set(index, top());
  };

  for (;;) {
    const opAt = need(1);
    const op = bytes[opAt] ?? 0;
    switch (op) {
      case 0x80: // PROTO
        if ((bytes[need(1)] ?? 0) > 5) throw corrupt('pickle protocol above 5');
        break;
      case 0x95: // FRAME: 8-byte length of the next frame; frames are only a read-ahead hint
        need(8);
        break;
      case 0x2e: {
        // STOP
        budget.charge(cost, 'the values the pickle builds');
        const result = pop();
        if (stack.length !== 0) throw corrupt('values left on the stack at STOP');
        return result;
      }
      case 0x28: // MARK
        use(COST.slot);
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        use(COST.dict);
        stack.push({ kind: 'dict', entries: new Map() });
        break;
      case 0x5d: // EMPTY_LIST
        use(COST.list);
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        use(COST.list);
        stack.push([]);
        break;
      case 0x74: // TUPLE
        use(COST.list);
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        use(COST.list);
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        use(COST.list);
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        use(COST.list);
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) throw corrupt('APPEND to a non-list');
        use(COST.slot);
        (list as PickleValue[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) throw corrupt('APPENDS to a non-list');
        use(COST.slot * items.length);
        // One push per item: spreading a million arguments would overflow the call stack.
        for (const item of items) (list as PickleValue[]).push(item);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x4e: // NONE
        use(COST.slot);
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        use(COST.slot);
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        use(COST.slot);
        stack.push(false);
        break;
      case 0x4b: // BININT1
        use(COST.slot);
        stack.push(bytes[need(1)] ?? 0);
        break;
      case 0x4d: // BININT2
        use(COST.slot);
        stack.push(view.getUint16(need(2), true));
        break;
      case 0x4a: // BININT
        use(COST.slot);
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x8a: {
        // LONG1: n-byte little-endian two's complement
        const n = bytes[need(1)] ?? 0;
        use(COST.item);
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i] ?? 0);
        if (n > 0 && ((bytes[at + n - 1] ?? 0) & 0x80) !== 0) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        use(COST.slot);
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(view.getUint32(need(4), true)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(bytes[need(1)] ?? 0));
        break;
      case 0x43: {
        // SHORT_BINBYTES
        const n = bytes[need(1)] ?? 0;
        const at = need(n);
        use(COST.object + n);
        stack.push(bytes.slice(at, at + n));
        break;
      }
      case 0x42: {
        // BINBYTES
        const n = view.getUint32(need(4), true);
        const at = need(n);
        use(COST.object + n);
        stack.push(bytes.slice(at, at + n));
        break;
      }
      case 0x71: // BINPUT
        setMemo(bytes[need(1)] ?? 0);
        break;
      case 0x72: // LONG_BINPUT
        setMemo(view.getUint32(need(4), true));
        break;
      case 0x94: // MEMOIZE
        setMemo(memo.size);
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const index = op === 0x68 ? (bytes[need(1)] ?? 0) : view.getUint32(need(4), true);
        if (!memo.has(index)) throw corrupt(`memo ${index} read before it was written`);
        use(COST.slot);
        stack.push(memo.get(index) ?? null);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = readLine();
        const name = readLine();
        use(COST.object);
        stack.push(resolveGlobal(module, name, opAt));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw corrupt('STACK_GLOBAL needs two strings');
        use(COST.object);
        stack.push(resolveGlobal(module, name, opAt));
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', storage_type, key, location, numel)
        const pid = pop();
        if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw corrupt('persistent id is not a storage tuple');
        const [, type, key, , numel] = pid as readonly PickleValue[];
        if (typeof type !== 'object' || type === null || (type as { kind?: string }).kind !== 'storage-type') {
          throw corrupt('persistent id names no storage class');
        }
        const storageType = type as StorageType;
        if (storageType.dtype === null) {
          throw new ModelFileError(
            'UNSUPPORTED_DTYPE',
            `pickle: storage '${String(key)}' is a ${storageType.name}; only float16/bfloat16/float32/float64/int32/int64 tensors are read`,
          );
        }
        if (typeof key !== 'string') throw corrupt('storage key is not a string');
        use(COST.object);
        stack.push({ kind: 'storage', type: storageType, key, numel: intArg(numel, 'storage numel') });
        break;
      }
      case 0x52: {
        // REDUCE: callable(*args), only for allowlisted callables
        const args = pop();
        const callable = pop();
        if (!Array.isArray(args)) throw corrupt('REDUCE arguments are not a tuple');
        if (typeof callable !== 'object' || callable === null || (callable as { kind?: string }).kind !== 'callable') {
          throw corrupt(`REDUCE at byte ${opAt} on something that is not an allowed callable`);
        }
        use(COST.dict);
        stack.push((callable as AllowedCallable).build(args as readonly PickleValue[]));
        break;
      }
      case 0x62: {
        // BUILD: torch sets `_metadata` on the state dict this way; only dict state on a dict passes.
        const state = pop();
        if (!isDict(top()) || !(state === null || isDict(state))) throw corrupt(`BUILD at byte ${opAt} on a non-dict`);
        break;
      }
      default:
        throw new ModelFileError(
          'UNSUPPORTED_OPCODE',
          `pickle: opcode 0x${op.toString(16).padStart(2, '0')} ('${String.fromCharCode(op)}') at byte ${opAt} is outside what torch.save state dicts use; nothing was loaded`,
        );
    }
  }
}
