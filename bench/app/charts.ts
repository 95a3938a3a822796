/**
 * Grouped bar charts on a 2D canvas drawn inside the page, no chart library: one group per
 * shape/layout case (the epilogue charts: per op and case), one bar per implementation, a log or
 * linear value axis, optional per-group target and bytes-floor marks.
 */
import { tensorPasses } from '../harness/explain.js';
import { casesOf } from '../harness/report.js';
import { plainOpOf, type EpilogueOpName, type ImplName, type LayoutName, type OpName, type Row } from '../harness/types.js';

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly values: ReadonlyArray<number | null>;
}

export interface BarChart {
  readonly title: string;
  readonly groups: readonly string[];
  readonly series: readonly Series[];
  /** Axis caption, e.g. "× copy floor". */
  readonly unit: string;
  /** Per group: a dashed target line, or null. */
  readonly targets?: ReadonlyArray<number | null>;
  readonly targetLabel?: string;
  /** Per group: a dotted grey mark where the data movement alone puts the ratio (explain.ts), or null. */
  readonly floors?: ReadonlyArray<number | null>;
  readonly floorLabel?: string;
  /** Value axis. Default 'log'; 'linear' (from 0) for ratios near 1, where a log axis hides 10 %. */
  readonly scale?: 'log' | 'linear';
  /** Linear axis only: values above this are drawn cut at the top, with their value. */
  readonly max?: number;
  /** Spans the whole width of the chart grid (many groups). */
  readonly wide?: boolean;
}

export const IMPL_COLORS: Readonly<Record<ImplName, string>> = {
  'webgpu-batchnorm': '#2563eb',
  'webgpu-batchnorm-keras': '#60a5fa',
  'webgpu-batchnorm-cpu': '#0891b2',
  'webgpu-batchnorm-unfused': '#93c5fd',
  'webgpu-batchnorm-sync': '#1e40af',
  'webgpu-batchnorm-sync-host': '#a5b4fc',
  'tfjs-webgpu': '#f97316',
  'ort-webgpu': '#7c3aed',
  'tfjs-cpu': '#ea580c',
  'js-loop': '#64748b',
  'copy-floor': '#16a34a',
  'copy-b2b': '#86efac',
  'webgpu-batchnorm-f16': '#db2777',
  'copy-floor-f16': '#4d7c0f',
};

function niceLogTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  // 1-2-5 ticks over up to three decades, powers of ten beyond (the labels would collide).
  const mantissas = Math.log10(hi / lo) > 3 ? [1] : [1, 2, 5];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of mantissas) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

/** 1, 2 or 5 times a power of ten, at least `raw`: a linear axis step. */
function niceStep(raw: number): number {
  const e = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 5, 10].find((m) => m * e >= raw) ?? 10) * e;
}

function label(v: number): string {
  if (v === 0) return '0';
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Draws `chart` into `canvas` at the canvas's CSS size × devicePixelRatio. */
export function drawBarChart(canvas: HTMLCanvasElement, chart: BarChart): void {
  const dpr = globalThis.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 640;
  const cssH = canvas.clientHeight || 300;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  const g = canvas.getContext('2d');
  if (!g) return;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  g.fillStyle = '#fff';
  g.fillRect(0, 0, cssW, cssH);

  const left = 52;
  const right = 10;
  // Room above the plot for the values of bars cut at `max`.
  const top = chart.max === undefined ? 44 : 62;
  const bottom = 42;
  const w = cssW - left - right;
  const h = cssH - top - bottom;

  g.fillStyle = '#1d2330';
  g.font = '600 13px system-ui, sans-serif';
  g.textBaseline = 'top';
  g.fillText(chart.title, left, 6);

  // Legend.
  g.font = '11px system-ui, sans-serif';
  let lx = left;
  for (const s of chart.series) {
    g.fillStyle = s.color;
    g.fillRect(lx, 26, 10, 10);
    g.fillStyle = '#3c4556';
    g.fillText(s.name, lx + 14, 25);
    lx += g.measureText(s.name).width + 30;
  }
  if (chart.targets?.some((t) => t !== null)) {
    g.strokeStyle = '#dc2626';
    g.setLineDash([4, 3]);
    g.beginPath();
    g.moveTo(lx, 31);
    g.lineTo(lx + 16, 31);
    g.stroke();
    g.setLineDash([]);
    g.fillStyle = '#3c4556';
    g.fillText(chart.targetLabel ?? 'target', lx + 20, 25);
    lx += g.measureText(chart.targetLabel ?? 'target').width + 36;
  }
  if (chart.floors?.some((f) => f !== null)) {
    g.strokeStyle = '#6b7280';
    g.setLineDash([1, 2]);
    g.lineWidth = 2;
    g.beginPath();
    g.moveTo(lx, 31);
    g.lineTo(lx + 16, 31);
    g.stroke();
    g.setLineDash([]);
    g.lineWidth = 1;
    g.fillStyle = '#3c4556';
    g.fillText(chart.floorLabel ?? 'bytes floor', lx + 20, 25);
  }

  const values = chart.series.flatMap((s) => s.values.filter((v): v is number => v !== null && v > 0));
  const marks = [...(chart.targets ?? []), ...(chart.floors ?? [])].filter((v): v is number => v !== null && v > 0);
  if (values.length === 0) {
    g.fillStyle = '#8a93a3';
    g.fillText('no data (yet)', left + 8, top + h / 2);
    return;
  }
  let lo = Math.min(...values, ...marks);
  let hi = Math.max(...values, ...marks);
  let y: (v: number) => number;
  let ticks: number[];
  if (chart.scale === 'linear') {
    lo = 0;
    // An outlier would flatten every other bar: cut the axis at `max`, the cut bars say so.
    if (chart.max !== undefined) hi = Math.min(hi, chart.max);
    const step = niceStep(hi / 5);
    hi = Math.ceil((hi * 1.08) / step) * step;
    y = (v) => top + h - (v / hi) * h;
    ticks = Array.from({ length: Math.round(hi / step) + 1 }, (_, i) => i * step);
  } else {
    lo = 10 ** Math.floor(Math.log10(lo));
    hi = 10 ** Math.ceil(Math.log10(hi * 1.05));
    if (hi / lo < 10) hi = lo * 10;
    y = (v) => top + h - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * h;
    ticks = niceLogTicks(lo, hi);
  }

  // Axis and grid.
  g.strokeStyle = '#eceff3';
  g.fillStyle = '#5b6475';
  g.textBaseline = 'middle';
  g.textAlign = 'right';
  for (const t of ticks) {
    g.beginPath();
    g.moveTo(left, y(t));
    g.lineTo(left + w, y(t));
    g.stroke();
    g.fillText(label(t), left - 4, y(t));
  }
  g.save();
  g.translate(12, top + h / 2);
  g.rotate(-Math.PI / 2);
  g.textAlign = 'center';
  g.fillText(chart.scale === 'linear' ? chart.unit : `${chart.unit} (log)`, 0, 0);
  g.restore();

  const groupW = w / chart.groups.length;
  const barW = Math.max(3, Math.min(26, (groupW * 0.8) / chart.series.length));
  for (const [gi, name] of chart.groups.entries()) {
    const x0 = left + gi * groupW + (groupW - barW * chart.series.length) / 2;
    for (const [si, s] of chart.series.entries()) {
      const v = s.values[gi] ?? null;
      const x = x0 + si * barW;
      if (v === null || !(v > 0)) {
        g.fillStyle = '#b8bec9';
        g.textAlign = 'center';
        g.textBaseline = 'bottom';
        g.font = '9px system-ui, sans-serif';
        g.fillText('n/a', x + barW / 2, top + h - 2);
        continue;
      }
      const cut = chart.scale === 'linear' && v > hi;
      const yv = cut ? top : y(v);
      g.fillStyle = s.color;
      g.fillRect(x + 1, yv, barW - 2, top + h - yv);
      g.fillStyle = cut ? '#b3261e' : '#1d2330';
      g.font = '9px system-ui, sans-serif';
      g.textAlign = 'center';
      g.textBaseline = 'bottom';
      // Cut values of neighbouring bars alternate between two lines so they never overlap.
      g.fillText(cut ? `${label(v)}↑` : label(v), x + barW / 2, yv - 1 - (cut ? (si % 2) * 10 : 0));
    }
    const floor = chart.floors?.[gi] ?? null;
    if (floor !== null) {
      g.strokeStyle = '#6b7280';
      g.setLineDash([1, 2]);
      g.lineWidth = 2;
      g.beginPath();
      g.moveTo(left + gi * groupW + 4, y(floor));
      g.lineTo(left + (gi + 1) * groupW - 4, y(floor));
      g.stroke();
      g.setLineDash([]);
      g.lineWidth = 1;
    }
    const target = chart.targets?.[gi] ?? null;
    if (target !== null) {
      g.strokeStyle = '#dc2626';
      g.setLineDash([4, 3]);
      g.beginPath();
      g.moveTo(left + gi * groupW + 4, y(target));
      g.lineTo(left + (gi + 1) * groupW - 4, y(target));
      g.stroke();
      g.setLineDash([]);
    }
    g.fillStyle = '#3c4556';
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const lines = name.split('\n');
    // Shrink the group label until its widest line fits the group.
    let size = 10.5;
    for (; size > 7; size -= 0.5) {
      g.font = `${size}px system-ui, sans-serif`;
      if (Math.max(...lines.map((l) => g.measureText(l).width)) <= groupW - 4) break;
    }
    for (const [li, line] of lines.entries()) g.fillText(line, left + gi * groupW + groupW / 2, top + h + 6 + li * (size + 2.5));
  }
  g.strokeStyle = '#9aa3b2';
  g.beginPath();
  g.moveTo(left, top);
  g.lineTo(left, top + h);
  g.lineTo(left + w, top + h);
  g.stroke();
}

function caseLabel(shape: readonly number[], layout: LayoutName): string {
  return `${shape.join('×')}\n${layout === 'channels_last' ? 'channels_last' : 'channels_first'}`;
}

const FORWARD_EPILOGUES: readonly EpilogueOpName[] = [
  'train+relu',
  'train+add+relu',
  'train+gelu',
  'train+sigmoid',
  'eval+relu',
  'eval+add+relu',
];
const BACKWARD_EPILOGUES: readonly EpilogueOpName[] = ['backward+relu', 'backward+add+relu', 'backward+gelu', 'backward+sigmoid'];

const layoutTag = (layout: LayoutName): string => (layout === 'channels_last' ? 'CL' : 'CF');

/**
 * A fused-epilogue chart: one group per op and case (only those with a fused row yet), fused and
 * unfused bars as multiples of plain BN's time in the same case, the 1.1× target, and the bytes
 * floor of the fused op (its tensor passes over plain BN's: where 1.1× is out of reach).
 */
function epilogueChart(rows: readonly Row[], ops: readonly EpilogueOpName[], title: string): BarChart {
  const ok = (impl: ImplName, op: OpName, shape: readonly number[], layout: LayoutName): Row | undefined =>
    rows.find((r) => r.impl === impl && r.op === op && r.layout === layout && r.shape.join() === shape.join() && r.status === 'ok');
  const groups: Array<{ op: EpilogueOpName; shape: number[]; layout: LayoutName }> = [];
  for (const c of casesOf(rows)) for (const op of ops) if (ok('webgpu-batchnorm', op, c.shape, c.layout)) groups.push({ op, ...c });
  const ratio = (impl: ImplName, g: (typeof groups)[number]): number | null => {
    const plain = ok('webgpu-batchnorm', plainOpOf(g.op), g.shape, g.layout)?.median_ms;
    const t = ok(impl, g.op, g.shape, g.layout)?.median_ms;
    return plain && t ? t / plain : null;
  };
  const floor = (op: EpilogueOpName): number | null => {
    const a = tensorPasses('webgpu-batchnorm', op);
    const b = tensorPasses('webgpu-batchnorm', plainOpOf(op));
    return a !== null && b !== null ? a / b : null;
  };
  return {
    title,
    groups: groups.map((g) => `${g.op}\n${g.shape.join('×')} ${layoutTag(g.layout)}`),
    unit: '× plain BN',
    scale: 'linear',
    max: 3,
    wide: true,
    series: (['webgpu-batchnorm', 'webgpu-batchnorm-unfused'] as const).map((impl) => ({
      name: impl === 'webgpu-batchnorm' ? 'fused (webgpu-batchnorm)' : 'unfused (plain BN + separate passes)',
      color: IMPL_COLORS[impl],
      values: groups.map((g) => ratio(impl, g)),
    })),
    targets: groups.map(() => 1.1),
    targetLabel: 'target 1.1× plain',
    floors: groups.map((g) => floor(g.op)),
    floorLabel: 'bytes floor (tensor passes / plain)',
  };
}

/** The page's charts, from whatever rows exist so far: six per op and backend, then the two epilogue charts. */
export function chartsFor(rows: readonly Row[]): BarChart[] {
  const cases = casesOf(rows);
  const groups = cases.map((c) => caseLabel(c.shape, c.layout));
  const value = (impl: ImplName, op: OpName, key: 'ratio_to_floor' | 'median_ms'): Array<number | null> =>
    cases.map((c) => {
      const r = rows.find(
        (x) => x.impl === impl && x.op === op && x.layout === c.layout && x.shape.join() === c.shape.join() && x.status === 'ok',
      );
      return r ? r[key] : null;
    });
  const series = (impls: readonly ImplName[], op: OpName, key: 'ratio_to_floor' | 'median_ms'): Series[] =>
    impls.map((impl) => ({ name: impl, color: IMPL_COLORS[impl], values: value(impl, op, key) }));
  return [
    {
      title: 'WebGPU training forward: time / copy floor',
      groups,
      unit: '× copy floor',
      series: series(['webgpu-batchnorm', 'webgpu-batchnorm-keras', 'tfjs-webgpu'], 'train', 'ratio_to_floor'),
      targets: cases.map((c) => (c.shape.length >= 3 ? 1.8 : 2.5)),
      targetLabel: 'target (1.8×, 2.5× rank 2)',
    },
    {
      title: 'WebGPU eval forward: time / copy floor',
      groups,
      unit: '× copy floor',
      series: series(['webgpu-batchnorm', 'webgpu-batchnorm-keras', 'tfjs-webgpu', 'ort-webgpu'], 'eval', 'ratio_to_floor'),
      targets: cases.map(() => 1.1),
      targetLabel: 'target 1.1×',
    },
    {
      title: 'WebGPU backward: time / copy floor',
      groups,
      unit: '× copy floor',
      series: series(['webgpu-batchnorm'], 'backward', 'ratio_to_floor'),
      targets: cases.map(() => 2.8),
      targetLabel: 'target 2.8×',
    },
    {
      title: 'CPU training forward: median ms per iteration',
      groups,
      unit: 'ms',
      series: series(['webgpu-batchnorm-cpu', 'js-loop', 'tfjs-cpu'], 'train', 'median_ms'),
    },
    {
      title: 'CPU eval forward: median ms per iteration',
      groups,
      unit: 'ms',
      series: series(['webgpu-batchnorm-cpu', 'js-loop', 'tfjs-cpu'], 'eval', 'median_ms'),
    },
    {
      title: 'CPU backward: median ms per iteration',
      groups,
      unit: 'ms',
      series: series(['webgpu-batchnorm-cpu', 'js-loop'], 'backward', 'median_ms'),
    },
    epilogueChart(rows, FORWARD_EPILOGUES, 'Fused epilogues, forward: time / plain BN of the same case'),
    epilogueChart(rows, BACKWARD_EPILOGUES, 'Fused epilogues, backward: time / plain BN backward of the same case'),
  ];
}
