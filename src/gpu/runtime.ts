import { DeviceLostError, GPUOperationError } from '../errors.js';
import { BufferPool, DEFAULT_GPU_POOL_BYTES, roundUp } from './buffer-pool.js';
import { BindGroupCache, UniformCache } from './object-caches.js';

import { BUFFER_COPY_DST, BUFFER_MAP_READ, BUFFER_STORAGE, MAP_MODE_READ, TENSOR_USAGE } from './constants.js';

/**
 * Everything one context owns on one GPUDevice: the buffer pool, uniform and bind-group caches,
 * scratch space, error capture and readback. Data flows batch-norm → gpu → here, never back.
 */
export class GpuRuntime {
  readonly device: GPUDevice;
  readonly ownsDevice: boolean;
  readonly pool: BufferPool;
  readonly uniforms: UniformCache;
  readonly bindGroups: BindGroupCache;
  /** Set once the device is lost; every later call throws it. */
  lostMessage: string | null = null;
  /** Errors of failed submits not yet reported by {@link settle} (ctx.sync()). */
  #unreported: GPUOperationError[] = [];
  #pending = new Set<Promise<void>>();
  /**
   * Buffers bound into work recorded in a caller's encoder. The library cannot see when the
   * caller submits, so {@link retire} never destroys these before the runtime itself is destroyed.
   */
  #callerReferenced = new WeakSet<GPUBuffer>();
  /** True while a caller's encoder is being recorded into (see {@link recordInto}). */
  #recordingForCaller = false;
  /** Retired buffers a caller's encoder may still reference: destroyed with the runtime. */
  #keptUntilDestroy = new Set<GPUBuffer>();
  #uniformBuffersCreated = 0;
  #submits = 0;
  #scratch = new Map<string, GPUBuffer>();
  #dummies = new Map<string, GPUBuffer>();
  #retired: GPUBuffer[] = [];

  /**
   * True on fallback adapters (a CPU implementation such as SwiftShader): elementwise kernels then
   * give each invocation a contiguous run instead of a coalesced stride. Real GPUs keep coalescing.
   */
  readonly contiguousAccess: boolean;

  /** True when the adapter reports itself as a fallback (software) adapter, such as SwiftShader. */
  readonly isFallbackAdapter: boolean;

  constructor(
    device: GPUDevice,
    ownsDevice: boolean,
    adapterInfo: GPUAdapterInfo | null = null,
    contiguous: boolean | null = null,
    poolBytes: number = DEFAULT_GPU_POOL_BYTES,
  ) {
    this.device = device;
    const info = adapterInfo ?? (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo ?? null;
    this.isFallbackAdapter = info?.isFallbackAdapter === true;
    this.contiguousAccess = contiguous ?? this.isFallbackAdapter;
    this.ownsDevice = ownsDevice;
    // Evicted free buffers (tensors and readback staging) go through retire() like every other
    // buffer the runtime lets go, so one rule decides when a buffer may really be destroyed.
    this.pool = new BufferPool(device, poolBytes, (b) => this.retire(b));
    this.uniforms = new UniformCache(
      device,
      256,
      (b) => this.retire(b),
      () => this.#uniformBuffersCreated++,
    );
    this.bindGroups = new BindGroupCache(device, (b) => this.#noteBound(b));
    void device.lost.then((info) => {
      this.lostMessage = `GPUDevice lost (${info.reason}): ${info.message || 'no message'}`;
    });
  }

  /** GPU buffers created so far by this context (tensors, scratch, uniforms, staging). */
  get buffersCreated(): number {
    return this.pool.created + this.#uniformBuffersCreated + this.#scratchCreated;
  }
  #scratchCreated = 0;

  /** Queue submissions made by the library so far. */
  get submits(): number {
    return this.#submits;
  }

  /**
   * Throws if the device was lost. Errors of failed submits are not thrown here: they reject the
   * reads of what that submit was to write, and the next {@link settle}.
   */
  assertHealthy(): void {
    if (this.lostMessage !== null) throw new DeviceLostError(this.lostMessage);
  }

  /** Retired buffers kept alive because a caller's unsubmitted encoder may reference them. */
  get keptBuffers(): number {
    return this.#keptUntilDestroy.size;
  }

  /** Bytes of {@link keptBuffers}. */
  get keptBytes(): number {
    let bytes = 0;
    for (const b of this.#keptUntilDestroy) bytes += b.size;
    return bytes;
  }

  /**
   * Records library work into a caller's encoder. Every buffer bound meanwhile is marked, and
   * {@link retire} keeps marked buffers until the runtime is destroyed: the caller may submit
   * the encoder at any later time, and a destroyed buffer would invalidate the whole submit.
   */
  recordInto(encoder: GPUCommandEncoder, record: (encoder: GPUCommandEncoder) => void): void {
    const outer = this.#recordingForCaller;
    this.#recordingForCaller = true;
    try {
      record(encoder);
    } finally {
      this.#recordingForCaller = outer;
    }
  }

  /**
   * Takes back the pooled buffer of a destroyed tensor. Destroying a tensor promises that no
   * unsubmitted encoder still reads it (the lifetime rule's "your part"), so the buffer stops
   * counting as caller-referenced: should the pool evict it, it is freed once the queue is done
   * with it instead of being kept until the runtime is destroyed, and `poolBytes` bounds it.
   */
  releaseTensorBuffer(buffer: GPUBuffer): void {
    if (this.#moduleReleases.delete(buffer) && this.#callerReferenced.has(buffer)) {
      // A module's own tensor (see releasingModuleTensor): never recycled while an encoder may use it.
      this.pool.forget(buffer);
      this.retire(buffer);
      return;
    }
    this.#callerReferenced.delete(buffer);
    this.pool.release(buffer);
  }

  /**
   * Marks the buffer of a tensor that a module owns (parameters, running statistics) as released
   * by the module's destroy(), just before the tensor is destroyed. Unlike destroying a tensor of
   * yours, destroying a module says nothing about encoders you have not submitted, so if one
   * of them references the buffer it is retired (kept until the runtime is destroyed) instead of
   * going back to the pool, where a new tensor could get it while that work still writes it.
   */
  releasingModuleTensor(buffer: GPUBuffer): void {
    this.#moduleReleases.add(buffer);
  }
  #moduleReleases = new WeakSet<GPUBuffer>();

  #noteBound(buffer: GPUBuffer): void {
    if (this.#recordingForCaller) this.#callerReferenced.add(buffer);
  }

  /** Storage buffers bigger than this cannot be bound in one piece. */
  get maxTensorBytes(): number {
    return Math.min(this.device.limits.maxBufferSize, this.device.limits.maxStorageBufferBindingSize);
  }

  /**
   * A tiny storage buffer bound where an entry point declares a resource that is unused this call;
   * one per binding name, because one buffer bound read-only and writable in one dispatch is invalid.
   */
  dummy(binding: string): GPUBuffer {
    let buffer = this.#dummies.get(binding);
    if (!buffer) {
      buffer = this.device.createBuffer({ label: `bn.dummy.${binding}`, size: 16, usage: BUFFER_STORAGE });
      this.#scratchCreated++;
      this.#dummies.set(binding, buffer);
    }
    return buffer;
  }

  /**
   * A scratch buffer named `name` of at least `byteSize`, kept and grown (never shrunk). Dispatches
   * on one queue run in order, so stages that use the same scratch one after the other may share it.
   * `usage` (default TENSOR_USAGE) must be the same on every call with one name.
   */
  scratch(name: string, byteSize: number, usage: GPUBufferUsageFlags = TENSOR_USAGE): GPUBuffer {
    const size = roundUp(Math.max(byteSize, 16), 256);
    const current = this.#scratch.get(name);
    if (current && current.size >= size) return current;
    if (current) this.retire(current);
    const grown = Math.max(size, current ? current.size * 2 : 0);
    const buffer = this.device.createBuffer({ label: `bn.scratch.${name}`, size: grown, usage });
    this.#scratchCreated++;
    this.#scratch.set(name, buffer);
    return buffer;
  }

  /** Creates a buffer the caller owns (and must {@link retire}), counted in {@link buffersCreated}. */
  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    this.#scratchCreated++;
    return this.device.createBuffer(descriptor);
  }

  /**
   * Destroys `buffer` once everything submitted so far has finished with it; a buffer bound into
   * a caller's encoder is kept until the runtime is destroyed instead (see {@link recordInto}).
   */
  retire(buffer: GPUBuffer): void {
    if (this.#callerReferenced.has(buffer)) {
      this.#keptUntilDestroy.add(buffer);
      return;
    }
    this.#retired.push(buffer);
    const batch = this.#retired;
    this.#retired = [];
    void this.device.queue.onSubmittedWorkDone().then(() => {
      for (const b of batch) b.destroy();
    });
  }

  /**
   * Encodes with `record` and submits once, inside validation and out-of-memory error scopes.
   * If WebGPU reports an error for it, `onError` runs (the caller marks what the submit was to
   * write, and undoes state it advanced) and {@link settle} rejects with it.
   * @returns the submit's sequence number (1, 2, ...), for matching errors to writes.
   */
  submit(label: string, record: (encoder: GPUCommandEncoder) => void, onError?: (error: GPUOperationError) => void): number {
    this.assertHealthy();
    const device = this.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let recorded = false;
    try {
      const encoder = device.createCommandEncoder({ label: `${label}.encoder` });
      record(encoder);
      recorded = true;
      device.queue.submit([encoder.finish({ label: `${label}.commands` })]);
    } finally {
      // Scopes must be popped even when recording threw, or they would swallow later errors.
      const scopes = [device.popErrorScope(), device.popErrorScope()];
      if (recorded) this.#watch(label, scopes, onError);
      else for (const s of scopes) void s.catch(() => {});
    }
    return ++this.#submits;
  }

  #watch(label: string, scopes: Promise<GPUError | null>[], onError?: (error: GPUOperationError) => void): void {
    const fail = (message: string): void => {
      const error = new GPUOperationError(`${label}: ${message}`);
      this.#unreported.push(error);
      onError?.(error);
    };
    const p: Promise<void> = Promise.all(scopes).then(
      (errors) => {
        const e = errors.find((x) => x !== null);
        if (e) fail(`WebGPU reported: ${e.message}`);
        this.#pending.delete(p);
      },
      (err: unknown) => {
        fail(String(err));
        this.#pending.delete(p);
      },
    );
    this.#pending.add(p);
  }

  /** Waits until the error scopes of every submit so far have resolved. */
  async errorsSettled(): Promise<void> {
    await Promise.all([...this.#pending]);
  }

  /**
   * Waits for all submitted work; rejects with the first GPU error reported since the last
   * settle (each error is reported here once), or DeviceLostError.
   */
  async settle(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    await this.errorsSettled();
    this.assertHealthy();
    const first = this.#unreported[0];
    const more = this.#unreported.length - 1;
    this.#unreported = [];
    if (first) {
      if (more > 0) first.message += ` (and ${more} more failed submit${more > 1 ? 's' : ''})`;
      throw first;
    }
  }

  /** Reads `byteLength` bytes at `byteOffset` of `buffer` into a new Float32Array. */
  async readFloats(buffer: GPUBuffer, byteOffset: number, byteLength: number): Promise<Float32Array> {
    this.assertHealthy();
    const size = roundUp(Math.max(byteLength, 4), 4);
    const staging = this.pool.acquire(size, BUFFER_MAP_READ | BUFFER_COPY_DST, 'bn.readback.staging');
    // A copy that failed validation leaves the staging buffer as it was: never return its bytes.
    let copyError: GPUOperationError | null = null;
    try {
      this.submit(
        'bn.readback',
        (encoder) => {
          encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, size);
        },
        (error) => {
          copyError = error;
        },
      );
      await staging.mapAsync(MAP_MODE_READ, 0, size);
      const out = new Float32Array(byteLength / 4);
      out.set(new Float32Array(staging.getMappedRange(0, size), 0, byteLength / 4));
      staging.unmap();
      await this.errorsSettled();
      this.assertHealthy();
      if (copyError) throw copyError;
      return out;
    } catch (err) {
      if (this.lostMessage !== null) throw new DeviceLostError(this.lostMessage);
      throw err;
    } finally {
      this.pool.release(staging);
    }
  }

  /** Frees everything this runtime allocated, and the device if the library created it. */
  destroy(): void {
    this.pool.destroy();
    this.uniforms.clear();
    this.bindGroups.clear();
    for (const b of this.#scratch.values()) b.destroy();
    this.#scratch.clear();
    for (const b of this.#dummies.values()) b.destroy();
    this.#dummies.clear();
    for (const b of this.#keptUntilDestroy) b.destroy();
    this.#keptUntilDestroy.clear();
    if (this.ownsDevice) this.device.destroy();
  }
}
