/**
 * PyTorch ground truth for the vitest suite.
 *
 * - `loadFixture('forward')` / `loadFixture('backward.json')`: the committed
 *   references in test/fixtures/ (regenerate with
 *   `/usr/bin/python3 test/torch/generate_fixtures.py`). Needs no torch.
 * - `runTorchReference(cases)`: live references from test/torch/reference.py;
 *   guard with `it.runIf(torchAvailable())`.
 *
 * Numbers: inputs are float32 values (feed them through Float32Array /
 * Math.fround). References ("output", grads, "state") are float64.
 * "output_f32" is PyTorch's own float32 result (exact float32 values).
 * Non-finite numbers travel through JSON as the strings "NaN", "Infinity",
 * "-Infinity"; both directions are converted here, so every array you see
 * is a plain `number[]`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------- types

export type TorchModuleKind = 'BatchNorm1d' | 'BatchNorm2d' | 'BatchNorm3d' | 'functional';

/** [grad_input, grad_weight, grad_bias] requested. */
export type OutputMask = [boolean, boolean, boolean];

/** Initial state; every key optional (absent = PyTorch default). */
export interface TorchInit {
  weight?: number[];
  bias?: number[];
  running_mean?: number[];
  running_var?: number[];
  num_batches_tracked?: number;
}

export interface TorchStep {
  training: boolean;
  /** Logical shape [N, C, ...]. */
  shape: number[];
  /** float32 values in logical row-major (N, C, ...) order. */
  input: number[];
  /** Same length as input; null = forward only. */
  grad_output: number[] | null;
  /** Default all true. */
  output_mask?: OutputMask;
}

export interface TorchCase {
  name: string;
  module: TorchModuleKind;
  num_features: number;
  eps: number;
  /** null = cumulative moving average (modules only; F.batch_norm raises TypeError). */
  momentum: number | null;
  /** functional: whether weight/bias are passed. */
  affine: boolean;
  /** functional: whether running_mean/running_var are passed. */
  track_running_stats: boolean;
  init?: TorchInit;
  /** Run in order on ONE instance; state carries over. */
  steps: TorchStep[];
}

export interface TorchState {
  weight: number[] | null;
  bias: number[] | null;
  running_mean: number[] | null;
  running_var: number[] | null;
  /** null for functional cases and track_running_stats=false. */
  num_batches_tracked: number | null;
}

export interface TorchStepResult {
  /** float64 reference forward. */
  output: number[];
  /** PyTorch's own float32 forward (for reporting PyTorch's error). */
  output_f32: number[];
  /** null when grad_output was null, masked out, or not applicable (affine=false). */
  grad_input: number[] | null;
  grad_weight: number[] | null;
  grad_bias: number[] | null;
  /** State after this step (float64 path). */
  state: TorchState;
}

export interface TorchError {
  /** Python exception class name, e.g. "ValueError", "RuntimeError", "TypeError". */
  type: string;
  message: string;
}

export interface TorchResult {
  name: string;
  /** Completed steps; shorter than the case's steps when error != null. */
  steps: TorchStepResult[];
  /** Set when torch raised on step number steps.length; the case stopped there. */
  error: TorchError | null;
}

export interface TorchReferenceOutput {
  torch_version: string;
  results: TorchResult[];
}

export interface FixtureFile {
  generated_by: string;
  torch_version: string;
  cases: TorchCase[];
  /** Aligned with cases by index. */
  results: TorchResult[];
}

// ---------------------------------------------------------------- paths & JSON

/** Repository root (this file lives in test/helpers/). */
export const REPO_ROOT: string = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURES_DIR: string = join(REPO_ROOT, 'test', 'fixtures');
export const REFERENCE_SCRIPT: string = join(REPO_ROOT, 'test', 'torch', 'reference.py');
/** Interpreter with torch (Debian python3-torch). Override with TORCH_PYTHON. */
export const TORCH_PYTHON: string = process.env['TORCH_PYTHON'] ?? '/usr/bin/python3';

const NON_FINITE: ReadonlyMap<string, number> = new Map([
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-Infinity', Number.NEGATIVE_INFINITY],
]);

/** JSON.parse that turns "NaN"/"Infinity"/"-Infinity" array elements back into numbers. */
export function parseTorchJson(text: string): unknown {
  return JSON.parse(text, function (this: unknown, _key: string, value: unknown): unknown {
    if (typeof value === 'string' && Array.isArray(this)) {
      const n = NON_FINITE.get(value);
      if (n !== undefined) return n;
    }
    return value;
  }) as unknown;
}

/** JSON.stringify that writes non-finite numbers as "NaN"/"Infinity"/"-Infinity". */
export function stringifyTorchJson(value: unknown): string {
  return JSON.stringify(value, (_key: string, v: unknown): unknown => {
    if (typeof v === 'number' && !Number.isFinite(v)) {
      return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
    }
    return v;
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function assertResults(v: unknown, what: string): asserts v is { results: TorchResult[] } {
  if (!isRecord(v) || !Array.isArray(v['results'])) {
    throw new Error(`${what}: expected an object with a "results" array`);
  }
  for (const r of v['results'] as unknown[]) {
    if (!isRecord(r) || typeof r['name'] !== 'string' || !Array.isArray(r['steps']) || !('error' in r)) {
      throw new Error(`${what}: malformed result entry`);
    }
  }
}

// ---------------------------------------------------------------- torch

let torchAvailableCache: boolean | undefined;

/** True when `TORCH_PYTHON -c "import torch"` succeeds (checked once). */
export function torchAvailable(): boolean {
  if (torchAvailableCache === undefined) {
    const r = spawnSync(TORCH_PYTHON, ['-c', 'import torch'], { stdio: 'ignore', timeout: 120_000 });
    torchAvailableCache = r.error === undefined && r.status === 0;
  }
  return torchAvailableCache;
}

/** Full output of reference.py (results plus torch_version). */
export function runTorchReferenceFull(cases: TorchCase[]): TorchReferenceOutput {
  const dir = mkdtempSync(join(tmpdir(), 'bn-torch-'));
  try {
    const inPath = join(dir, 'in.json');
    const outPath = join(dir, 'out.json');
    writeFileSync(inPath, stringifyTorchJson({ cases }), 'utf8');
    const r = spawnSync(TORCH_PYTHON, [REFERENCE_SCRIPT, inPath, outPath], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      timeout: 600_000,
    });
    if (r.error !== undefined) throw new Error(`reference.py could not run: ${r.error.message}`);
    if (r.status !== 0) {
      throw new Error(`reference.py exited with ${String(r.status)}: ${r.stderr}`);
    }
    const parsed = parseTorchJson(readFileSync(outPath, 'utf8'));
    assertResults(parsed, 'reference.py output');
    const out = parsed as unknown as TorchReferenceOutput;
    if (out.results.length !== cases.length) {
      throw new Error(`reference.py returned ${out.results.length} results for ${cases.length} cases`);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs cases through PyTorch (one python process); results aligned with cases. */
export function runTorchReference(cases: TorchCase[]): TorchResult[] {
  return runTorchReferenceFull(cases).results;
}

// ---------------------------------------------------------------- fixtures

const fixtureCache = new Map<string, FixtureFile>();

/** Loads test/fixtures/<name>(.json): 'forward' or 'backward'. Cached. */
export function loadFixture(name: string): FixtureFile {
  const file = name.endsWith('.json') ? name : `${name}.json`;
  const cached = fixtureCache.get(file);
  if (cached !== undefined) return cached;
  const parsed = parseTorchJson(readFileSync(join(FIXTURES_DIR, file), 'utf8'));
  assertResults(parsed, file);
  const fx = parsed as unknown as FixtureFile;
  if (!Array.isArray(fx.cases) || fx.cases.length !== fx.results.length) {
    throw new Error(`${file}: cases and results are not aligned`);
  }
  fixtureCache.set(file, fx);
  return fx;
}

/** Every fixture case paired with its result, across the given files. */
export function fixtureEntries(
  names: readonly string[] = ['forward', 'backward'],
): { file: string; case: TorchCase; result: TorchResult }[] {
  const out: { file: string; case: TorchCase; result: TorchResult }[] = [];
  for (const name of names) {
    const fx = loadFixture(name);
    fx.cases.forEach((c, i) => {
      const result = fx.results[i];
      if (result === undefined) throw new Error(`${name}: missing result ${i}`);
      out.push({ file: name, case: c, result });
    });
  }
  return out;
}
