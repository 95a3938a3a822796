/**
 * Recycles GPU buffers by (usage, size) so a steady-state loop allocates nothing. Buffers go back
 * to the pool when their tensor is destroyed; reuse is safe because every later use is ordered
 * after earlier ones on the one queue. Counts every real allocation, for leak and steady-state tests.
 */
export class BufferPool {
  readonly #device: GPUDevice;
  readonly #free = new Map<string, GPUBuffer[]>();
  readonly #live = new Set<GPUBuffer>();
  #created = 0;

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** GPU buffers this pool has ever created. */
  get created(): number {
    return this.#created;
  }

  /** Buffers handed out and not yet released. */
  get live(): number {
    return this.#live.size;
  }

  /** A buffer of at least `byteSize` bytes (rounded up to 16) with exactly `usage`. */
  acquire(byteSize: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer {
    const size = roundUp(Math.max(byteSize, 16), 16);
    const key = `${usage}:${size}`;
    const free = this.#free.get(key);
    const reused = free?.pop();
    if (reused) {
      this.#live.add(reused);
      return reused;
    }
    const buffer = this.#device.createBuffer({ label, size, usage });
    this.#created++;
    this.#live.add(buffer);
    return buffer;
  }

  /** Gives a buffer back for reuse. Buffers the pool did not hand out are ignored. */
  release(buffer: GPUBuffer): void {
    if (!this.#live.delete(buffer)) return;
    const key = `${buffer.usage}:${buffer.size}`;
    let free = this.#free.get(key);
    if (!free) {
      free = [];
      this.#free.set(key, free);
    }
    free.push(buffer);
  }

  /** Destroys every pooled buffer, free or live. */
  destroy(): void {
    for (const list of this.#free.values()) for (const b of list) b.destroy();
    for (const b of this.#live) b.destroy();
    this.#free.clear();
    this.#live.clear();
  }
}

export function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}
