/**
 * The benchmark's data model, shared by the page (bench/app), the Node runner (bench/node) and
 * the report. Everything here is plain JSON-serialisable data: `bench/results/latest.json` is a
 * {@link BenchResult}.
 */
import type * as Library from '../../src/index.js';
import type * as SyncLibrary from '../../src/sync/index.js';

/** The library's public surface; the page bundles src/, the Node runner imports the built dist/. */
export type LibraryModule = typeof Library;

/** The `webgpu-batchnorm/sync` entry (SyncBatchNorm and its merges), loaded the same way. */
export type SyncLibraryModule = typeof SyncLibrary;

/** Who ran: our two backends, the peers, and the two copy floors. */
export type ImplName =
  | 'webgpu-batchnorm'
  | 'webgpu-batchnorm-keras'
  | 'webgpu-batchnorm-cpu'
  | 'tfjs-webgpu'
  | 'ort-webgpu'
  | 'tfjs-cpu'
  | 'js-loop'
  | 'copy-floor'
  | 'copy-b2b'
  | 'webgpu-batchnorm-unfused'
  | 'webgpu-batchnorm-f16'
  | 'copy-floor-f16'
  | 'webgpu-batchnorm-sync'
  | 'webgpu-batchnorm-sync-host';

/**
 * Fused-epilogue ops: BN followed by ReLU (`+relu`) or by a residual add and ReLU (`+add+relu`),
 * in training, in evaluation, and the backward through them; and BN followed by the smooth
 * activations GELU (erf form) and sigmoid (`+gelu`, `+sigmoid`), whose backward recomputes the
 * pre-activation instead of masking with the output.
 */
export type EpilogueOpName =
  | 'train+relu'
  | 'eval+relu'
  | 'backward+relu'
  | 'train+add+relu'
  | 'eval+add+relu'
  | 'backward+add+relu'
  | 'train+gelu'
  | 'backward+gelu'
  | 'train+sigmoid'
  | 'backward+sigmoid';

/** The ReLU epilogue ops: the ones with an unfused baseline (unfused-epilogue.wgsl has ReLU passes only). */
export const UNFUSED_EPILOGUE_OPS: readonly EpilogueOpName[] = [
  'train+relu',
  'eval+relu',
  'backward+relu',
  'train+add+relu',
  'eval+add+relu',
  'backward+add+relu',
];

/** The epilogue ops, in table order. */
export const EPILOGUE_OPS: readonly EpilogueOpName[] = [
  ...UNFUSED_EPILOGUE_OPS,
  'train+gelu',
  'backward+gelu',
  'train+sigmoid',
  'backward+sigmoid',
];

/** The activation an epilogue op ends with. */
export function activationOfOp(op: EpilogueOpName): 'relu' | 'gelu' | 'sigmoid' {
  return op.endsWith('gelu') ? 'gelu' : op.endsWith('sigmoid') ? 'sigmoid' : 'relu';
}

/** The plain BN op each epilogue op is compared with (target: fused ≤ 1.1× plain). */
export function plainOpOf(op: EpilogueOpName): 'train' | 'eval' | 'backward' {
  return op.startsWith('train') ? 'train' : op.startsWith('eval') ? 'eval' : 'backward';
}

/**
 * `train`: forward with batch statistics (and running-stat update); `eval`: forward with running
 * statistics; `sync-step`: one SyncBatchNorm training step (forward and backward) of the batch
 * split over simulated shards (bench/harness/impl-sync.ts).
 */
export type OpName = 'train' | 'eval' | 'backward' | 'copy' | 'sync-step' | EpilogueOpName;

/** Memory order of the input; the shape is always the logical (N, C, ...). */
export type LayoutName = 'channels_first' | 'channels_last';

/**
 * - `ok`: checked against the float64 reference, then timed.
 * - `wrong`: its output failed the check (see `max_err`); not timed.
 * - `unavailable`: could not run here (see `reason`), e.g. a peer that does not load in Node.
 * - `error`: threw or raised a WebGPU error while running (see `reason`).
 */
export type RowStatus = 'ok' | 'wrong' | 'unavailable' | 'error';

/** One implementation × op × shape × layout. Times are per iteration. */
export interface Row {
  impl: ImplName;
  op: OpName;
  /** Logical shape (N, C, ...). */
  shape: number[];
  layout: LayoutName;
  status: RowStatus;
  /** Median wall time of one iteration over the samples (ms). */
  median_ms: number | null;
  /**
   * median_ms / median_ms of `copy-floor` on the same shape and layout; for the float16 rows
   * (`*-f16`), of `copy-floor-f16`, the copy of a float16 tensor's bytes.
   */
  ratio_to_floor: number | null;
  /** float16 rows: median_ms / median_ms of the float32 row (`webgpu-batchnorm`) of the same op. */
  ratio_to_f32?: number;
  min_ms: number | null;
  max_ms: number | null;
  /** First and third quartile of the per-sample times (ms). */
  q1_ms: number | null;
  q3_ms: number | null;
  /** Timed samples (each `iterations` iterations, one submit / one synchronous loop). */
  samples: number;
  iterations: number;
  /** Per-iteration wall time of every sample, in the order they ran (ms). */
  samples_ms?: number[];
  /** Per-iteration GPU time of every sample from timestamps (ms), where measured. */
  gpu_samples_ms?: number[];
  /** Median GPU time of one iteration from timestamp queries (ms), where measured. */
  gpu_ms: number | null;
  /** gpu_ms / gpu_ms of `copy-floor`, where both exist. */
  gpu_ratio_to_floor: number | null;
  /** Max |out − ref| / max(1, max |ref|) over every output of the op; null when not checked. */
  max_err: number | null;
  /** The bound max_err had to meet. */
  tolerance: number | null;
  /** Bytes of one tensor of this shape (float32). */
  tensor_bytes: number;
  /** Why a row is not `ok`, or a note on how it ran. */
  reason?: string;
  note?: string;
}

/** One line of the target checklist. */
export interface TargetCheck {
  /** Short description, e.g. "train ≤ 1.8× floor". */
  target: string;
  shape: number[];
  layout: LayoutName;
  /** The measured ratio that is compared with `threshold`. */
  measured: number | null;
  threshold: number;
  /** `<=`: measured must be at most threshold; `>=`: at least. */
  direction: '<=' | '>=';
  /** null when one of the rows it needs is missing or not ok. */
  pass: boolean | null;
  detail: string;
  /** Why it missed (pass false) or could not be evaluated (pass null), in one line; absent on a pass. */
  reason?: string;
}

export interface BenchMeta {
  /** 'browser' (headless Chromium through bench/run-browser.mjs, or any browser) or 'node' (Dawn). */
  environment: 'browser' | 'node';
  date: string;
  /** navigator.userAgent, or `node vX (Dawn webgpu@Y)`. */
  browser: string;
  /** Chromium's version as playwright reports it (filled in by the runner). */
  browser_version?: string;
  adapter: {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    is_fallback_adapter: boolean | null;
  } | null;
  timestamp_query: boolean;
  /** Did tfjs and ORT run on the same GPUDevice as the library and the floor? */
  shared_device: { tfjs: boolean | null; ort: boolean | null };
  hardware_concurrency: number | null;
  cross_origin_isolated: boolean | null;
  versions: Record<string, string>;
  config: BenchConfig;
  /** Wall time of the in-page / in-process run (s). */
  run_seconds: number;
  /** Set by the runner: wall time of the whole command including build and browser start (s). */
  total_seconds?: number;
  chromium_args?: string[];
  notes: string[];
}

export interface BenchConfig {
  /** Timed samples per implementation (interleaved rounds). */
  samples: number;
  /** Target wall time of one GPU sample; K iterations per sample are chosen to reach it. */
  target_sample_ms: number;
  /** Target wall time of one CPU sample. */
  target_cpu_sample_ms: number;
  /** Upper bound on K for GPU work and for CPU work. */
  max_iterations_gpu: number;
  max_iterations_cpu: number;
  /** Shape/layout cases that were run. */
  cases: Array<{ shape: number[]; layout: LayoutName }>;
  /** Relative tolerance of the output check. */
  tolerance: number;
}

export interface BenchResult {
  meta: BenchMeta;
  rows: Row[];
  targets: TargetCheck[];
}

/** Progress of a running benchmark, for the page's status line and the terminal. */
export interface Progress {
  /** Finished steps (verify, calibrate and every timed sample each count one). */
  done: number;
  total: number;
  /** 1-based index of the current shape/layout case and the number of cases. */
  caseIndex: number;
  caseCount: number;
  shape: number[];
  layout: LayoutName;
  phase: string;
  impl: ImplName | null;
  op: OpName | null;
}
