/**
 * Ratios and the plain-text report (table, target checklist, metadata); shared by the page, the
 * browser runner (which prints what the page computed) and the Node runner. The targets
 * themselves are data in targets.ts.
 */
import { EPILOGUE_OPS, type BenchResult, type ImplName, type LayoutName, type OpName, type Row, type TargetCheck } from './types.js';

const sameCase = (a: Row, shape: readonly number[], layout: LayoutName): boolean =>
  a.layout === layout && a.shape.length === shape.length && a.shape.every((d, i) => d === shape[i]);

/** The row of `impl` × `op` for one case, if it ran. */
export function findRow(rows: readonly Row[], impl: ImplName, op: OpName, shape: readonly number[], layout: LayoutName): Row | undefined {
  return rows.find((r) => r.impl === impl && r.op === op && sameCase(r, shape, layout));
}

/** Fills ratio_to_floor and gpu_ratio_to_floor from the case's `copy-floor` row. */
export function addRatios(rows: Row[]): void {
  for (const row of rows) {
    // float16 rows move half the bytes: their floor is the copy of a float16 tensor.
    const half = row.impl.endsWith('-f16');
    if (half && row.impl !== 'copy-floor-f16' && row.median_ms !== null) {
      const f32 = findRow(rows, 'webgpu-batchnorm', row.op, row.shape, row.layout);
      if (f32?.status === 'ok' && f32.median_ms) row.ratio_to_f32 = row.median_ms / f32.median_ms;
    }
    const floor = findRow(rows, half ? 'copy-floor-f16' : 'copy-floor', 'copy', row.shape, row.layout);
    if (floor?.status !== 'ok') continue;
    if (row.median_ms !== null && floor.median_ms) row.ratio_to_floor = row.median_ms / floor.median_ms;
    if (row.gpu_ms !== null && floor.gpu_ms) row.gpu_ratio_to_floor = row.gpu_ms / floor.gpu_ms;
  }
}

/** Distinct (shape, layout) cases in order of first appearance. */
export function casesOf(rows: readonly Row[]): Array<{ shape: number[]; layout: LayoutName }> {
  const out: Array<{ shape: number[]; layout: LayoutName }> = [];
  for (const r of rows) if (!out.some((c) => sameCase(r, c.shape, c.layout))) out.push({ shape: r.shape, layout: r.layout });
  return out;
}

const OP_ORDER: readonly OpName[] = ['copy', 'train', 'eval', 'backward', ...EPILOGUE_OPS, 'sync-step'];
const IMPL_ORDER: readonly ImplName[] = [
  'copy-floor',
  'copy-b2b',
  'copy-floor-f16',
  'webgpu-batchnorm',
  'webgpu-batchnorm-f16',
  'webgpu-batchnorm-keras',
  'webgpu-batchnorm-unfused',
  'webgpu-batchnorm-sync',
  'webgpu-batchnorm-sync-host',
  'tfjs-webgpu',
  'ort-webgpu',
  'webgpu-batchnorm-cpu',
  'tfjs-cpu',
  'js-loop',
];

function fmt(v: number | null, digits = 2): string {
  if (v === null || !Number.isFinite(v)) return '-';
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  if (Math.abs(v) >= 100) return v.toFixed(Math.max(0, digits - 2));
  if (Math.abs(v) >= 10) return v.toFixed(Math.max(0, digits - 1));
  return v.toFixed(digits);
}

function pad(cells: readonly string[], widths: readonly number[], right: readonly boolean[]): string {
  return cells.map((c, i) => (right[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ');
}

/** Rows of one case sorted op-major in table order. */
export function sortRows(rows: readonly Row[]): Row[] {
  return [...rows].sort(
    (a, b) => OP_ORDER.indexOf(a.op) - OP_ORDER.indexOf(b.op) || IMPL_ORDER.indexOf(a.impl) - IMPL_ORDER.indexOf(b.impl),
  );
}

/** The results as a fixed-width table, one block per case. */
export function formatTable(result: BenchResult): string {
  const head = ['op', 'impl', 'status', 'median ms', 'x floor', 'min..max ms', 'n x K', 'gpu ms', 'gpu x floor', 'max_err'];
  const right = [false, false, false, true, true, true, true, true, true, true];
  const lines: string[] = [];
  for (const { shape, layout } of casesOf(result.rows)) {
    const caseRows = sortRows(result.rows.filter((r) => sameCase(r, shape, layout)));
    const mib = (caseRows[0]?.tensor_bytes ?? 0) / 2 ** 20;
    const body = caseRows.map((r) => [
      r.op,
      r.impl,
      r.status,
      fmt(r.median_ms),
      r.ratio_to_floor === null ? '-' : `${fmt(r.ratio_to_floor)}x`,
      r.min_ms === null ? '-' : `${fmt(r.min_ms)}..${fmt(r.max_ms)}`,
      r.samples ? `${r.samples}x${r.iterations}` : '-',
      fmt(r.gpu_ms),
      r.gpu_ratio_to_floor === null ? '-' : `${fmt(r.gpu_ratio_to_floor)}x`,
      r.max_err === null ? '-' : r.max_err.toExponential(1),
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
    lines.push('');
    lines.push(`[${shape.join(', ')}] ${layout}  (${mib.toFixed(1)} MiB per tensor)`);
    lines.push(pad(head, widths, right));
    lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const b of body) lines.push(pad(b, widths, right));
    const notes = caseRows.filter((r) => r.status !== 'ok' && r.reason);
    for (const r of notes) lines.push(`  ${r.impl} ${r.op}: ${r.reason ?? ''}`);
    const half = caseRows.filter((r) => r.ratio_to_f32 !== undefined);
    if (half.length) {
      lines.push(`  float16 (x floor = copy-floor-f16): ${half.map((r) => `${r.op} ${fmt(r.ratio_to_f32 ?? null)}x float32`).join(', ')}`);
    }
  }
  return lines.join('\n');
}

/** The checklist's columns per target: verdict, target, case, measured, needed. */
function targetCells(t: TargetCheck): string[] {
  return [
    t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'MISS',
    t.target,
    `[${t.shape.join(',')}] ${t.layout === 'channels_last' ? 'CL' : 'CF'}`,
    t.measured === null ? '-' : `${fmt(t.measured)}x`,
    `${t.direction} ${t.threshold}x`,
  ];
}

/**
 * The target checklist as text: one line per target, a miss (or n/a) with its reason after it
 * unless `withReasons` is false (the page shows them beside the line itself), and a summary line.
 */
export function formatTargets(targets: readonly TargetCheck[], withReasons = true): string {
  const head = ['', 'target', 'case', 'measured', 'needed'];
  const body = targets.map(targetCells);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const right = [false, false, false, true, false];
  const pass = targets.filter((t) => t.pass === true).length;
  const miss = targets.filter((t) => t.pass === false).length;
  const na = targets.filter((t) => t.pass === null).length;
  return [
    'Targets (median wall time; CF = channels_first, CL = channels_last):',
    pad(head, widths, right),
    ...body.map((b, i) => {
      const reason = withReasons ? targets[i]?.reason : undefined;
      return reason ? `${pad(b, widths, right)}  -- ${reason}` : pad(b, widths, right).trimEnd();
    }),
    `${pass} pass, ${miss} miss, ${na} n/a`,
  ].join('\n');
}

/** Header lines describing where the run happened. */
export function formatMeta(result: BenchResult): string {
  const m = result.meta;
  const a = m.adapter;
  return [
    `environment: ${m.environment}  date: ${m.date}  run: ${m.run_seconds.toFixed(0)} s`,
    `agent: ${m.browser}${m.browser_version ? ` (${m.browser_version})` : ''}`,
    `adapter: ${a ? `${a.vendor || '?'} / ${a.architecture || '?'}${a.device ? ` / ${a.device}` : ''}${a.description ? ` / ${a.description}` : ''}${a.is_fallback_adapter ? ' (fallback adapter)' : ''}` : 'none'}; timestamp-query: ${m.timestamp_query ? 'yes' : 'no'}`,
    `shared GPUDevice: tfjs ${String(m.shared_device.tfjs)}, ort ${String(m.shared_device.ort)}; samples ${m.config.samples}, target ${m.config.target_sample_ms} ms per GPU sample, ${m.config.target_cpu_sample_ms} ms per CPU sample`,
    `versions: ${Object.entries(m.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    ...m.notes.map((n) => `note: ${n}`),
  ].join('\n');
}

/**
 * The WebGPU path checked against the CPU path: both outputs were compared with the same float64
 * reference before timing, so |webgpu − cpu| ≤ max_err(webgpu) + max_err(cpu) (relative to
 * max(1, max|ref|)). Agreement is required to 1e-5, far inside the 1e-3 timing gate.
 */
export function formatCpuCheck(rows: readonly Row[]): string {
  const lines = ['WebGPU path vs CPU path (each vs the float64 reference; bound on |webgpu - cpu|):'];
  let worst = 0;
  for (const { shape, layout } of casesOf(rows)) {
    const parts: string[] = [];
    for (const op of ['train', 'eval', 'backward'] as const) {
      const gpu = findRow(rows, 'webgpu-batchnorm', op, shape, layout);
      const cpu = findRow(rows, 'webgpu-batchnorm-cpu', op, shape, layout);
      if (gpu?.max_err == null || cpu?.max_err == null) continue;
      const bound = gpu.max_err + cpu.max_err;
      worst = Math.max(worst, bound);
      parts.push(`${op} ${bound.toExponential(1)}`);
    }
    if (parts.length) lines.push(`  [${shape.join(',')}] ${layout}: ${parts.join(', ')}`);
  }
  lines.push(`${worst <= 1e-5 ? 'AGREE' : 'DISAGREE'}  WebGPU and CPU paths within ${worst.toExponential(1)} (required 1e-5)`);
  return lines.join('\n');
}

/** Everything a runner prints at the end. */
export function formatReport(result: BenchResult): string {
  return [formatMeta(result), formatTable(result), '', formatCpuCheck(result.rows), '', formatTargets(result.targets)].join('\n');
}
