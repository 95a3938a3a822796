/**
 * The benchmark, independent of where it runs: the page (bench/app/main.ts) and the Node runner
 * (bench/node/main.ts) each hand {@link runBenchmark} an environment (the library module, a
 * `GPU`, loaders for tfjs and ONNX Runtime, a log) and get a {@link BenchResult} back.
 *
 * Per shape/layout case: inputs and float64 references are built; every implementation is
 * checked once against the reference (a wrong one is reported, not timed), then calibrated
 * (K iterations per sample so one sample takes about `targetSampleMs`, K ≤ the GPU/CPU cap), then
 * timed in `samples` interleaved rounds: each round runs every implementation once, in an order
 * rotated from round to round, so drift and background load hit all of them alike.
 */
import type * as Library from '../../src/index.js';
import { makeCaseData } from './data.js';
import { CopyFloorKernel, createSharedGpu, createTensorBuffer, submitTimed, TimestampSpan, type SharedGpu } from './gpu.js';
import { describeError, isImpl, unavailableSet, type CaseContext, type Impl, type ImplSet, type Unavailable } from './impl.js';
import { createCopies } from './impl-copy.js';
import { createJsLoop } from './impl-js.js';
import { createOrt, setUpOrt, type OrtModule, type OrtRuntime } from './impl-ort.js';
import { createOursCpu, createOursGpu } from './impl-ours.js';
import { createEpilogueGpu } from './impl-epilogue.js';
import { createTfjs, setUpTfjs, type TfjsModules, type TfjsRuntime } from './impl-tfjs.js';
import { addRatios, checkTargets } from './report.js';
import { summarize } from './stats.js';
import { EPILOGUE_OPS, type BenchConfig, type BenchMeta, type BenchResult, type ImplName, type LayoutName, type LibraryModule, type OpName, type Progress, type Row } from './types.js';

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
  ['webgpu-batchnorm-unfused', EPILOGUE_OPS],
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

export async function runBenchmark(env: BenchEnvironment, options: BenchOptions = {}): Promise<BenchResult> {
  const started = now();
  const cases = options.cases ?? DEFAULT_CASES;
  const samples = Math.max(1, Math.floor(options.samples ?? 5));
  const targetMs = options.targetSampleMs ?? 400;
  const targetCpuMs = options.targetCpuSampleMs ?? 150;
  const maxGpu = options.maxIterationsGpu ?? 256;
  const maxCpu = options.maxIterationsCpu ?? 64;
  const tolerance = options.tolerance ?? 1e-3;
  const only = options.impls ? new Set<ImplName>(['copy-floor', 'copy-b2b', ...options.impls]) : null;
  const log = env.log;
  const notes: string[] = [...(env.notes ?? [])];
  const config: BenchConfig = {
    samples,
    target_sample_ms: targetMs,
    target_cpu_sample_ms: targetCpuMs,
    max_iterations_gpu: maxGpu,
    max_iterations_cpu: maxCpu,
    cases: cases.map((c) => ({ shape: [...c.shape], layout: c.layout })),
    tolerance,
  };

  // One device for everybody.
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

  // Peers.
  let tf: TfjsRuntime | null = null;
  let tfError: string | null = null;
  if (!only || only.has('tfjs-webgpu') || only.has('tfjs-cpu')) {
    try {
      tf = await setUpTfjs(await env.loadTfjs(), gpu);
      log(`tfjs ${tf.version}: webgpu ${tf.webgpu ? 'on the shared device' : `unavailable (${tf.webgpuReason ?? ''})`}; cpu ${tf.cpuReason ?? 'ok'}`);
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

  const rows: Row[] = [];
  const stepsPerCase = PLAN.reduce((a, [impl, ops]) => a + (only && !only.has(impl) ? 0 : ops.length), 0) * (samples + 2);
  const progress: Progress = {
    done: 0,
    total: stepsPerCase * cases.length,
    caseIndex: 0,
    caseCount: cases.length,
    shape: [],
    layout: 'channels_first',
    phase: 'starting',
    impl: null,
    op: null,
  };
  const report = (phase: string, impl: ImplName | null, op: OpName | null): void => {
    progress.phase = phase;
    progress.impl = impl;
    progress.op = op;
    env.progress?.({ ...progress, shape: [...progress.shape] });
  };

  for (const [caseNumber, kase] of cases.entries()) {
    const shape = [...kase.shape];
    const layout = kase.layout;
    progress.caseIndex = caseNumber + 1;
    progress.shape = shape;
    progress.layout = layout;
    const label = `[${shape.join(', ')}] ${layout}`;
    report('preparing data and float64 references', null, null);
    log(`case ${caseNumber + 1}/${cases.length}: ${label} (${((shape.reduce((a, b) => a * b, 1) * 4) / 2 ** 20).toFixed(1)} MiB per tensor)`);
    const data = makeCaseData(shape, layout);
    const bytes = data.geometry.size * 4;
    const xBuffer = gpu ? createTensorBuffer(gpu.device, 'bench.x', bytes, data.x) : null;
    const dyBuffer = gpu ? createTensorBuffer(gpu.device, 'bench.dy', bytes, data.dy) : null;
    const cc: CaseContext = { shape, layout, data, lib, gpu, span, xBuffer, dyBuffer };

    const sets: ImplSet[] = [];
    const make = async (impl: ImplName, ops: readonly OpName[], factory: () => ImplSet | Promise<ImplSet>): Promise<void> => {
      if (only && !only.has(impl)) return;
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
    await make('webgpu-batchnorm-unfused', EPILOGUE_OPS, () => createEpilogueGpu(cc, ctxGpu, 'unfused'));
    await make('tfjs-webgpu', ['train', 'eval'], () => createTfjs(cc, tf, 'webgpu', tfError));
    await make('ort-webgpu', ['eval'], () => createOrt(cc, ort, ortError));
    await make('webgpu-batchnorm-cpu', ['train', 'eval', 'backward'], () => createOursCpu(cc, ctxCpu));
    await make('tfjs-cpu', ['train', 'eval'], () => createTfjs(cc, tf, 'cpu', tfError));
    await make('js-loop', ['train', 'eval', 'backward'], () => createJsLoop(cc));
    const items: Array<Impl | Unavailable> = sets.flatMap((s) => [...s.items]);

    interface Active {
      impl: Impl;
      row: Row;
      k: number;
      times: number[];
      gpuTimes: number[];
    }
    const active: Active[] = [];
    const caseRows: Row[] = [];
    for (const item of items) {
      const row = emptyRow(item.impl, item.op, shape, layout, bytes);
      caseRows.push(row);
      if (!isImpl(item)) {
        row.status = 'unavailable';
        row.reason = item.reason;
        progress.done += samples + 2;
        log(`  ${item.impl} ${item.op}: unavailable (${item.reason})`);
        continue;
      }
      row.tolerance = tolerance;
      report('checking against the float64 reference', item.impl, item.op);
      let err: number;
      let verifyMs: number;
      try {
        const t0 = now();
        err = await item.verify();
        verifyMs = now() - t0;
      } catch (e) {
        row.status = 'error';
        row.reason = `check failed: ${describeError(e)}`;
        progress.done += samples + 2;
        log(`  ${item.impl} ${item.op}: ERROR ${row.reason}`);
        continue;
      }
      progress.done++;
      // After the check: some implementations settle how they run during it (the floor's race).
      if (item.note) row.note = item.note;
      row.max_err = Number.isNaN(err) ? null : err;
      if (!(err <= tolerance)) {
        row.status = 'wrong';
        row.reason = Number.isNaN(err) ? 'output has NaN/Inf or the wrong length' : `max_err ${err.toExponential(2)} > ${tolerance}`;
        progress.done += samples + 1;
        log(`  ${item.impl} ${item.op}: WRONG (${row.reason}); not timed`);
        continue;
      }
      report('calibrating', item.impl, item.op);
      try {
        // Grow K until one sample (K iterations, one submit and drain) takes about the target, so
        // the fixed cost per sample is amortized; the last run is the warm-up at the final K. An
        // implementation whose check alone took over SLOW_CHECK_MS runs K = 1 without more
        // warm-up (the check was its warm-up): tfjs-webgpu's training forward takes seconds here.
        const target = item.kind === 'gpu' ? targetMs : targetCpuMs;
        const cap = item.kind === 'gpu' ? maxGpu : maxCpu;
        const timeRun = async (k: number): Promise<number> => {
          await item.prepare?.();
          const t0 = now();
          await item.run(k);
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
        active.push({ impl: item, row, k, times: [], gpuTimes: [] });
        log(`  ${item.impl} ${item.op}: ok (max_err ${err.toExponential(2)}); calibration ${trail.join(', ')} -> K = ${k}`);
      } catch (e) {
        row.status = 'error';
        row.reason = `warm-up failed: ${describeError(e)}`;
        progress.done += samples + 1;
        log(`  ${item.impl} ${item.op}: ERROR ${row.reason}`);
        continue;
      }
      progress.done++;
      await env.idle?.();
    }

    for (let round = 0; round < samples; round++) {
      const order = active.filter((a) => a.row.status === 'ok');
      const shift = order.length ? round % order.length : 0;
      const rotated = [...order.slice(shift), ...order.slice(0, shift)];
      for (const a of rotated) {
        report(`round ${round + 1}/${samples}`, a.impl.impl, a.impl.op);
        try {
          await a.impl.prepare?.();
          const t0 = now();
          const gpuMs = await a.impl.run(a.k);
          a.times.push((now() - t0) / a.k);
          if (gpuMs !== null) a.gpuTimes.push(gpuMs / a.k);
        } catch (e) {
          a.row.status = 'error';
          a.row.reason = `failed while timing: ${describeError(e)}`;
          log(`  ${a.impl.impl} ${a.impl.op}: ERROR ${a.row.reason}`);
        }
        progress.done++;
        await env.idle?.();
      }
      log(`  round ${round + 1}/${samples} done`);
    }
    // Steps of implementations that dropped out while timing.
    progress.done = stepsPerCase * (caseNumber + 1);

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
    addRatios(caseRows);
    for (const row of caseRows) {
      rows.push(row);
      env.row?.(row);
    }

    report('cleaning up', null, null);
    for (const item of items) if (isImpl(item)) item.dispose();
    for (const s of sets) s.dispose();
    xBuffer?.destroy();
    dyBuffer?.destroy();
    if (gpu) await gpu.device.queue.onSubmittedWorkDone();
  }

  span?.destroy();
  ctxGpu?.destroy();
  ctxCpu.destroy();

  notes.push(
    'times are per iteration: each sample runs K iterations (GPU: recorded into one encoder, one submit, then onSubmittedWorkDone); targets use the median wall time, gpu_ms comes from timestamp queries around the K iterations',
  );
  if (ort && ort.shared === false) {
    notes.push("ort-webgpu ran on its own GPUDevice: JSEP, onnxruntime-web's default webgpu EP, ignores env.webgpu.device and requests a device itself");
  }
  const versions: Record<string, string> = { ...env.versions };
  if (tf) versions['@tensorflow/tfjs-core'] = tf.version;
  if (ort) versions['onnxruntime-web'] = ort.version;
  const meta: BenchMeta = {
    environment: env.name,
    date: new Date().toISOString(),
    browser: env.agent,
    adapter,
    timestamp_query: gpu?.timestamps ?? false,
    shared_device: { tfjs: tf ? tf.webgpu !== null : null, ort: ort ? ort.shared : null },
    hardware_concurrency: env.hardwareConcurrency,
    cross_origin_isolated: env.crossOriginIsolated,
    versions,
    config,
    run_seconds: (now() - started) / 1000,
    notes,
  };
  report('done', null, null);
  return { meta, rows, targets: checkTargets(rows) };
}
