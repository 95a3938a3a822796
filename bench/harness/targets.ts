/**
 * The issue's performance targets, as data: each is a ratio of two rows' median wall times in
 * one case, compared with a threshold. `checkTargets` evaluates them per case; the report only
 * formats the outcome.
 */
import { casesOf, findRow } from './report.js';
import { EPILOGUE_OPS, UNFUSED_EPILOGUE_OPS, plainOpOf, type ImplName, type OpName, type Row, type TargetCheck } from './types.js';

/** One row of a case: an implementation running an op. */
type RowRef = readonly [ImplName, OpName];

/** A target: `numerator / denominator` (median wall time) `direction` `threshold`. */
export interface Target {
  /** Label; `{threshold}` is replaced by the case's threshold. */
  readonly label: string;
  readonly numerator: RowRef;
  readonly denominator: RowRef;
  readonly direction: '<=' | '>=';
  readonly threshold: number;
  /** Threshold for rank-2 inputs (no spatial dimensions) when it differs. Default: `threshold`. */
  readonly thresholdRank2?: number;
  /** How the ratio is formed, for the report. */
  readonly detail: string;
}

const ours = (op: OpName): RowRef => ['webgpu-batchnorm', op];
const cpu = (op: OpName): RowRef => ['webgpu-batchnorm-cpu', op];
const FLOOR: RowRef = ['copy-floor', 'copy'];

/**
 * Per case, in report order: training forward ≤ 1.8× the copy floor on the CNN shapes (rank ≥ 3)
 * and ≤ 2.5× on rank 2; eval ≤ 1.1×; backward ≤ 2.8×; ≥ 20× faster than tfjs-webgpu's training
 * forward; ≥ 8× faster than ORT Web inference; the CPU backend no slower than js-loop (train,
 * eval, backward) and ≥ 30× faster than tfjs-cpu (train, eval).
 */
export const TARGETS: readonly Target[] = [
  {
    label: 'train <= {threshold}x floor',
    numerator: ours('train'),
    denominator: FLOOR,
    direction: '<=',
    threshold: 1.8,
    thresholdRank2: 2.5,
    detail: 'webgpu-batchnorm train / copy-floor',
  },
  {
    label: 'eval <= 1.1x floor',
    numerator: ours('eval'),
    denominator: FLOOR,
    direction: '<=',
    threshold: 1.1,
    detail: 'webgpu-batchnorm eval / copy-floor',
  },
  {
    label: 'backward <= 2.8x floor',
    numerator: ours('backward'),
    denominator: FLOOR,
    direction: '<=',
    threshold: 2.8,
    detail: 'webgpu-batchnorm backward / copy-floor',
  },
  {
    label: '>= 20x faster than tfjs-webgpu train',
    numerator: ['tfjs-webgpu', 'train'],
    denominator: ours('train'),
    direction: '>=',
    threshold: 20,
    detail: 'tfjs-webgpu train / webgpu-batchnorm train',
  },
  {
    label: '>= 8x faster than ORT-web eval',
    numerator: ['ort-webgpu', 'eval'],
    denominator: ours('eval'),
    direction: '>=',
    threshold: 8,
    detail: 'ort-webgpu eval / webgpu-batchnorm eval',
  },
  // Conventions are numbers in a uniform: the Keras preset must cost what PyTorch's does (10% is
  // the run-to-run noise of these medians on a shared machine).
  ...(['train', 'eval'] as const).map(
    (op): Target => ({
      label: `keras preset ${op} within 10% of pytorch`,
      numerator: ['webgpu-batchnorm-keras', op],
      denominator: ours(op),
      direction: '<=',
      threshold: 1.1,
      detail: `webgpu-batchnorm-keras ${op} / webgpu-batchnorm ${op}`,
    }),
  ),
  // Fused epilogues (issue #10.1): within 1.1x of plain BN, and (where an unfused baseline
  // exists, the ReLU ops) faster than the unfused passes.
  ...EPILOGUE_OPS.map(
    (op): Target => ({
      label: `${op} <= 1.1x plain ${plainOpOf(op)}`,
      numerator: ours(op),
      denominator: ours(plainOpOf(op)),
      direction: '<=',
      threshold: 1.1,
      detail: `webgpu-batchnorm ${op} / webgpu-batchnorm ${plainOpOf(op)}`,
    }),
  ),
  ...UNFUSED_EPILOGUE_OPS.flatMap((op): Target[] => [
    {
      label: `${op} fused faster than unfused`,
      numerator: ['webgpu-batchnorm-unfused', op],
      denominator: ours(op),
      direction: '>=',
      threshold: 1,
      detail: `webgpu-batchnorm-unfused ${op} / webgpu-batchnorm ${op}`,
    },
  ]),
  ...(['train', 'eval', 'backward'] as const).map(
    (op): Target => ({
      label: `cpu ${op} no slower than js-loop`,
      numerator: cpu(op),
      denominator: ['js-loop', op],
      direction: '<=',
      threshold: 1,
      detail: `webgpu-batchnorm-cpu ${op} / js-loop ${op}`,
    }),
  ),
  ...(['train', 'eval'] as const).map(
    (op): Target => ({
      label: `cpu ${op} >= 30x faster than tfjs-cpu`,
      numerator: ['tfjs-cpu', op],
      denominator: cpu(op),
      direction: '>=',
      threshold: 30,
      detail: `tfjs-cpu ${op} / webgpu-batchnorm-cpu ${op}`,
    }),
  ),
];

const okTime = (r: Row | undefined): number | null => (r && r.status === 'ok' && r.median_ms !== null ? r.median_ms : null);

/** Every target of `targets` (default TARGETS) for every case in `rows`; `pass` is null when a row is missing. */
export function checkTargets(rows: readonly Row[], targets: readonly Target[] = TARGETS): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const { shape, layout } of casesOf(rows)) {
    const time = ([impl, op]: RowRef): number | null => okTime(findRow(rows, impl, op, shape, layout));
    for (const t of targets) {
      const threshold = shape.length < 3 ? (t.thresholdRank2 ?? t.threshold) : t.threshold;
      const a = time(t.numerator);
      const b = time(t.denominator);
      const measured = a !== null && b !== null && b > 0 ? a / b : null;
      const pass = measured === null ? null : t.direction === '<=' ? measured <= threshold : measured >= threshold;
      const target = t.label.replace('{threshold}', String(threshold));
      out.push({ target, shape, layout, measured, threshold, direction: t.direction, pass, detail: t.detail });
    }
  }
  return out;
}
