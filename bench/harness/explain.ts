/**
 * Why a target missed, in one line, from the rows of its case: the bytes each op moves (a
 * bandwidth floor no kernel can beat), the spread of the two rows (when their interquartile
 * ranges overlap the gap is noise), what the peer's own time allows, and whether the WebGPU
 * adapter is a fallback (software) one, where every kernel is a CPU loop. targets.ts attaches one
 * of these to each target; nothing here is specific to a run.
 */
import type { EpilogueOpName, ImplName, OpName, Row } from './types.js';

/**
 * Tensor-sized reads + writes of one iteration (float32, the size of x), the README's "Cost"
 * table: plain training reads x twice (statistics, normalize) and writes y; evaluation reads x and
 * writes y; backward reads x and dy in its reduction and x, dy again while writing dx. A residual
 * is one more read; the ReLU backward reads the saved output y (twice without a residual, once
 * with, its first pass storing the masked gradient as gradResidual for the second); GELU and
 * sigmoid recompute the pre-activation and read no output. Unfused: plain BN, then each separate
 * vec4 pass reads and writes whole tensors (unfused-epilogue.wgsl). Ops a variant does not run are
 * absent.
 */
const OURS_PASSES: Readonly<Record<Exclude<OpName, 'copy'>, number>> = {
  train: 3,
  eval: 2,
  backward: 5,
  'train+relu': 3,
  'eval+relu': 2,
  'backward+relu': 7,
  'train+add+relu': 4,
  'eval+add+relu': 3,
  'backward+add+relu': 7,
  'train+gelu': 3,
  'backward+gelu': 5,
  'train+sigmoid': 3,
  'backward+sigmoid': 5,
  // One SyncBatchNorm step: the forward's 3 passes and the backward's 5 (the merges are per channel).
  'sync-step': 8,
};
const UNFUSED_PASSES: Readonly<Partial<Record<EpilogueOpName, number>>> = {
  'train+relu': 5,
  'eval+relu': 4,
  'backward+relu': 8,
  'train+add+relu': 8,
  'eval+add+relu': 7,
  'backward+add+relu': 8,
};

/** Tensor passes of `impl` running `op` (copy floors: one read, one write), or null where unmodelled. */
export function tensorPasses(impl: ImplName, op: OpName): number | null {
  if (op === 'copy') return 2;
  if (impl === 'webgpu-batchnorm-unfused') return UNFUSED_PASSES[op as EpilogueOpName] ?? null;
  if (impl === 'webgpu-batchnorm' || impl === 'webgpu-batchnorm-keras' || impl === 'webgpu-batchnorm-cpu' || impl === 'js-loop') {
    return OURS_PASSES[op];
  }
  return null;
}

/** Implementations whose time is WebGPU work (on a fallback adapter: CPU loops). */
const GPU_IMPLS: ReadonlySet<ImplName> = new Set<ImplName>([
  'webgpu-batchnorm',
  'webgpu-batchnorm-keras',
  'webgpu-batchnorm-unfused',
  'tfjs-webgpu',
  'ort-webgpu',
  'copy-floor',
  'copy-b2b',
]);

/** What a target's explanation is given: the two rows it divides, and the case around them. */
export interface MissContext {
  readonly numerator: Row;
  readonly denominator: Row;
  readonly measured: number;
  readonly threshold: number;
  /** Every row of the case (for the peers' own ratios). */
  readonly caseRows: readonly Row[];
  /** The WebGPU adapter's name when it is a fallback (software) adapter; null otherwise or when unknown. */
  readonly fallbackAdapter: string | null;
}

/** Explains a missed target from its {@link MissContext}. */
export type Explain = (m: MissContext) => string;

const x = (v: number): string => `${v >= 10 ? v.toFixed(1) : v.toFixed(2)}×`;
const ms = (v: number | null): string => (v === null ? '?' : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** The two rows' interquartile ranges overlap: their medians differ by less than the run's own spread. */
function quartilesOverlap(a: Row, b: Row): boolean {
  if (a.q1_ms === null || a.q3_ms === null || b.q1_ms === null || b.q3_ms === null) return false;
  return a.q1_ms <= b.q3_ms && b.q1_ms <= a.q3_ms;
}

/** max / min of a row's samples. */
const spread = (r: Row): string => (r.min_ms && r.max_ms ? x(r.max_ms / r.min_ms) : '?');

function noiseNote(a: Row, b: Row): string | null {
  if (!quartilesOverlap(a, b)) return null;
  return `within noise: the quartiles overlap (${ms(a.q1_ms)}–${ms(a.q3_ms)} vs ${ms(b.q1_ms)}–${ms(b.q3_ms)} ms)`;
}

/** On a fallback adapter, a WebGPU row times CPU loops: the prefix every GPU explanation carries. */
function adapterNote(m: MissContext): string | null {
  if (m.fallbackAdapter === null || !(GPU_IMPLS.has(m.numerator.impl) || GPU_IMPLS.has(m.denominator.impl))) return null;
  return `fallback adapter (${m.fallbackAdapter}): kernels are CPU loops, ALU and barriers are not hidden behind memory`;
}

/** The work of a whole BN op beyond its bytes: what its time over the copy's buys. */
function baseWorkOf(op: OpName): string {
  if (op.startsWith('train')) return "the statistics' shifted block sums and a finalize: 3 dispatches";
  if (op.startsWith('backward')) return 'two per-channel reductions (Σdy, Σdy·(x − mean)) and a finalize: 3 dispatches';
  return 'per-element index maths and a square root per channel';
}

/** The work an epilogue adds to plain BN's invocations beyond its bytes. */
function epilogueWorkOf(op: OpName): string {
  const backward = op.startsWith('backward');
  if (op.endsWith('gelu')) return backward ? 'recomputing the pre-activation and an erf and exp per element' : 'an erf per element';
  if (op.endsWith('sigmoid')) return backward ? 'recomputing the pre-activation and an exp per element' : 'an exp per element';
  if (backward) return 'the mask from the saved output per element';
  return op.includes('+add') ? 'an add and a max per element' : 'a max per element';
}

/** What `numerator` does beyond its bytes compared with `denominator`. */
function extraWork(numerator: OpName, denominator: OpName): string {
  return denominator === 'copy' || numerator === denominator ? baseWorkOf(numerator) : epilogueWorkOf(numerator);
}

const oneLine = (parts: ReadonlyArray<string | null>): string => parts.filter((p): p is string => p !== null).join('; ');

/**
 * `numerator / denominator ≤ threshold` where both rows move a known number of tensors: the
 * bytes floor of the ratio first (a threshold below it cannot be met by any kernel), then noise,
 * then the compute the op does beyond its bytes.
 */
export const explainTimeRatio: Explain = (m) => {
  const a = tensorPasses(m.numerator.impl, m.numerator.op);
  const b = tensorPasses(m.denominator.impl, m.denominator.op);
  const floor = a !== null && b !== null ? a / b : null;
  const bytes =
    floor === null
      ? null
      : `${m.numerator.op} moves ${a} tensors to ${m.denominator.op}'s ${b}: bytes floor ${x(floor)}` +
        (floor > m.threshold ? `, above the ${x(m.threshold)} target (unreachable by design)` : '');
  const noise = noiseNote(m.numerator, m.denominator);
  if (noise) return oneLine([bytes, noise]);
  // Within 10 % of the bytes floor, the bytes are the whole story.
  if (floor !== null && m.measured <= floor * 1.1) return oneLine([bytes, adapterNote(m)]);
  const beyond =
    floor === null
      ? null
      : `the other ${x(Math.max(0, m.measured - floor))} is ${extraWork(m.numerator.op, m.denominator.op)}` +
        // Far above its floor: show how much the samples themselves scattered.
        (m.measured > 2 * floor ? ` (samples spread ${spread(m.numerator)} and ${spread(m.denominator)}, max/min)` : '');
  return oneLine([bytes, beyond, adapterNote(m)]);
};

/** Same kernels, different uniform values (the Keras preset): a gap can only be noise or drift. */
export const explainSameWork: Explain = (m) => {
  const noise = noiseNote(m.numerator, m.denominator);
  return oneLine([
    'same kernels and dispatches as the PyTorch preset (only uniform values differ)',
    noise ?? `so the gap is load drift between samples: samples spread ${spread(m.numerator)} and ${spread(m.denominator)} (max/min)`,
  ]);
};

/** `unfused / fused ≥ 1`: what the fused kernel saves in bytes, and whether the rows are apart at all. */
export const explainFusedVsUnfused: Explain = (m) => {
  const u = tensorPasses(m.numerator.impl, m.numerator.op);
  const f = tensorPasses(m.denominator.impl, m.denominator.op);
  const saves = u !== null && f !== null ? `unfused moves ${u} tensors to fused's ${f} (at most ${x(u / f)} to gain)` : null;
  return oneLine([
    saves,
    noiseNote(m.numerator, m.denominator) ??
      `fused does ${epilogueWorkOf(m.denominator.op)} inside BN's passes, which costs more than the saved bytes here`,
    adapterNote(m),
  ]);
};

/**
 * `peer / ours ≥ threshold` on WebGPU: meeting it needs ours at peer / threshold of the copy
 * floor; below our own bytes floor that is unreachable whatever the kernels do.
 */
export const explainGpuSpeedup: Explain = (m) => {
  const peer = m.numerator;
  const ours = m.denominator;
  const passes = tensorPasses(ours.impl, ours.op);
  if (peer.ratio_to_floor === null || ours.ratio_to_floor === null || passes === null) {
    return oneLine([`${peer.impl} is ${x(m.measured)} our time`, adapterNote(m)]);
  }
  const needed = peer.ratio_to_floor / m.threshold;
  const floor = passes / 2;
  const head = `${peer.impl} ${peer.op} runs at ${x(peer.ratio_to_floor)} the copy floor, so ${x(m.threshold)} faster needs ours at ${x(needed)}`;
  if (needed < floor)
    return oneLine([`${head}: below our bytes floor of ${x(floor)} (${passes} tensor passes, unreachable)`, adapterNote(m)]);
  return oneLine([`${head}, ours is at ${x(ours.ratio_to_floor)} (${baseWorkOf(ours.op)})`, adapterNote(m)]);
};

/** `cpu / js-loop ≤ 1`: the same passes over the same bytes; the difference is the loops themselves. */
export const explainCpuVsLoop: Explain = (m) =>
  oneLine([
    `same ${tensorPasses(m.numerator.impl, m.numerator.op) ?? '?'} tensor passes`,
    noiseNote(m.numerator, m.denominator) ??
      "the library's loops are generic over layout and array type and keep shifted float64 sums (exact for |mean| ≫ std), js-loop's are specialised float64 Σx, Σx²",
  ]);

/**
 * `tfjs-cpu / ours-cpu ≥ threshold`: how far the bare js-loop is ahead of tfjs-cpu in this case
 * bounds what any JS implementation can show.
 */
export const explainCpuSpeedup: Explain = (m) => {
  const loop = m.caseRows.find((r) => r.impl === 'js-loop' && r.op === m.denominator.op && r.status === 'ok');
  if (!loop?.median_ms || m.numerator.median_ms === null) return `${m.numerator.impl} is ${x(m.measured)} our time`;
  const k = m.numerator.median_ms / loop.median_ms;
  return k < m.threshold
    ? `even the bare js-loop is only ${x(k)} faster than ${m.numerator.impl} ${m.numerator.op} here: ${x(m.threshold)} would mean beating a plain loop by ${x(m.threshold / k)}`
    : `js-loop is ${x(k)} faster than ${m.numerator.impl}, ours ${x(m.measured)}`;
};

/** Why a target could not be evaluated: the row it needs did not run, or did not pass its check. */
export function explainMissingRow(impl: ImplName, op: OpName, row: Row | undefined): string {
  if (!row) return `no ${impl} ${op} row (not run: --impls, or not in this case)`;
  return `${impl} ${op} is ${row.status}${row.reason ? `: ${row.reason}` : ''}`;
}
