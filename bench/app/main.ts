/**
 * The benchmark page (index.html → this module). Runs bench/harness in the browser on
 * navigator.gpu, shows progress, rows, charts and the target checklist as they come, and talks to
 * bench/run-browser.mjs through the console:
 *
 *   [bench] <text>              a log line
 *   [bench:progress] <json>     a {@link Progress}
 *   [bench:done]                `window.__bench.result` / `.report` are ready
 *   [bench:error] <text>        the run failed; `window.__bench.error` says why
 *
 * URL parameters: `samples`, `target` (ms per sample), `cases=quick` (two small cases), `impls`
 * (comma-separated subset), `autorun=0`.
 */
import * as lib from '../../src/index.js';
import pkg from '../../package.json';
import { DEFAULT_CASES, MAIN_CASES, runBenchmark, type BenchEnvironment, type BenchOptions } from '../harness/run.js';
import { formatMeta, formatReport, formatTargets, sortRows } from '../harness/report.js';
import type { BenchResult, ImplName, Progress, Row } from '../harness/types.js';
import { chartsFor, drawBarChart } from './charts.js';
import { runTrainingExample } from '../../examples/training.js';
import { cnnSummary } from './cnn-summary.js';

interface BenchState {
  state: 'idle' | 'running' | 'done' | 'error';
  result?: BenchResult;
  report?: string;
  error?: string;
}

declare global {
  interface Window {
    __bench: BenchState;
  }
}

window.__bench = { state: 'idle' };

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no #${id}`);
  return e as T;
}

const logBox = el<HTMLDivElement>('log');
const statusText = el<HTMLDivElement>('status-text');
const progressBar = el<HTMLProgressElement>('progress');
const metaBox = el<HTMLDivElement>('meta');
const targetsBox = el<HTMLDivElement>('targets-text');
const chartsBox = el<HTMLDivElement>('charts');
const tbody = el<HTMLTableElement>('results').tBodies[0] as HTMLTableSectionElement;

function log(line: string): void {
  console.log(`[bench] ${line}`);
  logBox.textContent += `${line}\n`;
  logBox.scrollTop = logBox.scrollHeight;
}

let lastProgressLog = '';
function showProgress(p: Progress): void {
  progressBar.value = p.total ? p.done / p.total : 0;
  const pct = p.total ? ((100 * p.done) / p.total).toFixed(0) : '0';
  const what = p.impl ? `${p.impl} ${p.op ?? ''}` : '';
  statusText.textContent = `case ${p.caseIndex}/${p.caseCount}  [${p.shape.join(', ')}] ${p.layout}\n${p.phase}  ${what}   (${p.done}/${p.total} steps, ${pct}%)`;
  const key = `${p.caseIndex}|${p.phase}|${p.impl ?? ''}|${p.op ?? ''}`;
  if (key !== lastProgressLog) {
    lastProgressLog = key;
    console.log(`[bench:progress] ${JSON.stringify(p)}`);
  }
}

const rows: Row[] = [];
const canvases: HTMLCanvasElement[] = [];

function redrawCharts(): void {
  const charts = chartsFor(rows);
  while (canvases.length < charts.length) {
    const c = document.createElement('canvas');
    chartsBox.appendChild(c);
    canvases.push(c);
  }
  charts.forEach((chart, i) => {
    const canvas = canvases[i] as HTMLCanvasElement;
    // Many groups (op × case): the whole row of the grid.
    canvas.classList.toggle('wide', chart.wide === true);
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', chart.title);
    drawBarChart(canvas, chart);
  });
}

const fmt = (v: number | null, d = 2): string => (v === null ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(d));

function renderRows(): void {
  tbody.replaceChildren();
  const keys: string[] = [];
  for (const r of rows) {
    const k = `${r.shape.join('x')}|${r.layout}`;
    if (!keys.includes(k)) keys.push(k);
  }
  for (const k of keys) {
    const caseRows = sortRows(rows.filter((r) => `${r.shape.join('x')}|${r.layout}` === k));
    const first = caseRows[0];
    if (!first) continue;
    const head = tbody.insertRow();
    head.className = 'case';
    const cell = head.insertCell();
    cell.colSpan = 12;
    cell.textContent = `[${first.shape.join(', ')}] ${first.layout} — ${(first.tensor_bytes / 2 ** 20).toFixed(1)} MiB per tensor`;
    for (const r of caseRows) {
      const tr = tbody.insertRow();
      const cells = [
        r.op,
        r.impl,
        r.status,
        r.layout === 'channels_last' ? 'CL' : 'CF',
        fmt(r.median_ms),
        r.ratio_to_floor === null ? '–' : `${fmt(r.ratio_to_floor)}×`,
        r.min_ms === null ? '–' : `${fmt(r.min_ms)}…${fmt(r.max_ms)}`,
        r.q1_ms === null ? '–' : `${fmt(r.q1_ms)}…${fmt(r.q3_ms)}`,
        r.samples ? `${r.samples}×${r.iterations}` : '–',
        fmt(r.gpu_ms),
        r.gpu_ratio_to_floor === null ? '–' : `${fmt(r.gpu_ratio_to_floor)}×`,
        r.max_err === null ? '–' : r.max_err.toExponential(1),
      ];
      for (const [i, text] of cells.entries()) {
        const td = tr.insertCell();
        td.textContent = text;
        if (i === 2) td.className = r.status;
      }
      const why = r.reason ?? r.note;
      if (why) tr.title = why;
    }
  }
}

/** The checklist, one line per target; a MISS (and an n/a) with its one-line reason next to it. */
function renderTargets(result: BenchResult): void {
  targetsBox.replaceChildren();
  const [title = '', head = '', ...rest] = formatTargets(result.targets, false).split('\n');
  const summary = rest.pop() ?? '';
  for (const text of [title, head]) targetsBox.appendChild(Object.assign(document.createElement('div'), { textContent: text }));
  rest.forEach((line, i) => {
    const t = result.targets[i];
    const div = document.createElement('div');
    div.textContent = line;
    if (t?.pass === true) div.className = 'pass';
    if (t?.pass === false) div.className = 'miss';
    if (t?.reason) {
      const why = document.createElement('span');
      why.className = 'why';
      why.textContent = `  ${t.reason}`;
      div.appendChild(why);
    }
    targetsBox.appendChild(div);
  });
  targetsBox.appendChild(Object.assign(document.createElement('div'), { textContent: summary }));
}

/** GPU sample target of the default (main-rows) run, in ms. */
const MAIN_TARGET_SAMPLE_MS = 250;

function options(): BenchOptions {
  const q = new URLSearchParams(location.search);
  const o: BenchOptions = {};
  const samples = Number(q.get('samples'));
  if (samples > 0) o.samples = samples;
  const full = q.get('cases') === 'full';
  const target = Number(q.get('target'));
  // The default run (the main rows) aims each GPU sample at 250 ms, so `npm start` stays within 3
  // minutes on 2 cores with every capability's row; it still amortizes a 10–60 ms submit round
  // trip over K iterations. `--full` keeps the harness default (400 ms).
  if (target > 0) o.targetSampleMs = target;
  else if (!full) o.targetSampleMs = MAIN_TARGET_SAMPLE_MS;
  // The main rows unless the full run is asked for (`cases=full`; `cases=quick` is the old name of the default).
  o.cases = full ? DEFAULT_CASES : MAIN_CASES;
  const impls = q.get('impls');
  if (impls) o.impls = impls.split(',').filter(Boolean) as ImplName[];
  return o;
}

const env: BenchEnvironment = {
  name: 'browser',
  lib,
  gpu: navigator.gpu ?? null,
  ...(navigator.gpu ? {} : { gpuError: 'navigator.gpu is missing (WebGPU disabled, or not a secure context)' }),
  agent: navigator.userAgent,
  hardwareConcurrency: navigator.hardwareConcurrency ?? null,
  crossOriginIsolated: globalThis.crossOriginIsolated ?? null,
  versions: { 'webgpu-batchnorm': pkg.version },
  async loadSync() {
    return import('../../src/sync/index.js');
  },
  async loadTfjs() {
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-cpu');
    try {
      const webgpu = await import('@tensorflow/tfjs-backend-webgpu');
      return { tf, WebGPUBackend: webgpu.WebGPUBackend };
    } catch (err) {
      return { tf, WebGPUBackend: null, webgpuError: `@tensorflow/tfjs-backend-webgpu did not load: ${String(err)}` };
    }
  },
  async loadOrt() {
    return await import('onnxruntime-web');
  },
  log,
  progress: showProgress,
  row(r) {
    rows.push(r);
    renderRows();
    redrawCharts();
  },
  idle: () => new Promise((resolve) => setTimeout(resolve, 0)),
};

/**
 * The training example of examples/ in this page: the same MLP on two spirals trained on WebGPU
 * with and without BatchNorm, one submit per step, the loss read back every 25 steps.
 */
async function trainingSummary(): Promise<string> {
  const ctx = await lib.createContext({ backend: 'webgpu' });
  try {
    const lines = ['Training example (examples/training.ts, 2-32-32-2 MLP on two spirals, 300 SGD steps, WebGPU):'];
    for (const useBatchNorm of [true, false]) {
      const r = await runTrainingExample(ctx, { steps: 300, useBatchNorm });
      lines.push(
        `  ${useBatchNorm ? 'with BatchNorm   ' : 'without BatchNorm'}: loss ${r.firstLoss.toFixed(3)} -> ${r.finalLoss.toFixed(3)}, ` +
          `eval accuracy ${(100 * r.accuracy).toFixed(1)} %, ${r.msPerStep.toFixed(1)} ms/step, ` +
          `GPU buffers ${r.buffersCreated.afterWarmup} -> ${r.buffersCreated.afterLastStep}`,
      );
    }
    const text = lines.join('\n');
    log(text);
    return text;
  } finally {
    ctx.destroy();
  }
}

async function main(): Promise<void> {
  window.__bench = { state: 'running' };
  redrawCharts();
  try {
    const result = await runBenchmark(env, options());
    statusText.textContent = 'training example (examples/training.ts) on WebGPU ...';
    const training = await trainingSummary();
    statusText.textContent = 'CNN example (examples/cnn) on WebGPU ...';
    const report = `${formatReport(result)}\n\n${training}\n\n${await cnnSummary(log)}`;
    metaBox.textContent = formatMeta(result);
    renderTargets(result);
    redrawCharts();
    statusText.textContent = `done in ${result.meta.run_seconds.toFixed(0)} s`;
    progressBar.value = 1;
    window.__bench = { state: 'done', result, report };
    document.title = 'webgpu-batchnorm benchmark (done)';
    console.log('[bench:done]');
  } catch (err) {
    const message = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err);
    statusText.textContent = `failed: ${message}`;
    window.__bench = { state: 'error', error: message };
    console.log(`[bench:error] ${message}`);
  }
}

if (new URLSearchParams(location.search).get('autorun') !== '0') void main();
