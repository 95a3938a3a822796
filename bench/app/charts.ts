/**
 * Grouped bar charts on a 2D canvas, no chart library: one group per shape/layout case, one bar
 * per implementation, log-scale value axis, optional per-group target marks.
 */
import type { ImplName, LayoutName, OpName, Row } from '../harness/types.js';
import { casesOf } from '../harness/report.js';

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

function label(v: number): string {
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
  const top = 44;
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
  }

  const values = chart.series.flatMap((s) => s.values.filter((v): v is number => v !== null && v > 0));
  const targets = (chart.targets ?? []).filter((v): v is number => v !== null && v > 0);
  if (values.length === 0) {
    g.fillStyle = '#8a93a3';
    g.fillText('no data (yet)', left + 8, top + h / 2);
    return;
  }
  let lo = Math.min(...values, ...targets);
  let hi = Math.max(...values, ...targets);
  lo = 10 ** Math.floor(Math.log10(lo));
  hi = 10 ** Math.ceil(Math.log10(hi * 1.05));
  if (hi / lo < 10) hi = lo * 10;
  const y = (v: number): number => top + h - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * h;

  // Axis and grid.
  g.strokeStyle = '#eceff3';
  g.fillStyle = '#5b6475';
  g.textBaseline = 'middle';
  g.textAlign = 'right';
  for (const t of niceLogTicks(lo, hi)) {
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
  g.fillText(`${chart.unit} (log)`, 0, 0);
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
      g.fillStyle = s.color;
      g.fillRect(x + 1, y(v), barW - 2, top + h - y(v));
      g.fillStyle = '#1d2330';
      g.font = '9px system-ui, sans-serif';
      g.textAlign = 'center';
      g.textBaseline = 'bottom';
      g.fillText(label(v), x + barW / 2, y(v) - 1);
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

/** The page's six charts, from whatever rows exist so far. */
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
  ];
}
