import { optionKeys, optionsObject } from './arguments.js';
import { ArgumentError, ContextMismatchError, DestroyedError, DeviceLimitError, ShapeError, WebGPUUnavailableError } from './errors.js';
import { runGpuOp } from './gpu/dispatch.js';
import { requestBatchNormDevice } from './gpu/acquire.js';
import { FreeList } from './free-list.js';
import { DEFAULT_GPU_POOL_BYTES, roundUp } from './gpu/buffer-pool.js';
import { BUFFER_COPY_DST, BUFFER_COPY_SRC, BUFFER_STORAGE, TENSOR_USAGE } from './gpu/constants.js';
import { GpuRuntime } from './gpu/runtime.js';
import { Tensor, sameShapeAndLayout, shapeSize, type Layout, type TensorOwner } from './tensor.js';
import { decodeHalf, DTYPES, encodeHalf, isFloat16Array, isHalf, storageBytes, type DType, type HalfDType } from './dtype.js';

/** Which backend to run on. `'auto'` tries WebGPU and falls back to the CPU. */
export type BackendChoice = 'auto' | 'webgpu' | 'cpu';
/** The backend a context actually runs on. */
export type BackendName = 'webgpu' | 'cpu';

/** Options of {@link createContext}. */
export interface ContextOptions {
  /**
   * Default `'auto'`: WebGPU when a hardware adapter exists, else the CPU (no adapter, or only a
   * fallback adapter such as SwiftShader, on which the CPU backend is faster); `ctx.backend` says
   * which and `ctx.fallbackReason` why.
   */
  backend?: BackendChoice;
  /** Run on this device instead of requesting one. The context never destroys a device it was given. */
  device?: GPUDevice;
  /** Passed to `requestAdapter` when the library requests the device. Default: none. */
  powerPreference?: GPUPowerPreference;
  /**
   * Memory access pattern of the elementwise kernels. `'auto'` (default): `'contiguous'` on a
   * fallback adapter (a CPU implementation such as SwiftShader, where each invocation runs as a
   * loop), `'coalesced'` on real GPUs.
   */
  accessPattern?: 'auto' | 'coalesced' | 'contiguous';
  /**
   * Most bytes of freed tensor storage the context keeps for reuse (GPU buffers, readback staging,
   * or CPU arrays); past it the storage freed longest ago is released. Tensors in use never count
   * and are never touched. A non-negative integer; `0` keeps nothing. Default 256 MiB on WebGPU
   * ({@link DEFAULT_GPU_POOL_BYTES}), 64 MiB on the CPU ({@link DEFAULT_CPU_POOL_BYTES}).
   */
  poolBytes?: number;
}

/** The keys of {@link ContextOptions}; any other key is rejected. */
export const CONTEXT_OPTION_KEYS = optionKeys<ContextOptions>({
  backend: true,
  device: true,
  powerPreference: true,
  accessPattern: true,
  poolBytes: true,
});

/** Options of {@link BatchNormContext.tensor}. */
export interface TensorOptions<D extends DType = DType> {
  /** Memory order of `data`. Default `'channels_first'`. */
  layout?: Layout;
  /** Name used in error messages and GPU labels. Default `'tensor'`. */
  label?: string;
  /**
   * Element type of the storage. Default `'float32'`. `'float16'` / `'bfloat16'` store 16-bit
   * patterns: `data` given as a Uint16Array is taken as those bit patterns (a `Float16Array`, where
   * the runtime has one, as its float16 values), any other numbers are rounded to the dtype to
   * nearest, ties to even (torch's rounding). Batch norm reads and writes such tensors directly,
   * computing in float32 (WebGPU) / float64 (CPU); see the README's "Dtypes".
   */
  dtype?: D;
}

/** The keys of {@link TensorOptions}; any other key is rejected. */
export const TENSOR_OPTION_KEYS = optionKeys<TensorOptions>({ layout: true, label: true, dtype: true });

/** Options of {@link BatchNormContext.tensorFromBuffer}. */
export interface BufferTensorOptions<D extends DType = DType> extends TensorOptions<D> {
  /** Byte offset of element 0 in the buffer; a multiple of 4. Default 0. */
  byteOffset?: number;
}

/** The keys of {@link BufferTensorOptions}; any other key is rejected. */
export const BUFFER_TENSOR_OPTION_KEYS = optionKeys<BufferTensorOptions>({ layout: true, label: true, byteOffset: true, dtype: true });

/** Counters for leak and steady-state checks. */
export interface ContextStats {
  /** GPU buffers the context has created so far (0 on the CPU backend). */
  readonly buffersCreated: number;
  /** Pooled tensor buffers currently handed out. */
  readonly liveBuffers: number;
  /** Queue submissions made by the library. */
  readonly submits: number;
  /**
   * Bytes of freed tensor storage kept for reuse (GPU buffers and readback staging on WebGPU,
   * arrays on the CPU); never more than the context's {@link BatchNormContext.poolBytes}.
   */
  readonly pooledBytes: number;
  /**
   * Superseded buffers kept alive until `destroy()` because work recorded into a caller's encoder
   * may still reference them (see the README's lifetime rule). 0 on the CPU backend.
   */
  readonly keptBuffers: number;
  /** Bytes of {@link keptBuffers}. */
  readonly keptBytes: number;
}

let nextContextId = 1;

export { DEFAULT_GPU_POOL_BYTES };
/**
 * Default cap on freed CPU arrays kept for reuse: 64 MiB. Lower than on the GPU because a new
 * Float32Array costs only a zero-fill, and kept arrays share the JS heap with the application.
 */
export const DEFAULT_CPU_POOL_BYTES = 64 * 2 ** 20;

/**
 * Owns a backend: on WebGPU the device, buffers, pipelines and caches; on the CPU nothing but
 * tensors. Make one with {@link createContext}.
 */
export class BatchNormContext implements TensorOwner {
  /** The backend that actually runs: `'webgpu'` or `'cpu'`. */
  readonly backend: BackendName;
  /** @internal */
  readonly id: number;
  /** The GPUDevice in use, or null on the CPU backend. */
  readonly device: GPUDevice | null;
  /** The adapter's info when the library requested the device itself. */
  readonly adapterInfo: GPUAdapterInfo | null;
  /**
   * True when WebGPU runs on a fallback adapter: a software implementation such as SwiftShader,
   * where every kernel is a CPU loop (there the CPU backend is often faster, and benchmark numbers
   * are CPU emulation, not GPU). False on a hardware adapter, on the CPU backend, and when a
   * caller's device does not expose its adapter info.
   */
  get isFallbackAdapter(): boolean {
    return this.gpu?.isFallbackAdapter ?? false;
  }

  /** Why `'auto'` fell back to the CPU, or null. */
  readonly fallbackReason: string | null;
  /** @internal */
  readonly gpu: GpuRuntime | null;
  /** Most bytes of freed tensor storage kept for reuse ({@link ContextOptions.poolBytes}). */
  readonly poolBytes: number;
  #destroyed = false;
  /** Freed CPU arrays by type and length; evicted ones are simply dropped for the garbage collector. */
  readonly #cpuFree: FreeList<Float32Array | Uint16Array>;

  /** @internal use {@link createContext} */
  constructor(
    gpu: GpuRuntime | null,
    adapterInfo: GPUAdapterInfo | null,
    fallbackReason: string | null,
    cpuPoolBytes = DEFAULT_CPU_POOL_BYTES,
  ) {
    this.id = nextContextId++;
    this.gpu = gpu;
    this.poolBytes = gpu ? gpu.pool.capacityBytes : cpuPoolBytes;
    this.#cpuFree = new FreeList(
      gpu ? 0 : cpuPoolBytes,
      (a) => a.byteLength,
      () => {},
    );
    this.backend = gpu ? 'webgpu' : 'cpu';
    this.device = gpu ? gpu.device : null;
    this.adapterInfo = adapterInfo;
    this.fallbackReason = fallbackReason;
  }

  /** True after {@link destroy}. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** @internal throws if this context can no longer run work. */
  assertUsable(): void {
    if (this.#destroyed) throw new DestroyedError('the batch-norm context was used after destroy()');
    this.gpu?.assertHealthy();
  }

  /** @internal throws unless `t` is a live tensor of this context. */
  assertOwnTensor(t: Tensor, argument: string): void {
    if (!(t instanceof Tensor)) throw new ArgumentError(`${argument}: expected a Tensor made by ctx.tensor(), got ${describe(t)}`);
    if (t.owner !== this) {
      throw new ContextMismatchError(`${argument}: tensor '${t.label}' belongs to another context; create it with this context's tensor()`);
    }
    if (t.destroyed) throw new DestroyedError(`${argument}: tensor '${t.label}' was used after destroy()`);
  }

  /**
   * Copies `data` (in `layout` memory order) into a new tensor of logical shape `shape` (N, C, ...).
   * @throws ShapeError if `data.length` is not the product of `shape`, or `shape` is not a list of
   *   non-negative integers.
   */
  tensor<D extends DType = 'float32'>(data: TensorData, shape: readonly number[], options: TensorOptions<D> | null = {}): Tensor<D> {
    // The tensor's dtype is options.dtype (checked), or float32 when absent: D's own default.
    return this.#makeTensor(data, shape, options) as Tensor<D>;
  }

  #makeTensor(data: TensorData, shape: readonly number[], options: TensorOptions | null): Tensor {
    this.assertUsable();
    options = optionsObject<TensorOptions>(options, 'tensor options', TENSOR_OPTION_KEYS);
    const label = checkLabel(options.label);
    const size = checkShape(shape, label);
    const layout = checkLayout(options.layout, shape, label);
    const dtype = checkDType(options.dtype, label);
    if (this.gpu) this.#checkFits(size, label, dtype);
    checkTensorData(data, label);
    if (data.length !== size) {
      throw new ShapeError(`${label}: data has ${data.length} values but shape [${shape.join(', ')}] needs ${size}`);
    }
    if (isHalf(dtype)) {
      if (!this.gpu) {
        const copy = halfData(dtype, data, size, this.#takeHalf(size));
        return new Tensor(this, shape, layout, { kind: 'cpu-half', data: copy }, label, dtype);
      }
      const bits = halfData(dtype, data, size, new Uint16Array(size + (size % 2)));
      const buffer = this.#allocate(size, label, dtype);
      this.gpu.device.queue.writeBuffer(buffer, 0, bits.buffer, bits.byteOffset, storageBytes(size, dtype));
      return new Tensor(this, shape, layout, { kind: 'gpu', buffer, byteOffset: 0, owned: true }, label, dtype);
    }
    if (!this.gpu) {
      // From the pool like every CPU tensor, so a loop that makes its input each step reuses too.
      const copy = this.#takeFloat(size);
      copy.set(data);
      return new Tensor(this, shape, layout, { kind: 'cpu', data: copy }, label);
    }
    // Other typed arrays and array-likes (Uint8ClampedArray pixels, Float64Array) convert to float32.
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    const buffer = this.#allocate(size, label);
    this.gpu.device.queue.writeBuffer(buffer, 0, values.buffer, values.byteOffset, size * 4);
    return new Tensor(this, shape, layout, { kind: 'gpu', buffer, byteOffset: 0, owned: true }, label);
  }

  /**
   * Wraps your own GPUBuffer as a tensor without copying. The buffer must have STORAGE usage (and
   * COPY_SRC for `read()`), and room for the values rounded up to 16 bytes after `byteOffset`.
   * With `dtype: 'float16'` / `'bfloat16'` it holds 16-bit patterns, two per 4-byte word, element
   * 0 in the low half of the word at `byteOffset`; with an odd count the last word's high half is
   * padding, which the library's kernels leave as they found it. `destroy()` on the tensor never
   * destroys your buffer.
   */
  tensorFromBuffer<D extends DType = 'float32'>(
    buffer: GPUBuffer,
    shape: readonly number[],
    options: BufferTensorOptions<D> | null = {},
  ): Tensor<D> {
    // As in tensor(): the dtype is options.dtype (checked), or float32, D's own default.
    return this.#wrapBuffer(buffer, shape, options) as Tensor<D>;
  }

  #wrapBuffer(buffer: GPUBuffer, shape: readonly number[], options: BufferTensorOptions | null): Tensor {
    this.assertUsable();
    options = optionsObject<BufferTensorOptions>(options, 'tensorFromBuffer options', BUFFER_TENSOR_OPTION_KEYS);
    const label = checkLabel(options.label);
    if (!this.gpu) throw new WebGPUUnavailableError(`${label}: tensorFromBuffer needs the 'webgpu' backend; this context runs on 'cpu'`);
    if (buffer === null || typeof buffer !== 'object' || typeof buffer.usage !== 'number' || typeof buffer.size !== 'number') {
      throw new ArgumentError(`${label}: buffer must be a GPUBuffer, got ${describe(buffer)}`);
    }
    const size = checkShape(shape, label);
    const layout = checkLayout(options.layout, shape, label);
    const dtype = checkDType(options.dtype, label);
    const byteOffset = options.byteOffset ?? 0;
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 4 !== 0) {
      throw new ArgumentError(`${label}: byteOffset must be a non-negative multiple of 4, got ${byteOffset}`);
    }
    if ((buffer.usage & BUFFER_STORAGE) === 0) {
      throw new ArgumentError(
        `${label}: buffer '${buffer.label}' needs GPUBufferUsage.STORAGE, its usage is 0x${buffer.usage.toString(16)}`,
      );
    }
    const align = this.gpu.device.limits.minStorageBufferOffsetAlignment;
    const start = byteOffset - (byteOffset % align);
    const needed = start + roundUp(byteOffset - start + storageBytes(size, dtype), 16);
    if (needed > buffer.size) {
      throw new ArgumentError(
        `${label}: buffer '${buffer.label}' has ${buffer.size} bytes; shape [${shape.join(', ')}] at byteOffset ${byteOffset} needs ${needed} (values rounded up to 16 bytes)`,
      );
    }
    if (needed - start > this.gpu.maxTensorBytes) {
      throw new DeviceLimitError(
        `${label}: ${storageBytes(size, dtype)} bytes exceed the device's largest storage binding (${this.gpu.maxTensorBytes} bytes)`,
      );
    }
    return new Tensor(this, shape, layout, { kind: 'gpu', buffer, byteOffset, owned: false }, label, dtype);
  }

  /** @internal a new uninitialised tensor on this backend; its storage is pooled on both backends. */
  allocTensor<D extends DType = 'float32'>(shape: readonly number[], layout: Layout, label: string, dtype: D = 'float32' as D): Tensor<D> {
    const size = shapeSize(shape);
    if (!this.gpu) {
      if (isHalf(dtype)) return new Tensor(this, shape, layout, { kind: 'cpu-half', data: this.#takeHalf(size) }, label, dtype);
      return new Tensor(this, shape, layout, { kind: 'cpu', data: this.#takeFloat(size) }, label, dtype);
    }
    const buffer = this.#allocate(size, label, dtype);
    return new Tensor(this, shape, layout, { kind: 'gpu', buffer, byteOffset: 0, owned: true }, label, dtype);
  }

  /** A pooled CPU array for `size` float32 values. */
  #takeFloat(size: number): Float32Array {
    const kept = this.#cpuFree.take(String(size));
    return kept instanceof Float32Array ? kept : new Float32Array(size);
  }

  /** A pooled CPU array for `size` 16-bit patterns (float16 / bfloat16 tensors). */
  #takeHalf(size: number): Uint16Array {
    const kept = this.#cpuFree.take(`h${size}`);
    return kept instanceof Uint16Array ? kept : new Uint16Array(size);
  }

  #checkFits(size: number, label: string, dtype: DType = 'float32'): void {
    const gpu = this.gpu;
    if (!gpu) return;
    const bytes = roundUp(Math.max(storageBytes(size, dtype), 16), 16);
    if (bytes > gpu.maxTensorBytes) {
      throw new DeviceLimitError(
        `${label}: ${size} values (${storageBytes(size, dtype)} bytes) exceed this device's limit of ${gpu.maxTensorBytes} bytes per buffer binding (maxBufferSize ${gpu.device.limits.maxBufferSize}, maxStorageBufferBindingSize ${gpu.device.limits.maxStorageBufferBindingSize})`,
      );
    }
  }

  #allocate(size: number, label: string, dtype: DType = 'float32'): GPUBuffer {
    const gpu = this.gpu;
    if (!gpu) throw new Error('internal: allocate on the CPU backend');
    this.#checkFits(size, label, dtype);
    return gpu.pool.acquire(roundUp(Math.max(storageBytes(size, dtype), 16), 16), TENSOR_USAGE, `bn.tensor.${label}`);
  }

  /** @internal */
  async readTensor(t: Tensor): Promise<Float32Array> {
    const dtype = t.dtype;
    if (isHalf(dtype)) return decodeHalf(dtype, await this.readTensorBits(t));
    const values = await this.#readStorage(t);
    if (values instanceof Uint16Array) throw new Error('internal: float32 tensor with 16-bit storage');
    return values;
  }

  /** @internal */
  async readTensorBits(t: Tensor): Promise<Uint16Array> {
    if (!isHalf(t.dtype)) {
      throw new ArgumentError(`${t.label}.readBits: the tensor's dtype is 'float32', not a 16-bit one; use read()`);
    }
    const values = await this.#readStorage(t);
    if (values instanceof Uint16Array) return values;
    return new Uint16Array(values.buffer, values.byteOffset, t.size).slice();
  }

  /** The stored words of `t`: a copy of the CPU array, or the GPU bytes (whole words) as float32. */
  async #readStorage(t: Tensor): Promise<Float32Array | Uint16Array> {
    this.assertUsable();
    const s = t.storage;
    if (s.kind !== 'gpu') return s.data.slice();
    if (!this.gpu) throw new Error('internal: GPU tensor on a CPU context');
    if ((s.buffer.usage & BUFFER_COPY_SRC) === 0) {
      throw new ArgumentError(`${t.label}: read() needs GPUBufferUsage.COPY_SRC on buffer '${s.buffer.label}'`);
    }
    // Every error scope of earlier submits resolves first, so a failed write of `t` is known and
    // reported as itself, not as whatever the readback copy might run into.
    await this.gpu.errorsSettled();
    if (t.writeFailure) throw t.writeFailure;
    const values = await this.gpu.readFloats(s.buffer, s.byteOffset, storageBytes(t.size, t.dtype));
    if (t.writeFailure) throw t.writeFailure;
    return values;
  }

  /** @internal Implements {@link Tensor.write}: everything is checked before the write. */
  writeTensor(t: Tensor, data: unknown): void {
    this.assertUsable();
    const s = t.storage;
    checkTensorData(data, `${t.label}.write`);
    if (data.length !== t.size) {
      throw new ShapeError(`${t.label}.write: data has ${data.length} values, the tensor of shape [${t.shape.join(', ')}] holds ${t.size}`);
    }
    const dtype = t.dtype;
    if (isHalf(dtype)) {
      if (s.kind === 'gpu') checkUsage(s.buffer, BUFFER_COPY_DST, 'COPY_DST', `${t.label}.write`);
      if (s.kind === 'cpu-half') {
        halfData(dtype, data, t.size, s.data);
      } else if (s.kind === 'cpu') {
        throw new Error('internal: half tensor with float32 storage');
      } else {
        if (!this.gpu) throw new Error('internal: GPU tensor on a CPU context');
        const bits = halfData(dtype, data, t.size, new Uint16Array(t.size + (t.size % 2)));
        this.gpu.device.queue.writeBuffer(s.buffer, s.byteOffset, bits.buffer, bits.byteOffset, storageBytes(t.size, dtype));
      }
    } else if (s.kind === 'cpu') {
      s.data.set(data);
    } else if (s.kind === 'cpu-half') {
      throw new Error('internal: float32 tensor with 16-bit storage');
    } else {
      if (!this.gpu) throw new Error('internal: GPU tensor on a CPU context');
      checkUsage(s.buffer, BUFFER_COPY_DST, 'COPY_DST', `${t.label}.write`);
      const values = data instanceof Float32Array ? data : Float32Array.from(data);
      // Queue order: the values are in place for every command buffer submitted after this call.
      this.gpu.device.queue.writeBuffer(s.buffer, s.byteOffset, values.buffer, values.byteOffset, t.size * 4);
    }
    t.noteWrite(0);
  }

  /** @internal Implements {@link Tensor.writeFrom}: everything is checked before the copy. */
  copyTensor(dst: Tensor, src: Tensor): void {
    this.assertUsable();
    const who = `${dst.label}.writeFrom`;
    this.assertOwnTensor(src, `${who} source`);
    const d = dst.storage;
    const s = src.storage;
    if (!sameShapeAndLayout(src, dst)) {
      throw new ShapeError(
        `${who}: source has shape [${src.shape.join(', ')}] (${src.layout}), expected [${dst.shape.join(', ')}] (${dst.layout})`,
      );
    }
    if (src.dtype !== dst.dtype) {
      throw new ArgumentError(`${who}: source has dtype '${src.dtype}', this tensor '${dst.dtype}'; a copy does not convert`);
    }
    if (src === dst) return;
    if ((d.kind === 'cpu' && s.kind === 'cpu') || (d.kind === 'cpu-half' && s.kind === 'cpu-half')) {
      d.data.set(s.data);
      dst.noteWrite(0);
      return;
    }
    if (d.kind !== 'gpu' || s.kind !== 'gpu' || !this.gpu) throw new Error('internal: mixed tensor storage on one context');
    checkUsage(s.buffer, BUFFER_COPY_SRC, 'COPY_SRC', `${who} source`);
    checkUsage(d.buffer, BUFFER_COPY_DST, 'COPY_DST', who);
    const bytes = storageBytes(dst.size, dst.dtype);
    // WebGPU's copyBufferToBuffer refuses one buffer as both source and destination, even for
    // disjoint ranges.
    if (s.buffer === d.buffer) {
      throw new ArgumentError(
        `${who}: source and destination are in one GPUBuffer ('${d.buffer.label}'), which WebGPU cannot copy within; use tensors in separate buffers`,
      );
    }
    const { submit } = runGpuOp(this.gpu, 'bn.tensor.writeFrom', { outputs: [dst] }, (encoder) =>
      encoder.copyBufferToBuffer(s.buffer, s.byteOffset, d.buffer, d.byteOffset, bytes),
    );
    // A source that holds a failed submit's output copies that failure, never its stale bytes.
    if (src.writeFailure) dst.noteWriteFailed(submit, src.writeFailure);
  }

  /** @internal */
  releaseTensor(t: Tensor): void {
    const s = t.storage;
    if (this.#destroyed) return;
    if (s.kind === 'gpu') {
      if (s.owned) this.gpu?.releaseTensorBuffer(s.buffer);
      return;
    }
    // CPU storage is always the library's own copy; keep it for steady-state loops, within the cap.
    this.#cpuFree.put(s.data instanceof Uint16Array ? `h${s.data.length}` : String(s.data.length), s.data);
  }

  /** Waits until all submitted work is done; rejects with the first GPU error it produced. */
  async sync(): Promise<void> {
    this.assertUsable();
    await this.gpu?.settle();
  }

  /** Counters for leak and steady-state checks. */
  get stats(): ContextStats {
    const gpu = this.gpu;
    return {
      buffersCreated: gpu ? gpu.buffersCreated : 0,
      liveBuffers: gpu ? gpu.pool.live : 0,
      submits: gpu ? gpu.submits : 0,
      pooledBytes: gpu ? gpu.pool.freeBytes : this.#cpuFree.bytes,
      keptBuffers: gpu ? gpu.keptBuffers : 0,
      keptBytes: gpu ? gpu.keptBytes : 0,
    };
  }

  /** Frees every buffer and cache; destroys the device if the library created it. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#cpuFree.drain();
    this.gpu?.destroy();
  }
}

/**
 * Throws ArgumentError unless `ctx` is a context made by {@link createContext}, then
 * DestroyedError / DeviceLostError if it can no longer run work.
 */
export function assertContext(ctx: unknown, who: string): asserts ctx is BatchNormContext {
  if (!(ctx instanceof BatchNormContext)) {
    throw new ArgumentError(`${who}: expected a context from createContext(), got ${describe(ctx)}`);
  }
  ctx.assertUsable();
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object') return (v as { constructor?: { name?: string } }).constructor?.name ?? 'an object';
  return `${typeof v} ${String(v)}`;
}

function checkLabel(label: unknown): string {
  if (label === undefined) return 'tensor';
  if (typeof label !== 'string') throw new ArgumentError(`label must be a string, got ${describe(label)}`);
  return label;
}

function checkShape(shape: readonly number[], label: string): number {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`${label}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  return shapeSize(shape);
}

function checkDType(dtype: unknown, label: string): DType {
  if (dtype === undefined) return 'float32';
  if (typeof dtype !== 'string' || !(DTYPES as readonly string[]).includes(dtype)) {
    throw new ArgumentError(`${label}: dtype must be ${DTYPES.map((d) => `'${d}'`).join(', ')}, got ${JSON.stringify(dtype)}`);
  }
  return dtype as DType;
}

/**
 * Writes `data` (`size` values) as `dtype` bit patterns into `out` and returns it: a Uint16Array
 * as bits, a Float16Array's bits for float16, other numbers rounded to nearest, ties to even.
 * CPU tensors pass their own storage; a GPU upload passes a word-padded array (even length), so
 * the write is whole 4-byte words.
 */
function halfData(dtype: HalfDType, data: ArrayLike<number>, size: number, out: Uint16Array): Uint16Array {
  if (data instanceof Uint16Array) {
    out.set(data);
  } else if (dtype === 'float16' && isFloat16Array(data)) {
    out.set(new Uint16Array(data.buffer, data.byteOffset, size));
  } else {
    encodeHalf(dtype, data, out);
  }
  return out;
}

function checkLayout(layout: Layout | undefined, shape: readonly number[], label: string): Layout {
  const l = layout ?? 'channels_first';
  if (l !== 'channels_first' && l !== 'channels_last') {
    throw new ArgumentError(`${label}: layout must be 'channels_first' or 'channels_last', got ${JSON.stringify(layout)}`);
  }
  if (l === 'channels_last' && shape.length < 2) {
    throw new ShapeError(`${label}: layout 'channels_last' needs a shape (N, C, ...), got [${shape.join(', ')}]`);
  }
  return l;
}

/**
 * Creates a context on the chosen backend.
 * @param options.backend `'auto'` (default) falls back to the CPU, when there is no adapter or only
 *   a fallback (software) one, and reports it in `ctx.backend` and `ctx.fallbackReason`; `'webgpu'` throws {@link WebGPUUnavailableError} if there is no adapter.
 * @param options.device run on this device (the context never destroys it).
 * @param options.poolBytes most bytes of freed tensor storage kept for reuse; default 256 MiB on
 *   WebGPU, 64 MiB on the CPU. See {@link ContextOptions.poolBytes}.
 * @throws ArgumentError for an invalid option, before any device is requested or touched.
 */
export async function createContext(options: ContextOptions | null = {}): Promise<BatchNormContext> {
  options = optionsObject<ContextOptions>(options, 'createContext options', CONTEXT_OPTION_KEYS);
  const backend = options.backend ?? 'auto';
  if (backend !== 'auto' && backend !== 'webgpu' && backend !== 'cpu') {
    throw new ArgumentError(`backend must be 'auto', 'webgpu' or 'cpu', got ${JSON.stringify(backend)}`);
  }
  const poolBytes = options.poolBytes;
  if (poolBytes !== undefined && !(Number.isSafeInteger(poolBytes) && poolBytes >= 0)) {
    throw new ArgumentError(`poolBytes must be a non-negative integer number of bytes (0 keeps nothing), got ${describe(poolBytes)}`);
  }
  if (backend === 'cpu') return new BatchNormContext(null, null, null, poolBytes);
  const access = options.accessPattern ?? 'auto';
  if (access !== 'auto' && access !== 'coalesced' && access !== 'contiguous') {
    throw new ArgumentError(`accessPattern must be 'auto', 'coalesced' or 'contiguous', got ${JSON.stringify(access)}`);
  }
  const contiguous = access === 'auto' ? null : access === 'contiguous';
  const gpuPoolBytes = poolBytes ?? DEFAULT_GPU_POOL_BYTES;
  if (options.device) return new BatchNormContext(new GpuRuntime(options.device, false, null, contiguous, gpuPoolBytes), null, null);
  try {
    const request = options.powerPreference ? { powerPreference: options.powerPreference } : {};
    const { device, adapterInfo } = await requestBatchNormDevice(request);
    if (backend === 'auto' && (adapterInfo as { isFallbackAdapter?: boolean } | null)?.isFallbackAdapter === true) {
      // A software adapter (SwiftShader, WARP) runs each invocation as a CPU loop: the library's
      // CPU backend computes the same results about twice as fast there, so 'auto' takes it.
      device.destroy();
      const what = [adapterInfo?.vendor, adapterInfo?.architecture].filter((v) => v).join(' ') || 'software';
      return new BatchNormContext(
        null,
        null,
        `the WebGPU adapter is a fallback (${what}) adapter, where the CPU backend is faster; pass backend: 'webgpu' to use it anyway`,
        poolBytes,
      );
    }
    return new BatchNormContext(new GpuRuntime(device, true, adapterInfo, contiguous, gpuPoolBytes), adapterInfo, null);
  } catch (err) {
    if (backend === 'webgpu') throw err;
    const reason = err instanceof Error ? err.message : String(err);
    return new BatchNormContext(null, null, reason, poolBytes);
  }
}

/**
 * Values {@link BatchNormContext.tensor} accepts: a Float32Array (copied as is), any other
 * non-BigInt typed array (Uint8ClampedArray pixels, Float64Array, ...) or an array or array-like of
 * numbers, each converted to float32 as `Float32Array.from` does. For a `'float16'` /
 * `'bfloat16'` tensor a Uint16Array holds bit patterns (a Float16Array its float16 values) and
 * other numbers are rounded to the dtype, to nearest with ties to even.
 */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | readonly number[]
  | ArrayLike<number>;

/** Rejects tensor data that is not numbers: BigInt arrays, strings, DataViews, non-numeric elements. */
function checkTensorData(data: unknown, label: string): asserts data is ArrayLike<number> {
  const expected = 'a Float32Array, another non-BigInt typed array, or an array / array-like of numbers';
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    throw new ArgumentError(
      `${label}: data must be ${expected}; got a ${data.constructor.name} (convert BigInt values with Float32Array.from(data, Number))`,
    );
  }
  if (ArrayBuffer.isView(data)) {
    if (data instanceof DataView) throw new ArgumentError(`${label}: data must be ${expected}, got a DataView`);
    return;
  }
  const length = data !== null && typeof data === 'object' ? (data as { length?: unknown }).length : undefined;
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) {
    throw new ArgumentError(`${label}: data must be ${expected}, got ${describe(data)}`);
  }
  const values = data as ArrayLike<unknown>;
  for (let i = 0; i < length; i++) {
    if (typeof values[i] !== 'number') {
      throw new ArgumentError(`${label}: data must be ${expected}; element ${i} is ${describe(values[i])}`);
    }
  }
}

/** Rejects a caller's GPUBuffer that lacks a usage flag an operation needs, before any GPU work. */
function checkUsage(buffer: GPUBuffer, flag: number, name: string, who: string): void {
  if ((buffer.usage & flag) === 0) throw new ArgumentError(`${who}: needs GPUBufferUsage.${name} on buffer '${buffer.label}'`);
}
