/**
 * The issue's performance targets, as data: each is a ratio of two rows' median wall times in
 * one case, compared with a threshold. `checkTargets` evaluates them per case; the report only
 * formats the outcome.
 */
import {
  explainCpuSpeedup,
  explainCpuVsLoop,
  explainFusedVsUnfused,
  explainGpuSpeedup,
  explainMissingRow,
  explainSameWork,
  explainTimeRatio,
  type Explain,
} from './explain.js';
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
  /** The one-line reason shown next to a miss, from the case's rows (explain.ts). */
  readonly explain: Explain;
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
    explain: explainTimeRatio,
  },
  {
    label: 'eval <= 1.1x floor',
    numerator: ours('eval'),
    denominator: FLOOR,
    direction: '<=',
    threshold: 1.1,
    detail: 'webgpu-batchnorm eval / copy-floor',
    explain: explainTimeRatio,
  },
  {
    label: 'backward <= 2.8x floor',
    numerator: ours('backward'),
    denominator: FLOOR,
    direction: '<=',
    threshold: 2.8,
    detail: 'webgpu-batchnorm backward / copy-floor',
    explain: explainTimeRatio,
  },
  {
    label: '>= 20x faster than tfjs-webgpu train',
    numerator: ['tfjs-webgpu', 'train'],
    denominator: ours('train'),
    direction: '>=',
    threshold: 20,
    detail: 'tfjs-webgpu train / webgpu-batchnorm train',
    explain: explainGpuSpeedup,
  },
  {
    label: '>= 8x faster than ORT-web eval',
    numerator: ['ort-webgpu', 'eval'],
    denominator: ours('eval'),
    direction: '>=',
    threshold: 8,
    detail: 'ort-webgpu eval / webgpu-batchnorm eval',
    explain: explainGpuSpeedup,
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
      explain: explainSameWork,
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
      explain: explainTimeRatio,
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
      explain: explainFusedVsUnfused,
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
      explain: explainCpuVsLoop,
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
      explain: explainCpuSpeedup,
    }),
  ),
];

const okTime = (r: Row | undefined): number | null => (r && r.status === 'ok' && r.median_ms !== null ? r.median_ms : null);

/**
 * Every target of `targets` (default TARGETS) for every case in `rows`; `pass` is null when a row
 * is missing. A miss, and a target that could not be evaluated, carries its `reason`.
 * `fallbackAdapter`: the WebGPU adapter's name when it was a fallback (software) one, else null.
 */
export function checkTargets(
  rows: readonly Row[],
  targets: readonly Target[] = TARGETS,
  fallbackAdapter: string | null = null,
): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const { shape, layout } of casesOf(rows)) {
    const row = ([impl, op]: RowRef): Row | undefined => findRow(rows, impl, op, shape, layout);
    const caseRows = rows.filter((r) => r.layout === layout && r.shape.join() === shape.join());
    for (const t of targets) {
      const threshold = shape.length < 3 ? (t.thresholdRank2 ?? t.threshold) : t.threshold;
      const numerator = row(t.numerator);
      const denominator = row(t.denominator);
      const a = okTime(numerator);
      const b = okTime(denominator);
      const measured = a !== null && b !== null && b > 0 ? a / b : null;
      const pass = measured === null ? null : t.direction === '<=' ? measured <= threshold : measured >= threshold;
      const target = t.label.replace('{threshold}', String(threshold));
      const check: TargetCheck = { target, shape, layout, measured, threshold, direction: t.direction, pass, detail: t.detail };
      if (pass === false && numerator && denominator && measured !== null) {
        check.reason = t.explain({ numerator, denominator, measured, threshold, caseRows, fallbackAdapter });
      } else if (pass === null) {
        check.reason = a === null ? explainMissingRow(...t.numerator, numerator) : explainMissingRow(...t.denominator, denominator);
      }
      out.push(check);
    }
  }
  return out;
}
