import { CONTIGUOUS_COLUMN_GROUP, HALF_FORMAT_BF16, HALF_FORMAT_F16, STATS_BLOCK, WORKGROUP_SIZE } from '../../gpu/contracts.js';
import type { HalfDType } from '../../dtype.js';
import { grid } from '../../gpu/grid.js';
import type { UniformValues } from '../../gpu/uniforms.js';
import type { Geometry } from '../geometry.js';

// How the kernels spread a tensor over invocations. Shared by the forward and backward
// dispatchers so both reductions, and both elementwise passes, split work the same way.

// About 32 values per reduction invocation: partials stay a small fraction of the input, and a
// real GPU still gets tens of thousands of invocations on CNN-sized tensors.
const REDUCE_ITEMS_PER_LANE = 32;
const MAX_LANES = 4096;
// Past about 64K invocations a real GPU is saturated, and every extra workgroup only adds
// scheduling cost (large on software adapters).
const TARGET_INVOCATIONS = 65536;
// At least this many rows per elementwise invocation, so loading its channel constants is amortised.
const ELEMENTWISE_MIN_ROWS = 16;
/** Adjacent elements per invocation in the contiguous access pattern of fallback adapters. */
export const CONTIGUOUS_ITEMS = 16;

/** A per-channel reduction's split (stats.wgsl, backward-reduce.wgsl). */
export interface ReductionShape {
  /** channels-first: N; channels-last: N × spatial. */
  readonly rows: number;
  /** channels-first: spatial; channels-last: C (both /4 for vec4). */
  readonly cols: number;
  readonly rowStride: number;
  /** Partials per channel. Channels-first: ≤ cols, each invocation owns columns p, p + lanes, ... */
  readonly lanes: number;
  /** Channels-first: rows per shifted block, so a block holds about STATS_BLOCK values. */
  readonly rowsPerBlock: number;
  readonly workgroups: [number, number, number];
  /** Override constants selecting the access pattern (empty for the coalesced default). */
  readonly constants: Readonly<Record<string, number>>;
}

/**
 * @param contiguous channels-first only: give each invocation runs of CONTIGUOUS_ITEMS adjacent
 *   columns (fallback adapters) instead of columns `lanes` apart (GPUs).
 */
export function reductionShape(g: Geometry, width: number, maxPerDimension: number, contiguous = false): ReductionShape {
  if (g.order === 'cf') {
    const cols = g.s / width;
    const perChannel = g.n * cols;
    // lanes ≤ cols keeps each invocation on fixed columns, so its loop has no wrap-around branch.
    const cap = Math.max(WORKGROUP_SIZE, Math.min(MAX_LANES, Math.floor(TARGET_INVOCATIONS / g.c)));
    const lanes = contiguous
      ? Math.ceil(cols / Math.max(CONTIGUOUS_ITEMS, Math.ceil(cols / MAX_LANES)))
      : Math.min(cols, cap, Math.max(1, Math.ceil(perChannel / REDUCE_ITEMS_PER_LANE)));
    const cy = Math.min(g.c, maxPerDimension);
    return {
      rows: g.n,
      cols,
      rowStride: g.c * cols,
      lanes,
      rowsPerBlock: Math.max(1, Math.floor(STATS_BLOCK / Math.ceil(cols / lanes))),
      workgroups: [Math.ceil(lanes / WORKGROUP_SIZE), cy, Math.ceil(g.c / cy)],
      constants: contiguous ? { CONTIGUOUS: 1 } : {},
    };
  }
  const cols = g.c / width;
  const rows = g.n * g.s;
  const cap = Math.max(1, Math.min(MAX_LANES, Math.floor(TARGET_INVOCATIONS / cols)));
  const lanes = Math.min(rows, cap, Math.max(1, Math.ceil(rows / REDUCE_ITEMS_PER_LANE)));
  const [gx, gy] = grid(Math.ceil((lanes * cols) / WORKGROUP_SIZE), maxPerDimension);
  return { rows, cols, rowStride: cols, lanes, rowsPerBlock: 1, workgroups: [gx, gy, 1], constants: {} };
}

/** How an elementwise pass spreads a tensor's rows × cols view over invocations (see normalize.wgsl). */
export interface ElementwiseShape {
  readonly rows: number;
  readonly cols: number;
  readonly lanes: number;
  /** Channels-first: lanes % C, the channel change per row step (0 when lanes is a multiple of C). */
  readonly laneChannelStep: number;
  /** Contiguous pattern: channels-first runs per row; channels-last column groups per row (the kernels' `blocksPerRow`). */
  readonly blocksPerRow: number;
  /** Contiguous pattern: channels-first elements per run; channels-last rows per invocation (`runLength`). */
  readonly runLength: number;
  /** Invocations the pattern needs. */
  readonly invocations: number;
  /** Override constants selecting the pattern (empty for the coalesced default). */
  readonly constants: Readonly<Record<string, number>>;
}

// Contiguous pattern (fallback adapters, where an invocation is a CPU loop): runs as long as this
// many invocations allow, since every invocation pays index maths and constant loads and the
// longest runs measured fastest (bench/README.md, "Sweep"); enough invocations remain to feed the
// adapter's worker threads.
const CONTIGUOUS_MIN_INVOCATIONS = 2048;
// Channels-last invocations each carry 16 channels' constants (in evaluation 16 square roots), so
// they split later: runs of 64 rows down to tensors of 256 × 64 row groups.
const CONTIGUOUS_MIN_INVOCATIONS_CL = 256;
// Channels-last rows per invocation, at most (the sweep's best; past it nothing more is amortised).
const CONTIGUOUS_MAX_ROWS = 64;
// Run length below which the per-invocation constants (16 channels' in evaluation, each with a
// square root) cost more than the run: channels-first vec4s per run, channels-last rows.
const CONTIGUOUS_MIN_RUN = 16;

/**
 * Rows × cols view, lane count and access pattern for elementwise kernels over `g` with
 * `width`-wide elements. `contiguous` (fallback adapters) applies to channels-first, and to
 * channels-last with vec4 elements (the scalar channels-last kernels keep the row-lane walk).
 */
export function elementwiseShape(g: Geometry, width: number, contiguous = false): ElementwiseShape {
  const rows = g.order === 'cf' ? g.n * g.c : g.n * g.s;
  const cols = g.order === 'cf' ? g.s / width : g.c / width;
  let lanes = Math.max(1, Math.min(Math.ceil(rows / ELEMENTWISE_MIN_ROWS), Math.floor(TARGET_INVOCATIONS / cols)));
  // Channels-first: a multiple of C keeps each invocation on one channel for all its rows.
  if (g.order === 'cf' && lanes >= g.c) lanes = Math.floor(lanes / g.c) * g.c;
  const laneChannelStep = g.order === 'cf' ? lanes % g.c : 0;
  const coalesced = { rows, cols, lanes, laneChannelStep, blocksPerRow: 0, runLength: 0, invocations: lanes * cols, constants: {} };
  if (!contiguous) return coalesced;
  if (g.order === 'cf') {
    const runsPerRow = Math.min(cols, Math.max(1, Math.ceil(CONTIGUOUS_MIN_INVOCATIONS / rows)));
    const runLength = Math.max(Math.min(CONTIGUOUS_MIN_RUN, cols), Math.ceil(cols / runsPerRow));
    const blocksPerRow = Math.ceil(cols / runLength);
    return { ...coalesced, blocksPerRow, runLength, invocations: rows * blocksPerRow, constants: { CONTIGUOUS: 1 } };
  }
  // Channels-last runs need whole vec4s (float32) or whole words (half precision, width 2).
  if (width !== 4 && width !== 2) return coalesced;
  const group = cols % CONTIGUOUS_COLUMN_GROUP === 0 ? CONTIGUOUS_COLUMN_GROUP : 1;
  const blocksPerRow = cols / group;
  const runLength = Math.max(
    Math.min(CONTIGUOUS_MIN_RUN, rows),
    Math.min(CONTIGUOUS_MAX_ROWS, Math.floor((rows * blocksPerRow) / CONTIGUOUS_MIN_INVOCATIONS_CL)),
  );
  const invocations = Math.ceil(rows / runLength) * blocksPerRow;
  return { ...coalesced, blocksPerRow, runLength, invocations, constants: { CONTIGUOUS: 1 } };
}

/** True when `g`'s rows are whole vec4s and every binding base is vec4-aligned. */
export function vec4Aligned(g: Geometry, ...bases: number[]): boolean {
  return (g.order === 'cf' ? g.s % 4 === 0 : g.c % 4 === 0) && bases.every((b) => b % 4 === 0);
}

/**
 * The scalar view of x that common/channel-scan.wgsl (and finalize's rescan) reads a channel
 * through: value j < xCols of segment r < xRows of channel c at xBase + r·xRowStride +
 * c·xChannelStride + j, in f32 elements.
 */
export function channelScanView(g: Geometry, base: number): UniformValues {
  return g.order === 'cf'
    ? { xRows: g.n, xCols: g.s, xRowStride: g.c * g.s, xChannelStride: g.s, xBase: base }
    : { xRows: g.n * g.s, xCols: 1, xRowStride: g.c, xChannelStride: 1, xBase: base };
}

/** The `HALF_FORMAT` override of a half dtype (shaders/common/half.wgsl). */
export function halfFormat(dtype: HalfDType): number {
  return dtype === 'float16' ? HALF_FORMAT_F16 : HALF_FORMAT_BF16;
}

/**
 * True when a half-precision tensor's rows are whole u32 words (channels-first: even spatial;
 * channels-last: even C), so the word-walking `*2h` kernels apply; false for the `anyh` entries.
 * Every tensor starts on a word (byteOffset is a multiple of 4), so only the shape decides.
 */
export function halfWordShape(g: Geometry): boolean {
  return g.order === 'cf' ? g.s % 2 === 0 : g.c % 2 === 0;
}

/**
 * Invocations (the `lanes` uniform) of the any-shape half entries (`*_anyh`): one u32 word each,
 * at most TARGET_INVOCATIONS, past which a real GPU gains nothing; each walks words i, i + lanes, ...
 */
export function halfAnyLanes(g: Geometry): number {
  return Math.max(1, Math.min(Math.ceil((g.n * g.c * g.s) / 2), TARGET_INVOCATIONS));
}
