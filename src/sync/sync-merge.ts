import { ArgumentError, ShapeError } from '../errors.js';
import {
  GRAD_RECORD_BYTES,
  GRAD_SUMS_PLANES,
  MOMENTS_COUNT,
  MOMENTS_K,
  MOMENTS_M2,
  MOMENTS_MEAN_OFFSET,
  MOMENTS_RECORD_BYTES,
} from '../gpu/contracts.js';

export { GRAD_RECORD_BYTES, GRAD_SUMS_PLANES, MOMENTS_RECORD_BYTES };

// What SyncBatchNorm's shards exchange, and how partials are merged. Pure float64 code with no
// backend: the all-reduce happens wherever the caller's transport puts it (another thread, another
// machine), and every participant must reach the same merged values bit for bit, whatever order
// the partials arrived in. So each merge first puts a channel's partials in a canonical order (a
// total order on their values), then folds them in float64: the same multiset of partials always
// gives the same bits.

/**
 * One shard's per-channel moments of its local batch: the partial that the forward all-reduces.
 * All three arrays have one entry per channel. `count` is N × spatial of the shard (it may differ
 * between shards), `mean` the shard's mean and `m2` = Σ(x − mean)², both in float64.
 */
export interface ChannelMoments {
  readonly count: Float64Array;
  readonly mean: Float64Array;
  readonly m2: Float64Array;
}

/**
 * One shard's per-channel backward sums with the merged (whole-batch) mean and invstd:
 * `sumDy` = Σdy and `sumDyXhat` = Σdy·x̂ with x̂ = (x − mean)·invstd. They are the shard's own
 * grad_bias and grad_weight; their sum over the shards is the whole batch's.
 */
export interface GradSums {
  readonly sumDy: Float64Array;
  readonly sumDyXhat: Float64Array;
}

/** Float64 values per channel in {@link momentsToArray}'s packing: count, mean, m2. */
export const MOMENTS_PLANES = 3;

function checkFloat64(v: unknown, argument: string, channels: number | null): Float64Array {
  if (!(v instanceof Float64Array)) {
    const got =
      v === null
        ? 'null'
        : typeof v === 'object'
          ? ((v as { constructor?: { name?: string } }).constructor?.name ?? 'an object')
          : typeof v;
    throw new ArgumentError(`${argument} must be a Float64Array, got ${got}`);
  }
  if (channels !== null && v.length !== channels) {
    throw new ShapeError(`${argument} must have ${channels} entries (one per channel), got ${v.length}`);
  }
  return v;
}

/** Checks a moments partial: Float64Arrays of one length (or `channels`); counts integers ≥ 0. */
export function checkMoments(p: unknown, argument: string, channels: number | null = null): ChannelMoments {
  if (p === null || typeof p !== 'object') throw new ArgumentError(`${argument} must be an object { count, mean, m2 }, got ${String(p)}`);
  const m = p as Record<string, unknown>;
  const count = checkFloat64(m['count'], `${argument}.count`, channels);
  const mean = checkFloat64(m['mean'], `${argument}.mean`, count.length);
  const m2 = checkFloat64(m['m2'], `${argument}.m2`, count.length);
  for (let c = 0; c < count.length; c++) {
    const n = count[c] as number;
    if (!Number.isInteger(n) || n < 0) throw new ArgumentError(`${argument}.count[${c}] must be a non-negative integer, got ${n}`);
  }
  return { count, mean, m2 };
}

/** Checks a gradient partial: two Float64Arrays of one length (or `channels`). */
export function checkGradSums(p: unknown, argument: string, channels: number | null = null): GradSums {
  if (p === null || typeof p !== 'object') throw new ArgumentError(`${argument} must be an object { sumDy, sumDyXhat }, got ${String(p)}`);
  const m = p as Record<string, unknown>;
  const sumDy = checkFloat64(m['sumDy'], `${argument}.sumDy`, channels);
  const sumDyXhat = checkFloat64(m['sumDyXhat'], `${argument}.sumDyXhat`, sumDy.length);
  return { sumDy, sumDyXhat };
}

// A total order on float64 values (−0 before +0, NaN last), so sorting is a function of the
// multiset alone.
function compareTotal(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) {
    if (a !== 0) return 0;
    return Object.is(a, b) ? 0 : Object.is(a, -0) ? -1 : 1;
  }
  const na = Number.isNaN(a);
  const nb = Number.isNaN(b);
  return na === nb ? 0 : na ? 1 : -1;
}

function checkList<T>(
  partials: unknown,
  argument: string,
  check: (p: unknown, argument: string, channels: number | null) => T,
  first: (p: T) => Float64Array,
): T[] {
  if (!Array.isArray(partials) || partials.length === 0) {
    throw new ArgumentError(
      `${argument} must be a non-empty array of partials, got ${Array.isArray(partials) ? 'an empty array' : String(partials)}`,
    );
  }
  const out: T[] = [];
  let channels: number | null = null;
  partials.forEach((p, i) => {
    const checked = check(p, `${argument}[${i}]`, channels);
    channels ??= first(checked).length;
    out.push(checked);
  });
  return out;
}

/**
 * Merges shards' moments into the whole batch's, per channel, with Chan, Golub & LeVeque's
 * pairwise update in float64 (n = na + nb; d = mb − ma; mean = ma + d·nb/n; M2 = M2a + M2b +
 * d²·na·nb/n), as PyTorch's `batch_norm_gather_stats_with_counts` merges ranks. The result does not
 * depend on the order of `partials`, bit for bit: each channel's partials are sorted by
 * (count, mean, m2) before folding. Partials with count 0 contribute nothing.
 * @param partials one {@link ChannelMoments} per shard, all with the same number of channels.
 * @throws ArgumentError / ShapeError for malformed partials, before anything is computed.
 */
export function mergeMoments(partials: readonly ChannelMoments[]): ChannelMoments {
  const list = checkList(partials, 'partials', checkMoments, (p) => p.count);
  const channels = list[0]?.count.length ?? 0;
  const count = new Float64Array(channels);
  const mean = new Float64Array(channels);
  const m2 = new Float64Array(channels);
  const items: Array<[number, number, number]> = list.map(() => [0, 0, 0]);
  for (let c = 0; c < channels; c++) {
    list.forEach((p, i) => {
      const item = items[i] as [number, number, number];
      item[0] = p.count[c] as number;
      item[1] = p.mean[c] as number;
      item[2] = p.m2[c] as number;
    });
    const sorted = [...items].sort((a, b) => compareTotal(a[0], b[0]) || compareTotal(a[1], b[1]) || compareTotal(a[2], b[2]));
    let n = 0;
    let mu = 0;
    let s = 0;
    // A shard holding ±Inf or NaN has a non-finite mean. Chan's update would turn a +Inf met
    // before a finite mean into Inf − Inf = NaN, so the result depended on the order. The mean of
    // the concatenated batch is the sum of the non-finite means (+Inf, −Inf, or NaN when they
    // disagree or one is NaN) and its M2 is NaN, as torch computes on the concatenation.
    let total = 0;
    let nonFiniteMean = 0;
    let anyNonFinite = false;
    for (const [nb, mb, sb] of sorted) {
      if (nb === 0) continue;
      total += nb;
      if (!Number.isFinite(mb)) {
        anyNonFinite = true;
        nonFiniteMean += mb;
        continue;
      }
      const merged = n + nb;
      const d = mb - mu;
      mu += (d * nb) / merged;
      s += sb + (d * d * n * nb) / merged;
      n = merged;
    }
    count[c] = total;
    mean[c] = total === 0 ? Number.NaN : anyNonFinite ? nonFiniteMean : mu;
    m2[c] = total === 0 || anyNonFinite ? Number.NaN : s;
  }
  return { count, mean, m2 };
}

/**
 * Sums shards' backward partials per channel in float64. The result does not depend on the order
 * of `partials`, bit for bit: each channel's values are summed in ascending order.
 * @throws ArgumentError / ShapeError for malformed partials, before anything is computed.
 */
export function mergeGradSums(partials: readonly GradSums[]): GradSums {
  const list = checkList(partials, 'partials', checkGradSums, (p) => p.sumDy);
  const channels = list[0]?.sumDy.length ?? 0;
  const sumDy = new Float64Array(channels);
  const sumDyXhat = new Float64Array(channels);
  const values = new Float64Array(list.length);
  const sum = (pick: (p: GradSums) => Float64Array, c: number): number => {
    list.forEach((p, i) => {
      values[i] = pick(p)[c] as number;
    });
    // Float64Array.prototype.sort is numeric with −0 before +0 and NaN last: a total order.
    values.sort();
    let s = 0;
    for (const v of values) s += v;
    return s;
  };
  for (let c = 0; c < channels; c++) {
    sumDy[c] = sum((p) => p.sumDy, c);
    sumDyXhat[c] = sum((p) => p.sumDyXhat, c);
  }
  return { sumDy, sumDyXhat };
}

/** Packs moments into one Float64Array [count | mean | m2] (3·C values), e.g. for a binary frame. */
export function momentsToArray(p: ChannelMoments): Float64Array {
  const m = checkMoments(p, 'moments');
  const c = m.count.length;
  const out = new Float64Array(MOMENTS_PLANES * c);
  out.set(m.count, 0);
  out.set(m.mean, c);
  out.set(m.m2, 2 * c);
  return out;
}

/** Unpacks {@link momentsToArray}'s layout (copies). */
export function momentsFromArray(values: Float64Array): ChannelMoments {
  const v = checkFloat64(values, 'values', null);
  if (v.length % MOMENTS_PLANES !== 0) throw new ShapeError(`values must hold ${MOMENTS_PLANES}·C entries, got ${v.length}`);
  const c = v.length / MOMENTS_PLANES;
  return checkMoments({ count: v.slice(0, c), mean: v.slice(c, 2 * c), m2: v.slice(2 * c) }, 'values');
}

/** Packs gradient sums into one Float64Array [sumDy | sumDyXhat] (2·C values). */
export function gradSumsToArray(p: GradSums): Float64Array {
  const g = checkGradSums(p, 'sums');
  const c = g.sumDy.length;
  const out = new Float64Array(GRAD_SUMS_PLANES * c);
  out.set(g.sumDy, 0);
  out.set(g.sumDyXhat, c);
  return out;
}

/** Unpacks {@link gradSumsToArray}'s layout (copies). */
export function gradSumsFromArray(values: Float64Array): GradSums {
  const v = checkFloat64(values, 'values', null);
  if (v.length % GRAD_SUMS_PLANES !== 0) throw new ShapeError(`values must hold ${GRAD_SUMS_PLANES}·C entries, got ${v.length}`);
  const c = v.length / GRAD_SUMS_PLANES;
  return { sumDy: v.slice(0, c), sumDyXhat: v.slice(c) };
}

/**
 * Decodes moments records as `SyncBatchNorm.encodeMomentsPartial` writes them (C records of
 * {@link MOMENTS_RECORD_BYTES} bytes), e.g. after you copied them out of your GPUBuffer.
 * mean = K + (mean − K) is formed in float64, so offset data keeps its precision.
 */
export function decodeMomentsRecords(bytes: ArrayBuffer | ArrayBufferView, channels: number): ChannelMoments {
  const buffer = ArrayBuffer.isView(bytes) ? bytes.buffer : bytes;
  const offset = ArrayBuffer.isView(bytes) ? bytes.byteOffset : 0;
  const length = ArrayBuffer.isView(bytes) ? bytes.byteLength : bytes.byteLength;
  if (!Number.isInteger(channels) || channels < 1) throw new ArgumentError(`channels must be a positive integer, got ${String(channels)}`);
  if (length < channels * MOMENTS_RECORD_BYTES || offset % 4 !== 0) {
    throw new ShapeError(
      `bytes: ${channels} records need ${channels * MOMENTS_RECORD_BYTES} bytes at a 4-byte aligned offset, got ${length} at ${offset}`,
    );
  }
  const f = new Float32Array(buffer, offset, channels * 4);
  const u = new Uint32Array(buffer, offset, channels * 4);
  const count = new Float64Array(channels);
  const mean = new Float64Array(channels);
  const m2 = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    mean[c] = (f[4 * c + MOMENTS_K] as number) + (f[4 * c + MOMENTS_MEAN_OFFSET] as number);
    m2[c] = f[4 * c + MOMENTS_M2] as number;
    count[c] = u[4 * c + MOMENTS_COUNT] as number;
  }
  return { count, mean, m2 };
}

// ------------------------------------------------------------------ float32 record merges
// The CPU twins of shaders/sync-merge.wgsl, which emulates the float64 merges of this file on the
// GPU: the same canonical orders, the same float64 operations, so they give the kernel's bits.

const CANONICAL_NAN_BITS = 0x7fc00000;

function checkRecordArgs(
  records: ArrayBuffer | ArrayBufferView,
  shards: number,
  channels: number,
  recordBytes: number,
  who: string,
): Float32Array {
  if (!Number.isInteger(channels) || channels < 1)
    throw new ArgumentError(`${who}: channels must be a positive integer, got ${String(channels)}`);
  if (!Number.isInteger(shards) || shards < 1) throw new ArgumentError(`${who}: shards must be a positive integer, got ${String(shards)}`);
  if (!(records instanceof ArrayBuffer) && !ArrayBuffer.isView(records)) {
    throw new ArgumentError(`${who}: records must be an ArrayBuffer or a typed array, got ${String(records)}`);
  }
  const buffer = ArrayBuffer.isView(records) ? records.buffer : records;
  const offset = ArrayBuffer.isView(records) ? records.byteOffset : 0;
  const needed = shards * channels * recordBytes;
  if (records.byteLength < needed || offset % 4 !== 0) {
    throw new ShapeError(
      `${who}: ${shards} shards × ${channels} channels of ${recordBytes}-byte records need ${needed} bytes at a 4-byte aligned offset, got ${records.byteLength} at ${offset}`,
    );
  }
  return new Float32Array(buffer, offset, needed / 4);
}

/**
 * Merges S shards' moments records (as `SyncBatchNorm.encodeMomentsPartial` writes them, shard s's
 * C records at byte s·C·{@link MOMENTS_RECORD_BYTES}) into the whole batch's moments:
 * {@link mergeMoments} of the records decoded with {@link decodeMomentsRecords}. This is what the
 * GPU merge of `SyncBatchNorm.encodeForward` computes (shaders/sync-merge.wgsl), **bit for bit**:
 * the kernel emulates mergeMoments' float64 arithmetic (its canonical order, Chan's fold operation
 * by operation, its non-finite rules) in integer arithmetic (shaders/common/f64.wgsl), on every
 * device; the result does not depend on the order of the shards.
 * @param records S·C records; any extra bytes after them are ignored.
 * @throws ArgumentError / ShapeError for bad counts or too few bytes.
 */
export function mergeMomentsRecords(records: ArrayBuffer | ArrayBufferView, shards: number, channels: number): ChannelMoments {
  const f = checkRecordArgs(records, shards, channels, MOMENTS_RECORD_BYTES, 'mergeMomentsRecords');
  const per = (MOMENTS_RECORD_BYTES / 4) * channels;
  return mergeMoments(Array.from({ length: shards }, (_, s) => decodeMomentsRecords(f.subarray(s * per, (s + 1) * per), channels)));
}

/**
 * Sums S shards' gradient records (as `SyncBatchNorm.encodeGradPartial` writes them: C float32
 * Σdy then C float32 Σdy·x̂ per shard, shard s at byte s·C·{@link GRAD_RECORD_BYTES}) per channel:
 * the CPU twin of the GPU merge that `SyncBatchNorm.encodeBackward` runs. The values are summed in
 * ascending IEEE total order from +0 **in float64** (the kernel emulates binary64 addition in
 * integer arithmetic, shaders/common/f64.wgsl) and rounded once to float32, so the result is
 * **bit-identical to the kernel's and to {@link mergeGradSums} of the same values stored into a
 * Float32Array** (as the host path uploads it), on every device, and independent of the order of
 * the shards; every NaN is the canonical one.
 * @returns 2·C float32 values: Σdy of every channel, then Σdy·x̂.
 * @throws ArgumentError / ShapeError for bad counts or too few bytes.
 */
export function mergeGradRecords(records: ArrayBuffer | ArrayBufferView, shards: number, channels: number): Float32Array<ArrayBuffer> {
  const f = checkRecordArgs(records, shards, channels, GRAD_RECORD_BYTES, 'mergeGradRecords');
  const per = GRAD_SUMS_PLANES * channels;
  // mergeGradSums itself (ascending total order, float64 sums), on the records as float64 partials.
  const merged = mergeGradSums(
    Array.from({ length: shards }, (_, s) => ({
      sumDy: Float64Array.from(f.subarray(s * per, s * per + channels)),
      sumDyXhat: Float64Array.from(f.subarray(s * per + channels, (s + 1) * per)),
    })),
  );
  const out = new Float32Array(per);
  out.set(merged.sumDy);
  out.set(merged.sumDyXhat, channels);
  // Rounded once to float32 by the stores above; every NaN the canonical one, as the kernel writes it.
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < per; i++) if (Number.isNaN(out[i])) outBits[i] = CANONICAL_NAN_BITS;
  return out;
}
