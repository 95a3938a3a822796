import { FreeList } from '../free-list.js';

/**
 * Default cap on the bytes of freed GPU buffers a context keeps for reuse: 256 MiB. It holds the
 * outputs and gradients that a training step of a large layer frees (e.g. ten [32, 64, 56, 56]
 * float32 tensors, 25.7 MB each), so steady-state loops allocate nothing, while an app that feeds
 * ever new shapes keeps at most this much on the device beyond what it actually uses.
 */
export const DEFAULT_GPU_POOL_BYTES = 256 * 2 ** 20;

/** Size classes per doubling: a pooled buffer is at most 1/16 (6.25 %) bigger than asked for. */
const SIZE_CLASSES_PER_OCTAVE = 16;

/**
 * The byte size the pool allocates for a request of `byteSize`: a multiple of 16, rounded up to
 * one of {@link SIZE_CLASSES_PER_OCTAVE} classes per power of two so that nearby sizes (a batch of
 * 100 and of 101) share buffers; never above `maxBytes` when the request itself fits.
 */
export function sizeClass(byteSize: number, maxBytes: number): number {
  const size = roundUp(Math.max(byteSize, 16), 16);
  const octave = 2 ** Math.floor(Math.log2(size));
  const step = Math.max(16, octave / SIZE_CLASSES_PER_OCTAVE);
  const classed = roundUp(size, step);
  return classed <= maxBytes ? classed : size;
}

/**
 * Recycles GPU buffers by (usage, size class) so a steady-state loop allocates nothing. Buffers go
 * back to the pool when their tensor is destroyed; reuse is safe because every later use is ordered
 * after earlier ones on the one queue. Free buffers are capped in bytes: past the cap the buffer
 * released longest ago goes to `retire` (which destroys it once no pending work can use it);
 * buffers handed out are never evicted. Counts every real allocation, for leak and steady-state
 * tests.
 */
export class BufferPool {
  readonly #device: GPUDevice;
  readonly #free: FreeList<GPUBuffer>;
  readonly #live = new Set<GPUBuffer>();
  #created = 0;

  /**
   * @param capacityBytes most bytes of free buffers kept (the context's `poolBytes`, default
   *   {@link DEFAULT_GPU_POOL_BYTES}).
   * @param retire receives each evicted buffer: the pool never destroys a free buffer itself, because
   *   work recorded into a caller's encoder may still reference it; the runtime decides when it can go.
   */
  constructor(device: GPUDevice, capacityBytes: number, retire: (buffer: GPUBuffer) => void) {
    this.#device = device;
    this.#free = new FreeList(capacityBytes, (b) => b.size, retire);
  }

  /** GPU buffers this pool has ever created. */
  get created(): number {
    return this.#created;
  }

  /** Buffers handed out and not yet released. */
  get live(): number {
    return this.#live.size;
  }

  /** Bytes of released buffers kept for reuse (at most {@link capacityBytes}). */
  get freeBytes(): number {
    return this.#free.bytes;
  }

  /** Released buffers kept for reuse. */
  get freeCount(): number {
    return this.#free.count;
  }

  /** The cap on {@link freeBytes}. */
  get capacityBytes(): number {
    return this.#free.capacityBytes;
  }

  /**
   * A buffer of at least `byteSize` bytes with exactly `usage`, its size rounded up to a size class
   * ({@link sizeClass}): bind or copy the range you need, not the whole buffer.
   */
  acquire(byteSize: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer {
    const size = sizeClass(byteSize, this.#device.limits.maxBufferSize);
    const reused = this.#free.take(`${usage}:${size}`);
    if (reused) {
      this.#live.add(reused);
      return reused;
    }
    const buffer = this.#device.createBuffer({ label, size, usage });
    this.#created++;
    this.#live.add(buffer);
    return buffer;
  }

  /** Gives a buffer back for reuse (or eviction). Buffers the pool did not hand out are ignored. */
  release(buffer: GPUBuffer): void {
    if (!this.#live.delete(buffer)) return;
    this.#free.put(`${buffer.usage}:${buffer.size}`, buffer);
  }

  /** Stops tracking a live buffer without keeping it for reuse: its owner now retires it. */
  forget(buffer: GPUBuffer): void {
    this.#live.delete(buffer);
  }

  /** Destroys every pooled buffer, free or live (the context is going away). */
  destroy(): void {
    for (const b of this.#free.drain()) b.destroy();
    for (const b of this.#live) b.destroy();
    this.#live.clear();
  }
}

export function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}
