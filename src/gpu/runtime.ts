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
  #firstError: GPUOperationError | null = null;
  #pending = new Set<Promise<void>>();
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

  constructor(
    device: GPUDevice,
    ownsDevice: boolean,
    adapterInfo: GPUAdapterInfo | null = null,
    contiguous: boolean | null = null,
    poolBytes: number = DEFAULT_GPU_POOL_BYTES,
  ) {
    this.device = device;
    const info = adapterInfo ?? (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo ?? null;
    this.contiguousAccess = contiguous ?? info?.isFallbackAdapter === true;
    this.ownsDevice = ownsDevice;
    // Evicted free buffers (tensors and readback staging) go through retire() like every other
    // buffer the runtime lets go, so one rule decides when a buffer may really be destroyed.
    this.pool = new BufferPool(device, poolBytes, (b) => this.retire(b));
    this.uniforms = new UniformCache(device, 256, (b) => this.retire(b), () => this.#uniformBuffersCreated++);
    this.bindGroups = new BindGroupCache(device);
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

  /** Throws if the device was lost or an earlier submission reported a GPU error. */
  assertHealthy(): void {
    if (this.lostMessage !== null) throw new DeviceLostError(this.lostMessage);
    if (this.#firstError) {
      const e = this.#firstError;
      this.#firstError = null;
      throw e;
    }
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
   */
  scratch(name: string, byteSize: number): GPUBuffer {
    const size = roundUp(Math.max(byteSize, 16), 256);
    const current = this.#scratch.get(name);
    if (current && current.size >= size) return current;
    if (current) this.retire(current);
    const grown = Math.max(size, current ? current.size * 2 : 0);
    const buffer = this.device.createBuffer({ label: `bn.scratch.${name}`, size: grown, usage: TENSOR_USAGE });
    this.#scratchCreated++;
    this.#scratch.set(name, buffer);
    return buffer;
  }

  /** Creates a buffer the caller owns (and must {@link retire}), counted in {@link buffersCreated}. */
  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    this.#scratchCreated++;
    return this.device.createBuffer(descriptor);
  }

  /** Destroys `buffer` once everything submitted so far has finished with it. */
  retire(buffer: GPUBuffer): void {
    this.#retired.push(buffer);
    const batch = this.#retired;
    this.#retired = [];
    void this.device.queue.onSubmittedWorkDone().then(() => {
      for (const b of batch) b.destroy();
    });
  }

  /**
   * Encodes with `record` and submits once, inside validation and out-of-memory error scopes. An
   * error is kept and thrown by the next {@link assertHealthy} or {@link settle}.
   */
  submit(label: string, record: (encoder: GPUCommandEncoder) => void): void {
    this.assertHealthy();
    const device = this.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder({ label: `${label}.encoder` });
    record(encoder);
    device.queue.submit([encoder.finish({ label: `${label}.commands` })]);
    this.#submits++;
    this.watch(label, device.popErrorScope(), device.popErrorScope());
  }

  /** Records errors of already-pushed scopes for {@link assertHealthy} and {@link settle}. */
  watch(label: string, ...scopes: Promise<GPUError | null>[]): void {
    const p: Promise<void> = Promise.all(scopes).then(
      (errors) => {
        const e = errors.find((x) => x !== null);
        if (e && !this.#firstError) this.#firstError = new GPUOperationError(`${label}: WebGPU reported: ${e.message}`);
        this.#pending.delete(p);
      },
      (err: unknown) => {
        if (!this.#firstError) this.#firstError = new GPUOperationError(`${label}: ${String(err)}`);
        this.#pending.delete(p);
      },
    );
    this.#pending.add(p);
  }

  /** Waits for all submitted work and throws the first GPU error it produced, if any. */
  async settle(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    await Promise.all([...this.#pending]);
    this.assertHealthy();
  }

  /** Reads `byteLength` bytes at `byteOffset` of `buffer` into a new Float32Array. */
  async readFloats(buffer: GPUBuffer, byteOffset: number, byteLength: number): Promise<Float32Array> {
    this.assertHealthy();
    const size = roundUp(Math.max(byteLength, 4), 4);
    const staging = this.pool.acquire(size, BUFFER_MAP_READ | BUFFER_COPY_DST, 'bn.readback.staging');
    try {
      this.submit('bn.readback', (encoder) => {
        encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, size);
      });
      await staging.mapAsync(MAP_MODE_READ, 0, size);
      const out = new Float32Array(byteLength / 4);
      out.set(new Float32Array(staging.getMappedRange(0, size), 0, byteLength / 4));
      staging.unmap();
      await Promise.all([...this.#pending]);
      this.assertHealthy();
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
    if (this.ownsDevice) this.device.destroy();
  }
}
