/**
 * Freed storage kept for reuse, capped in bytes. Items are grouped by a key (a size class, a
 * length) so `take` finds a match in O(1); when the kept bytes exceed the cap, the item released
 * longest ago (over all keys) is handed to `evict`. Only freed items live here: whatever is in use
 * is never seen, so it can never be evicted.
 */
export class FreeList<T> {
  /** Kept items per key, oldest release first. */
  readonly #byKey = new Map<string, T[]>();
  /** Every kept item in release order (a Map keeps insertion order): the front is evicted first. */
  readonly #byAge = new Map<T, string>();
  readonly #capacityBytes: number;
  readonly #bytesOf: (item: T) => number;
  readonly #evict: (item: T) => void;
  #bytes = 0;

  /**
   * @param capacityBytes most bytes kept at once; 0 keeps nothing (every `put` evicts at once).
   * @param bytesOf the size an item counts for.
   * @param evict receives every item dropped to stay under the cap; it owns the item from then on.
   */
  constructor(capacityBytes: number, bytesOf: (item: T) => number, evict: (item: T) => void) {
    this.#capacityBytes = capacityBytes;
    this.#bytesOf = bytesOf;
    this.#evict = evict;
  }

  /** The cap in bytes. */
  get capacityBytes(): number {
    return this.#capacityBytes;
  }

  /** Bytes currently kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Items currently kept. */
  get count(): number {
    return this.#byAge.size;
  }

  /** The most recently released item under `key` (its memory is most likely still warm), or undefined. */
  take(key: string): T | undefined {
    const items = this.#byKey.get(key);
    const item = items?.pop();
    if (item === undefined || !items) return undefined;
    if (items.length === 0) this.#byKey.delete(key);
    this.#byAge.delete(item);
    this.#bytes -= this.#bytesOf(item);
    return item;
  }

  /**
   * Keeps `item` under `key`, then evicts the least recently released items until under the cap.
   * An item bigger than the cap on its own is evicted at once and the others stay.
   */
  put(key: string, item: T): void {
    if (this.#byAge.has(item)) return;
    // One item bigger than the whole cap would flush everything else and still not fit.
    if (this.#bytesOf(item) > this.#capacityBytes) {
      this.#evict(item);
      return;
    }
    let items = this.#byKey.get(key);
    if (!items) {
      items = [];
      this.#byKey.set(key, items);
    }
    items.push(item);
    this.#byAge.set(item, key);
    this.#bytes += this.#bytesOf(item);
    while (this.#bytes > this.#capacityBytes) this.#evictOldest();
  }

  /** Removes and returns every kept item, without calling `evict` (for teardown). */
  drain(): T[] {
    const all = [...this.#byAge.keys()];
    this.#byKey.clear();
    this.#byAge.clear();
    this.#bytes = 0;
    return all;
  }

  #evictOldest(): void {
    const oldest = this.#byAge.entries().next();
    if (oldest.done) return;
    const [item, key] = oldest.value;
    // Per-key lists are in release order too, so the globally oldest item heads its own list.
    const items = this.#byKey.get(key);
    items?.shift();
    if (items?.length === 0) this.#byKey.delete(key);
    this.#byAge.delete(item);
    this.#bytes -= this.#bytesOf(item);
    this.#evict(item);
  }
}
