import { BUFFER_COPY_DST, BUFFER_UNIFORM } from './constants.js';
import type { Kernel } from './kernel-cache.js';

/**
 * A small least-recently-used map. Evicted values are handed to `evict` so the owner can free
 * them once no pending submit can still read them.
 */
export class LruCache<V> {
  readonly #map = new Map<string, V>();
  readonly #capacity: number;
  readonly #evict: (value: V) => void;

  constructor(capacity: number, evict: (value: V) => void) {
    this.#capacity = capacity;
    this.#evict = evict;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }

  set(key: string, value: V): void {
    this.#map.set(key, value);
    while (this.#map.size > this.#capacity) {
      const oldest = this.#map.keys().next();
      if (oldest.done) break;
      const v = this.#map.get(oldest.value);
      this.#map.delete(oldest.value);
      if (v !== undefined) this.#evict(v);
    }
  }

  clear(): void {
    for (const v of this.#map.values()) this.#evict(v);
    this.#map.clear();
  }
}

const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 1;

/** A process-unique id per GPUBuffer object, for cache keys. */
export function bufferId(buffer: GPUBuffer): number {
  let id = bufferIds.get(buffer);
  if (id === undefined) {
    id = nextBufferId++;
    bufferIds.set(buffer, id);
  }
  return id;
}

/**
 * Uniform buffers keyed by their bytes. A given content is written once and never rewritten, so
 * any number of dispatches encoded before one submit can each see their own values.
 */
export class UniformCache {
  readonly #device: GPUDevice;
  readonly #cache: LruCache<GPUBuffer>;
  readonly #onCreate: () => void;

  constructor(device: GPUDevice, capacity: number, retire: (b: GPUBuffer) => void, onCreate: () => void) {
    this.#device = device;
    this.#cache = new LruCache(capacity, retire);
    this.#onCreate = onCreate;
  }

  get(label: string, bytes: Uint8Array<ArrayBuffer>): GPUBuffer {
    let key = label;
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    for (const w of words) key += `,${w.toString(16)}`;
    let buffer = this.#cache.get(key);
    if (!buffer) {
      buffer = this.#device.createBuffer({
        label,
        size: bytes.byteLength,
        usage: BUFFER_UNIFORM | BUFFER_COPY_DST,
        mappedAtCreation: true,
      });
      new Uint8Array(buffer.getMappedRange()).set(bytes);
      buffer.unmap();
      this.#onCreate();
      this.#cache.set(key, buffer);
    }
    return buffer;
  }

  /** Uniform buffers currently cached (at most the capacity). */
  get size(): number {
    return this.#cache.size;
  }

  clear(): void {
    this.#cache.clear();
  }
}

/** Bind groups keyed by kernel and the exact buffer ranges bound, so steady-state calls reuse them. */
export class BindGroupCache {
  readonly #device: GPUDevice;
  readonly #cache = new LruCache<GPUBindGroup>(512, () => {});
  readonly #onBind: (buffer: GPUBuffer) => void;

  /** @param onBind sees every buffer bound, cached group or not (lifetime tracking). */
  constructor(device: GPUDevice, onBind: (buffer: GPUBuffer) => void = () => {}) {
    this.#device = device;
    this.#onBind = onBind;
  }

  /** Binds `resources` by WGSL variable name; every binding the entry point uses must be given. */
  get(kernel: Kernel, resources: Readonly<Record<string, GPUBufferBinding>>): GPUBindGroup {
    let key = kernel.key;
    const entries: GPUBindGroupEntry[] = [];
    for (const b of kernel.entry.bindings) {
      const r = resources[b.name];
      if (!r) throw new Error(`internal: ${kernel.key} needs binding '${b.name}'`);
      key += `|${bufferId(r.buffer)}:${r.offset ?? 0}:${r.size ?? -1}`;
      this.#onBind(r.buffer);
      entries.push({ binding: b.binding, resource: r });
    }
    if (Object.keys(resources).length !== entries.length) {
      const extra = Object.keys(resources).filter((n) => !kernel.entry.bindings.some((b) => b.name === n));
      throw new Error(`internal: ${kernel.key} does not use bindings ${extra.join(', ')}`);
    }
    let group = this.#cache.get(key);
    if (!group) {
      group = this.#device.createBindGroup({ label: `${kernel.key.split('|')[0]}.bindGroup`, layout: kernel.layout, entries });
      this.#cache.set(key, group);
    }
    return group;
  }

  /** Bind groups currently cached (at most 512). */
  get size(): number {
    return this.#cache.size;
  }

  clear(): void {
    this.#cache.clear();
  }
}
