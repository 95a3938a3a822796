/**
 * The benchmark, independent of where it runs: the page (bench/app/main.ts) and the Node runner
 * (bench/node/main.ts) each hand {@link runBenchmark} an environment (the library module, a
 * `GPU`, loaders for tfjs and ONNX Runtime, a log) and get a {@link BenchResult} back.
 *
 * Stages: `setUp` (one shared device, a warm-up, the library's contexts, the peers); per
 * shape/layout case `prepareCase` (inputs, float64 references, implementations), `calibrate`
 * (every implementation checked once against the reference — a wrong one is reported, not timed
 * — then K iterations per sample chosen so one sample takes about `targetSampleMs`, K ≤ the
 * GPU/CPU cap), `measure` (`samples` interleaved rounds: each round runs every implementation
 * once, in an order rotated from round to round, so drift and background load hit all of them
 * alike) and `summarizeCase` (medians, ratios to the copy floor); finally `summarizeRun` (metadata
 * and the targets of targets.ts).
 */
import type * as Library from '../../src/index.js';
import { makeCaseData } from './data.js';
import { CopyFloorKernel, createSharedGpu, createTensorBuffer, submitTimed, TimestampSpan, type SharedGpu } from './gpu.js';
import { describeError, isImpl, unavailableSet, type CaseContext, type Impl, type ImplSet, type Unavailable } from './impl.js';
import { createCopies } from './impl-copy.js';
import { createJsLoop } from './impl-js.js';
import { createOrt, setUpOrt, type OrtModule, type OrtRuntime } from './impl-ort.js';
import { createOursCpu, createOursGpu } from './impl-ours.js';
import { createHalfGpu } from './impl-half.js';
import { createEpilogueGpu } from './impl-epilogue.js';
import { createSyncGpu } from './impl-sync.js';
import { createTfjs, setUpTfjs, type TfjsModules, type TfjsRuntime } from './impl-tfjs.js';
import { addRatios } from './report.js';
import { checkTargets } from './targets.js';
import { summarize } from './stats.js';
import {
  EPILOGUE_OPS,
  UNFUSED_EPILOGUE_OPS,
  type BenchConfig,
  type BenchMeta,
  type BenchResult,
  type ImplName,
  type LayoutName,
  type LibraryModule,
  type OpName,
  type Progress,
  type Row,
  type SyncLibraryModule,
} from './types.js';

/** The shapes of the issue, each in both layouts where a layout exists (rank ≥ 3). */
export const DEFAULT_CASES: ReadonlyArray<{ shape: number[]; layout: LayoutName }> = [
  { shape: [32, 64, 56, 56], layout: 'channels_first' },
  { shape: [32, 64, 56, 56], layout: 'channels_last' },
  { shape: [8, 256, 28, 28], layout: 'channels_first' },
  { shape: [8, 256, 28, 28], layout: 'channels_last' },
  { shape: [256, 1024], layout: 'channels_first' },
  { shape: [16, 32, 16, 32, 32], layout: 'channels_first' },
  { shape: [16, 32, 16, 32, 32], layout: 'channels_last' },
];

/**
 * The main rows, what `npm start` runs by default (a few minutes on 2 cores): one CNN activation
 * and one linear layer's input, channels-first. `--full` runs {@link DEFAULT_CASES}.
 */
export const MAIN_CASES: ReadonlyArray<{ shape: number[]; layout: LayoutName }> = DEFAULT_CASES.filter(
  (c) => c.layout === 'channels_first' && (c.shape.join() === '8,256,28,28' || c.shape.join() === '256,1024'),
);

/** Where the benchmark runs; see bench/app/main.ts and bench/node/main.ts. */
export interface BenchEnvironment {
  readonly name: 'browser' | 'node';
  readonly lib: LibraryModule;
  /** navigator.gpu, Dawn's GPU in Node, or null with `gpuError`. */
  readonly gpu: GPU | null;
  readonly gpuError?: string;
  /** navigator.userAgent, or a description of the Node process. */
  readonly agent: string;
  readonly hardwareConcurrency: number | null;
  readonly crossOriginIsolated: boolean | null;
  /** Versions the environment knows (library, Dawn, Node, ...). */
  readonly versions: Readonly<Record<string, string>>;
  readonly notes?: readonly string[];
  loadTfjs(): Promise<TfjsModules>;
  loadOrt(): Promise<OrtModule>;
  /** The `webgpu-batchnorm/sync` entry, for the SyncBatchNorm rows. */
  loadSync(): Promise<SyncLibraryModule>;
  log(line: string): void;
  progress?(p: Progress): void;
  /** Called for every finished row (the page draws them as they come). */
  row?(row: Row): void;
  /** Lets the page repaint between samples. */
  idle?(): Promise<void>;
}

export interface BenchOptions {
  cases?: ReadonlyArray<{ shape: number[]; layout: LayoutName }>;
  /** Timed samples per implementation; at least 5 for the report's medians. Default 5. */
  samples?: number;
  /**
   * Wall time one GPU sample aims at. Default 400 ms: a submit → onSubmittedWorkDone round trip
   * costs a browser 10–60 ms on SwiftShader, which K iterations per sample must amortize.
   */
  targetSampleMs?: number;
  /** Wall time one CPU sample aims at (no round trip to amortize). Default 150 ms. */
  targetCpuSampleMs?: number;
  /** Cap on K for GPU work. Default 256. */
  maxIterationsGpu?: number;
  /** Cap on K for CPU work. Default 64. */
  maxIterationsCpu?: number;
  /** Bound on max |out − ref| / max(1, max |ref|). Default 1e-3. */
  tolerance?: number;
  /** Run only these implementations (the floors always run). Default all. */
  impls?: readonly ImplName[];
}

/** Implementations × ops a case runs, in table order; used for progress totals. */
const PLAN: ReadonlyArray<readonly [ImplName, readonly OpName[]]> = [
  ['copy-floor', ['copy']],
  ['copy-b2b', ['copy']],
  ['webgpu-batchnorm', ['train', 'eval', 'backward', ...EPILOGUE_OPS]],
  ['webgpu-batchnorm-keras', ['train', 'eval']],
  ['webgpu-batchnorm-unfused', UNFUSED_EPILOGUE_OPS],
  ['copy-floor-f16', ['copy']],
  ['webgpu-batchnorm-f16', ['train', 'eval', 'backward']],
  ['webgpu-batchnorm-sync', ['sync-step']],
  ['webgpu-batchnorm-sync-host', ['sync-step']],
  ['tfjs-webgpu', ['train', 'eval']],
  ['ort-webgpu', ['eval']],
  ['webgpu-batchnorm-cpu', ['train', 'eval', 'backward']],
  ['tfjs-cpu', ['train', 'eval']],
  ['js-loop', ['train', 'eval', 'backward']],
];

const now = (): number => performance.now();
/** A check slower than this means one iteration takes seconds: no separate calibration run. */
const SLOW_CHECK_MS = 5000;
const round4 = (v: number): number => Number(v.toPrecision(4));

function emptyRow(impl: ImplName, op: OpName, shape: number[], layout: LayoutName, tensorBytes: number): Row {
  return {
    impl,
    op,
    shape,
    layout,
    status: 'ok',
    median_ms: null,
    ratio_to_floor: null,
    min_ms: null,
    max_ms: null,
    q1_ms: null,
    q3_ms: null,
    samples: 0,
    iterations: 0,
    gpu_ms: null,
    gpu_ratio_to_floor: null,
    max_err: null,
    tolerance: null,
    tensor_bytes: tensorBytes,
  };
}

function adapterMeta(gpu: SharedGpu | null): BenchMeta['adapter'] {
  const info = gpu?.adapterInfo;
  if (!info) return null;
  const fallback = (info as { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    is_fallback_adapter: typeof fallback === 'boolean' ? fallback : null,
  };
}

/** Options with their defaults applied. */
interface Settings {
  readonly cases: ReadonlyArray<{ shape: number[]; layout: LayoutName }>;
  readonly samples: number;
  readonly targetMs: number;
  readonly targetCpuMs: number;
  readonly maxGpu: number;
  readonly maxCpu: number;
  readonly tolerance: number;
  /** Implementations to run (the floors always), or null for all. */
  readonly only: ReadonlySet<ImplName> | null;
}

function settingsOf(options: BenchOptions): Settings {
  return {
    cases: options.cases ?? DEFAULT_CASES,
    samples: Math.max(1, Math.floor(options.samples ?? 5)),
    targetMs: options.targetSampleMs ?? 400,
    targetCpuMs: options.targetCpuSampleMs ?? 150,
    maxGpu: options.maxIterationsGpu ?? 256,
    maxCpu: options.maxIterationsCpu ?? 64,
    tolerance: options.tolerance ?? 1e-3,
    // The floors their rows are measured against come along: copy-floor-f16 with the float16 rows.
    only: options.impls
      ? new Set<ImplName>([
          'copy-floor',
          'copy-b2b',
          ...(options.impls.includes('webgpu-batchnorm-f16') ? (['copy-floor-f16'] as const) : []),
          ...options.impls,
        ])
      : null,
  };
}

/** Progress for the page: steps done of the run's total, and what runs now. */
class ProgressTracker {
  readonly state: Progress;
  /** Steps per case: check, calibration and one per sample, for every implementation × op. */
  readonly stepsPerCase: number;
  readonly #env: BenchEnvironment;

  constructor(env: BenchEnvironment, settings: Settings) {
    this.#env = env;
    const only = settings.only;
    this.stepsPerCase = PLAN.reduce((a, [impl, ops]) => a + (only && !only.has(impl) ? 0 : ops.length), 0) * (settings.samples + 2);
    this.state = {
      done: 0,
      total: this.stepsPerCase * settings.cases.length,
      caseIndex: 0,
      caseCount: settings.cases.length,
      shape: [],
      layout: 'channels_first',
      phase: 'starting',
      impl: null,
      op: null,
    };
  }

  report(phase: string, impl: ImplName | null, op: OpName | null): void {
    this.state.phase = phase;
    this.state.impl = impl;
    this.state.op = op;
    this.#env.progress?.({ ...this.state, shape: [...this.state.shape] });
  }
}

/** What every case shares: one device, the library's contexts, the peers. */
interface Session {
  readonly env: BenchEnvironment;
  readonly settings: Settings;
  readonly gpu: SharedGpu | null;
  readonly span: TimestampSpan | null;
  readonly adapter: BenchMeta['adapter'];
  readonly ctxGpu: Library.BatchNormContext | null;
  readonly ctxCpu: Library.BatchNormContext;
  readonly tf: TfjsRuntime | null;
  readonly tfError: string | null;
  readonly ort: OrtRuntime | null;
  readonly ortError: string | null;
  readonly notes: string[];
  readonly progress: ProgressTracker;
}

/** One device for everybody, warmed up; the library's two contexts; tfjs and ORT if wanted. */
async function setUp(env: BenchEnvironment, settings: Settings): Promise<Session> {
  const log = env.log;
  const only = settings.only;
  const notes: string[] = [...(env.notes ?? [])];
  let gpu: SharedGpu | null = null;
  let gpuReason = env.gpuError ?? (env.gpu ? null : 'no WebGPU in this environment');
  if (env.gpu) {
    try {
      gpu = await createSharedGpu(env.gpu);
    } catch (err) {
      gpuReason = `no WebGPU device: ${describeError(err)}`;
    }
  }
  if (gpuReason) notes.push(gpuReason);
  const adapter = adapterMeta(gpu);
  if (adapter?.is_fallback_adapter) {
    // A software adapter runs every invocation as a CPU loop: say so wherever the numbers appear.
    notes.push(
      `CPU emulation: the WebGPU adapter (${adapter.vendor || '?'} / ${adapter.architecture || '?'}) is a fallback (software) adapter, so every WebGPU row times CPU loops, not a GPU; ratios to the copy floor on the same adapter still compare kernels, absolute times do not predict a GPU`,
    );
  }
  log(
    gpu
      ? `adapter: ${adapter ? `${adapter.vendor} / ${adapter.architecture}${adapter.description ? ` / ${adapter.description}` : ''}${adapter.is_fallback_adapter ? ' (fallback adapter)' : ''}` : 'unknown'}; timestamp-query: ${gpu.timestamps ? 'yes' : 'no'}`
      : `WebGPU unavailable: ${gpuReason ?? ''}`,
  );
  const span = gpu?.timestamps ? new TimestampSpan(gpu.device) : null;
  if (gpu) {
    // One-time costs (the software GPU starting up, lazy initialisation) belong to nobody's check.
    const n = 1 << 18;
    const src = createTensorBuffer(gpu.device, 'bench.warmup.src', n * 4, new Float32Array(n));
    const dst = createTensorBuffer(gpu.device, 'bench.warmup.dst', n * 4);
    const kernel = new CopyFloorKernel(gpu.device, src, dst, n);
    await submitTimed(gpu.device, 'bench.warmup', (e) => kernel.encode(e, 2), span);
    kernel.destroy();
    src.destroy();
    dst.destroy();
  }

  const lib = env.lib;
  let ctxGpu: Library.BatchNormContext | null = null;
  if (gpu) {
    try {
      ctxGpu = await lib.createContext({ backend: 'webgpu', device: gpu.device });
    } catch (err) {
      notes.push(`createContext({ backend: 'webgpu', device }) failed: ${describeError(err)}`);
    }
  }
  const ctxCpu = await lib.createContext({ backend: 'cpu' });

  let tf: TfjsRuntime | null = null;
  let tfError: string | null = null;
  if (!only || only.has('tfjs-webgpu') || only.has('tfjs-cpu')) {
    try {
      tf = await setUpTfjs(await env.loadTfjs(), gpu);
      log(
        `tfjs ${tf.version}: webgpu ${tf.webgpu ? 'on the shared device' : `unavailable (${tf.webgpuReason ?? ''})`}; cpu ${tf.cpuReason ?? 'ok'}`,
      );
    } catch (err) {
      tfError = `tfjs did not load: ${describeError(err)}`;
      log(tfError);
    }
  }
  let ort: OrtRuntime | null = null;
  let ortError: string | null = null;
  if (!only || only.has('ort-webgpu')) {
    try {
      ort = setUpOrt(await env.loadOrt(), gpu);
      log(`onnxruntime-web ${ort.version} loaded`);
    } catch (err) {
      ortError = `onnxruntime-web did not load: ${describeError(err)}`;
      log(ortError);
    }
  }
  return {
    env,
    settings,
    gpu,
    span,
    adapter,
    ctxGpu,
    ctxCpu,
    tf,
    tfError,
    ort,
    ortError,
    notes,
    progress: new ProgressTracker(env, settings),
  };
}

/** One shape/layout case: its data, its GPU inputs and every implementation × op. */
interface CaseRun {
  readonly shape: number[];
  readonly layout: LayoutName;
  readonly bytes: number;
  readonly xBuffer: GPUBuffer | null;
  readonly dyBuffer: GPUBuffer | null;
  readonly sets: readonly ImplSet[];
  readonly items: ReadonlyArray<Impl | Unavailable>;
  /** One row per item, in item order. */
  readonly rows: Row[];
}

/** An implementation that passed its check, with its K and its samples. */
interface Active {
  impl: Impl;
  row: Row;
  k: number;
  times: number[];
  gpuTimes: number[];
}

/** Builds the case's inputs and float64 references, and sets up every implementation on them. */
async function prepareCase(session: Session, kase: { shape: number[]; layout: LayoutName }, caseNumber: number): Promise<CaseRun> {
  const { env, gpu, span, settings, progress } = session;
  const shape = [...kase.shape];
  const layout = kase.layout;
  progress.state.caseIndex = caseNumber + 1;
  progress.state.shape = shape;
  progress.state.layout = layout;
  const label = `[${shape.join(', ')}] ${layout}`;
  progress.report('preparing data and float64 references', null, null);
  env.log(
    `case ${caseNumber + 1}/${settings.cases.length}: ${label} (${((shape.reduce((a, b) => a * b, 1) * 4) / 2 ** 20).toFixed(1)} MiB per tensor)`,
  );
  const data = makeCaseData(shape, layout);
  const bytes = data.geometry.size * 4;
  const xBuffer = gpu ? createTensorBuffer(gpu.device, 'bench.x', bytes, data.x) : null;
  const dyBuffer = gpu ? createTensorBuffer(gpu.device, 'bench.dy', bytes, data.dy) : null;
  const cc: CaseContext = { shape, layout, data, lib: env.lib, gpu, span, xBuffer, dyBuffer };

  const { tf, tfError, ort, ortError, ctxGpu, ctxCpu } = session;
  const sets: ImplSet[] = [];
  const make = async (impl: ImplName, ops: readonly OpName[], factory: () => ImplSet | Promise<ImplSet>): Promise<void> => {
    if (settings.only && !settings.only.has(impl)) return;
    try {
      sets.push(await factory());
    } catch (err) {
      sets.push(unavailableSet(impl, ops, `setup failed: ${describeError(err)}`));
    }
  };
  await make('copy-floor', ['copy'], () => createCopies(cc));
  await make('webgpu-batchnorm', ['train', 'eval', 'backward'], () => createOursGpu(cc, ctxGpu));
  await make('webgpu-batchnorm-keras', ['train', 'eval'], () => createOursGpu(cc, ctxGpu, 'keras'));
  await make('webgpu-batchnorm', EPILOGUE_OPS, () => createEpilogueGpu(cc, ctxGpu, 'fused'));
  await make('webgpu-batchnorm-unfused', UNFUSED_EPILOGUE_OPS, () => createEpilogueGpu(cc, ctxGpu, 'unfused'));
  // One set holds two implementations (the float16 floor and ours), so a failed setup reports both.
  if (!settings.only || settings.only.has('webgpu-batchnorm-f16') || settings.only.has('copy-floor-f16')) {
    try {
      sets.push(await createHalfGpu(cc, ctxGpu));
    } catch (err) {
      const why = `setup failed: ${describeError(err)}`;
      sets.push(
        unavailableSet('copy-floor-f16', ['copy'], why),
        unavailableSet('webgpu-batchnorm-f16', ['train', 'eval', 'backward'], why),
      );
    }
  }
  if (!settings.only || settings.only.has('webgpu-batchnorm-sync') || settings.only.has('webgpu-batchnorm-sync-host')) {
    let sync: SyncLibraryModule | null = null;
    let syncError = '';
    try {
      sync = await env.loadSync();
    } catch (err) {
      syncError = describeError(err);
    }
    for (const which of ['encode', 'host'] as const) {
      const impl = which === 'encode' ? 'webgpu-batchnorm-sync' : 'webgpu-batchnorm-sync-host';
      await make(impl, ['sync-step'], () =>
        sync ? createSyncGpu(cc, ctxGpu, sync, which) : unavailableSet(impl, ['sync-step'], `the sync entry did not load: ${syncError}`),
      );
    }
  }
  await make('tfjs-webgpu', ['train', 'eval'], () => createTfjs(cc, tf, 'webgpu', tfError));
  await make('ort-webgpu', ['eval'], () => createOrt(cc, ort, ortError));
  await make('webgpu-batchnorm-cpu', ['train', 'eval', 'backward'], () => createOursCpu(cc, ctxCpu));
  await make('tfjs-cpu', ['train', 'eval'], () => createTfjs(cc, tf, 'cpu', tfError));
  await make('js-loop', ['train', 'eval', 'backward'], () => createJsLoop(cc));
  const items = sets.flatMap((s) => [...s.items]);
  const rows = items.map((item) => emptyRow(item.impl, item.op, shape, layout, bytes));
  return { shape, layout, bytes, xBuffer, dyBuffer, sets, items, rows };
}

/**
 * Checks every implementation once against the float64 reference, then grows its K until one
 * sample (K iterations, one submit and drain) takes about the target, so the fixed cost per sample
 * is amortized; the last run is the warm-up at the final K. An implementation whose check alone
 * took over SLOW_CHECK_MS runs K = 1 without more warm-up (the check was its warm-up):
 * tfjs-webgpu's training forward takes seconds here. Returns those that may be timed.
 */
async function calibrate(session: Session, run: CaseRun): Promise<Active[]> {
  const { env, settings, progress } = session;
  const { samples, tolerance } = settings;
  const log = env.log;
  const active: Active[] = [];
  for (const [index, item] of run.items.entries()) {
    const row = run.rows[index] as Row;
    if (!isImpl(item)) {
      row.status = 'unavailable';
      row.reason = item.reason;
      progress.state.done += samples + 2;
      log(`  ${item.impl} ${item.op}: unavailable (${item.reason})`);
      continue;
    }
    row.tolerance = tolerance;
    progress.report('checking against the float64 reference', item.impl, item.op);
    let err: number;
    let verifyMs: number;
    try {
      const t0 = now();
      err = await item.verify();
      verifyMs = now() - t0;
    } catch (e) {
      row.status = 'error';
      row.reason = `check failed: ${describeError(e)}`;
      progress.state.done += samples + 2;
      log(`  ${item.impl} ${item.op}: ERROR ${row.reason}`);
      continue;
    }
    progress.state.done++;
    // After the check: some implementations settle how they run during it (the floor's race).
    if (item.note) row.note = item.note;
    row.max_err = Number.isNaN(err) ? null : err;
    if (!(err <= tolerance)) {
      row.status = 'wrong';
      row.reason = Number.isNaN(err) ? 'output has NaN/Inf or the wrong length' : `max_err ${err.toExponential(2)} > ${tolerance}`;
      progress.state.done += samples + 1;
      log(`  ${item.impl} ${item.op}: WRONG (${row.reason}); not timed`);
      continue;
    }
    progress.report('calibrating', item.impl, item.op);
    try {
      const { k, trail } = await chooseIterations(item, verifyMs, settings);
      active.push({ impl: item, row, k, times: [], gpuTimes: [] });
      log(`  ${item.impl} ${item.op}: ok (max_err ${err.toExponential(2)}); calibration ${trail.join(', ')} -> K = ${k}`);
    } catch (e) {
      row.status = 'error';
      row.reason = `warm-up failed: ${describeError(e)}`;
      progress.state.done += samples + 1;
      log(`  ${item.impl} ${item.op}: ERROR ${row.reason}`);
      continue;
    }
    progress.state.done++;
    await env.idle?.();
  }
  return active;
}

/** K for one implementation (see `calibrate`), with the timings that led to it. */
async function chooseIterations(item: Impl, verifyMs: number, settings: Settings): Promise<{ k: number; trail: string[] }> {
  const target = item.kind === 'gpu' ? settings.targetMs : settings.targetCpuMs;
  const cap = item.kind === 'gpu' ? settings.maxGpu : settings.maxCpu;
  const timeRun = async (iterations: number): Promise<number> => {
    await item.prepare?.();
    const t0 = now();
    await item.run(iterations);
    return Math.max(now() - t0, 0.01);
  };
  let k = 1;
  let t = verifyMs;
  const trail: string[] = [];
  if (verifyMs < Math.max(SLOW_CHECK_MS, 2 * target)) {
    t = await timeRun(1);
    trail.push(`K=1: ${t.toFixed(1)} ms`);
    for (let step = 0; step < 6 && t < 0.6 * target && k < cap; step++) {
      k = Math.min(cap, Math.max(2 * k, Math.ceil((k * target) / t)));
      t = await timeRun(k);
      trail.push(`K=${k}: ${t.toFixed(1)} ms`);
    }
  } else {
    trail.push(`check took ${verifyMs.toFixed(0)} ms`);
  }
  return { k, trail };
}

/** `samples` rounds; each runs every still-ok implementation once, the order rotated per round. */
async function measure(session: Session, active: readonly Active[]): Promise<void> {
  const { env, settings, progress } = session;
  const samples = settings.samples;
  for (let round = 0; round < samples; round++) {
    const order = active.filter((a) => a.row.status === 'ok');
    const shift = order.length ? round % order.length : 0;
    const rotated = [...order.slice(shift), ...order.slice(0, shift)];
    for (const a of rotated) {
      progress.report(`round ${round + 1}/${samples}`, a.impl.impl, a.impl.op);
      try {
        await a.impl.prepare?.();
        const t0 = now();
        const gpuMs = await a.impl.run(a.k);
        a.times.push((now() - t0) / a.k);
        if (gpuMs !== null) a.gpuTimes.push(gpuMs / a.k);
      } catch (e) {
        a.row.status = 'error';
        a.row.reason = `failed while timing: ${describeError(e)}`;
        env.log(`  ${a.impl.impl} ${a.impl.op}: ERROR ${a.row.reason}`);
      }
      progress.state.done++;
      await env.idle?.();
    }
    env.log(`  round ${round + 1}/${samples} done`);
  }
}

/** Medians, quartiles and samples into the rows of the timed implementations; then ratios to the floor. */
function summarizeCase(run: CaseRun, active: readonly Active[]): void {
  for (const a of active) {
    const row = a.row;
    row.iterations = a.k;
    row.samples = a.times.length;
    if (row.status !== 'ok' || a.times.length === 0) continue;
    const s = summarize(a.times);
    row.samples_ms = a.times.map(round4);
    if (a.gpuTimes.length) row.gpu_samples_ms = a.gpuTimes.map(round4);
    row.median_ms = s.median;
    row.min_ms = s.min;
    row.max_ms = s.max;
    row.q1_ms = s.q1;
    row.q3_ms = s.q3;
    if (a.gpuTimes.length === a.times.length) row.gpu_ms = summarize(a.gpuTimes).median;
  }
  addRatios(run.rows);
}

async function disposeCase(session: Session, run: CaseRun): Promise<void> {
  session.progress.report('cleaning up', null, null);
  for (const item of run.items) if (isImpl(item)) item.dispose();
  for (const s of run.sets) s.dispose();
  run.xBuffer?.destroy();
  run.dyBuffer?.destroy();
  if (session.gpu) await session.gpu.device.queue.onSubmittedWorkDone();
}

/** The run's metadata and the target checklist. */
function summarizeRun(session: Session, rows: Row[], started: number): BenchResult {
  const { env, settings, gpu, tf, ort, notes } = session;
  notes.push(
    'times are per iteration: each sample runs K iterations (GPU: recorded into one encoder, one submit, then onSubmittedWorkDone); targets use the median wall time, gpu_ms comes from timestamp queries around the K iterations',
  );
  if (ort && ort.shared === false) {
    notes.push(
      "ort-webgpu ran on its own GPUDevice: JSEP, onnxruntime-web's default webgpu EP, ignores env.webgpu.device and requests a device itself",
    );
  }
  const versions: Record<string, string> = { ...env.versions };
  if (tf) versions['@tensorflow/tfjs-core'] = tf.version;
  if (ort) versions['onnxruntime-web'] = ort.version;
  const config: BenchConfig = {
    samples: settings.samples,
    target_sample_ms: settings.targetMs,
    target_cpu_sample_ms: settings.targetCpuMs,
    max_iterations_gpu: settings.maxGpu,
    max_iterations_cpu: settings.maxCpu,
    cases: settings.cases.map((c) => ({ shape: [...c.shape], layout: c.layout })),
    tolerance: settings.tolerance,
  };
  const meta: BenchMeta = {
    environment: env.name,
    date: new Date().toISOString(),
    browser: env.agent,
    adapter: session.adapter,
    timestamp_query: gpu?.timestamps ?? false,
    shared_device: { tfjs: tf ? tf.webgpu !== null : null, ort: ort ? ort.shared : null },
    hardware_concurrency: env.hardwareConcurrency,
    cross_origin_isolated: env.crossOriginIsolated,
    versions,
    config,
    run_seconds: (now() - started) / 1000,
    notes,
  };
  session.progress.report('done', null, null);
  const a = session.adapter;
  const fallback = a?.is_fallback_adapter ? a.architecture || a.description || a.vendor || 'software' : null;
  return { meta, rows, targets: checkTargets(rows, undefined, fallback) };
}

/** Runs every case of `options` in `env`: see the stages in this file's header. */
export async function runBenchmark(env: BenchEnvironment, options: BenchOptions = {}): Promise<BenchResult> {
  const started = now();
  const settings = settingsOf(options);
  const session = await setUp(env, settings);
  const rows: Row[] = [];
  for (const [caseNumber, kase] of settings.cases.entries()) {
    const run = await prepareCase(session, kase, caseNumber);
    const active = await calibrate(session, run);
    await measure(session, active);
    // Steps of implementations that dropped out while timing.
    session.progress.state.done = session.progress.stepsPerCase * (caseNumber + 1);
    summarizeCase(run, active);
    for (const row of run.rows) {
      rows.push(row);
      env.row?.(row);
    }
    await disposeCase(session, run);
  }
  session.span?.destroy();
  session.ctxGpu?.destroy();
  session.ctxCpu.destroy();
  return summarizeRun(session, rows, started);
}
