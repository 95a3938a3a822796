/**
 * The BUILT library (dist/index.js) in headless Debian Chromium on WebGPU (SwiftShader), against the
 * committed PyTorch fixtures. The page (test/browser/) runs the cases and reports raw numbers; this
 * file compares them. It fails if the page is not on WebGPU, on any GPU error (uncaptured, caught
 * by the page's error scopes, or rejected by `ctx.sync()`), and on any console error.
 *
 * Chromium: /usr/bin/chromium from Debian (never downloaded), driven by playwright-core, with the
 * flags in scripts/chromium-webgpu.mjs.
 */
import { readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { chromium, type Browser, type ConsoleMessage } from 'playwright-core';
import ts from 'typescript';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from '../scripts/chromium-webgpu.mjs';
import { startStaticServer, type StaticServer } from '../scripts/serve-static.mjs';
import type { BrowserPlan, BrowserReport, PlannedCase } from './browser/protocol.js';
import { DIST_JS, REPO_ROOT, ensureDist } from './browser/dist.js';
import { channelOf, checkClose, fromLayout, toLayout } from './helpers/backends.js';
import { loadFixture, type TorchCase, type TorchResult } from './helpers/torch-reference.js';

/**
 * Fixture cases run in the browser: 1d/2d/3d, momentum null/0.1/1, affine off, tracking off,
 * loaded state, eval-before-train, zero-variance channels and offset data (mean ±1e4, std 0.1).
 * Rank ≥ 3 cases run in both layouts.
 */
const CASE_NAMES = [
  'bn1d_2d_C4_offset_1e4_std0.1_mom_none',
  'bn1d_2d_C3_eval_first_then_train',
  'bn1d_3d_C4_L8_mom_none',
  'bn1d_3d_C2_L5_offset_-3e3_std1e-2',
  'bn2d_C3_4x5_basic',
  'bn2d_C5_4x4_noaffine',
  'bn2d_C3_2x3_notrack',
  'bn2d_C4_2x4_offset_1e4_std0.1_mom_none',
  'bn2d_C3_2x5_zero_var_channel2',
  'bn2d_C2_random_init_mom_none_varying_HW',
  'bn3d_C3_2x3x4_basic',
  'bn3d_C3_2x2x2_offset_1e4_std0.1_mom1',
];

/**
 * Tolerances against PyTorch's float64 reference on the same float32 inputs (as in
 * test/helpers/run-case.ts, with the looser output bound the browser suite was given):
 * - output: 2e-4 + 1e-5·|ref|, plus in eval with running statistics 4 ulp(running_mean)·|weight|·invstd
 *   per channel, because running_mean is float32 state here and in PyTorch but float64 in the reference.
 * - running_mean / running_var: 1e-6 + 1e-5·|ref|; num_batches_tracked exact.
 */
const OUTPUT_ABS = 2e-4;
const OUTPUT_REL = 1e-5;
const STATE_ABS = 1e-6;
const STATE_REL = 1e-5;

function ulp32(v: number): number {
  const a = Math.abs(v);
  return a === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

interface Planned {
  readonly planned: PlannedCase;
  readonly source: TorchCase;
  readonly result: TorchResult;
}

function buildPlan(): Planned[] {
  const fixture = loadFixture('forward');
  const out: Planned[] = [];
  for (const name of CASE_NAMES) {
    const i = fixture.cases.findIndex((c) => c.name === name);
    const c = fixture.cases[i];
    const r = fixture.results[i];
    if (!c || !r) throw new Error(`browser test: fixture case '${name}' is gone from test/fixtures/forward.json; pick another`);
    if (r.error || c.module === 'functional') throw new Error(`browser test: '${name}' is not a module case without errors`);
    const module = c.module;
    const init = c.init;
    const C = c.num_features;
    const stateDict: PlannedCase['stateDict'] = init
      ? {
          ...(c.affine ? { weight: init.weight ?? new Array<number>(C).fill(1), bias: init.bias ?? new Array<number>(C).fill(0) } : {}),
          ...(c.track_running_stats
            ? {
                running_mean: init.running_mean ?? new Array<number>(C).fill(0),
                running_var: init.running_var ?? new Array<number>(C).fill(1),
                num_batches_tracked: init.num_batches_tracked ?? 0,
              }
            : {}),
        }
      : null;
    const layouts = c.steps.some((s) => s.shape.length >= 3)
      ? (['channels_first', 'channels_last'] as const)
      : (['channels_first'] as const);
    for (const layout of layouts) {
      out.push({
        source: c,
        result: r,
        planned: {
          id: `${c.name} [${layout}]`,
          module,
          numFeatures: C,
          eps: c.eps,
          momentum: c.momentum,
          affine: c.affine,
          trackRunningStats: c.track_running_stats,
          stateDict,
          steps: c.steps.map((s) => {
            const stepLayout = s.shape.length >= 3 ? layout : 'channels_first';
            return { training: s.training, shape: s.shape, layout: stepLayout, input: Array.from(toLayout(s.input, s.shape, stepLayout)) };
          }),
        },
      });
    }
  }
  return out;
}

/** Every mismatch between what the page computed and PyTorch, as readable lines. */
function compare(p: Planned, report: BrowserReport, maxErr: Record<string, number>): string[] {
  const failures: string[] = [];
  const got = report.cases.find((c) => c.id === p.planned.id);
  if (!got) return [`${p.planned.id}: no result from the page`];
  if (got.error) failures.push(`${p.planned.id}: threw ${got.error}`);
  if (got.steps.length !== p.planned.steps.length)
    failures.push(`${p.planned.id}: ${got.steps.length} of ${p.planned.steps.length} steps ran`);
  got.steps.forEach((s, k) => {
    const step = p.planned.steps[k];
    const ref = p.result.steps[k];
    if (!step || !ref) return;
    const state = ref.state;
    const usesRunning = !step.training && p.source.track_running_stats;
    const output = fromLayout(s.output, step.shape, step.layout);
    const out = checkClose(`${p.planned.id} step ${k} output`, output, ref.output, (i) => {
      let tol = OUTPUT_ABS + OUTPUT_REL * Math.abs(ref.output[i] ?? 0);
      if (usesRunning && state.running_mean && state.running_var) {
        const ch = channelOf(i, step.shape);
        const invstd = 1 / Math.sqrt((state.running_var[ch] ?? 0) + p.source.eps);
        tol += 4 * ulp32(state.running_mean[ch] ?? 0) * Math.abs(state.weight?.[ch] ?? 1) * invstd;
      }
      return tol;
    });
    const key = usesRunning ? 'running-stats' : 'batch-stats';
    if (out.failure) failures.push(out.failure);
    else maxErr[key] = Math.max(maxErr[key] ?? 0, out.maxErr);
    for (const [what, actual, expected] of [
      ['running_mean', s.runningMean, state.running_mean],
      ['running_var', s.runningVar, state.running_var],
    ] as const) {
      if ((actual === null) !== (expected === null)) {
        failures.push(
          `${p.planned.id} step ${k} ${what}: library ${actual ? 'has' : 'lacks'} it, PyTorch ${expected ? 'has' : 'lacks'} it`,
        );
      } else if (actual && expected) {
        const c = checkClose(
          `${p.planned.id} step ${k} ${what}`,
          actual,
          expected,
          (i) => STATE_ABS + STATE_REL * Math.abs(expected[i] ?? 0),
        );
        if (c.failure) failures.push(c.failure);
      }
    }
    if (s.numBatchesTracked !== state.num_batches_tracked) {
      failures.push(
        `${p.planned.id} step ${k} num_batches_tracked: ${String(s.numBatchesTracked)}, PyTorch ${String(state.num_batches_tracked)}`,
      );
    }
  });
  return failures;
}

/** Console messages that mean a GPU or page problem even when logged below 'error'. */
const GPU_TROUBLE = /uncapturederror|uncaptured error|validation error|GPUValidationError|\[Invalid \w+/i;

let server: StaticServer | undefined;
let browser: Browser | undefined;
let plan: Planned[] = [];

beforeAll(async () => {
  ensureDist();
  plan = buildPlan();
  const entrySource = readFileSync(join(REPO_ROOT, 'test', 'browser', 'entry.ts'), 'utf8');
  const entry = ts.transpileModule(entrySource, {
    fileName: 'entry.ts',
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: true },
  }).outputText;
  const body: BrowserPlan = { cases: plan.map((p) => p.planned) };
  server = await startStaticServer(REPO_ROOT, 0, {
    routes: {
      '/test/browser/entry.js': { body: entry },
      '/plan.json': { body: JSON.stringify(body) },
    },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_WEBGPU_ARGS], timeout: 30_000 });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

it('built library on WebGPU in headless Chromium matches PyTorch', async () => {
  if (!browser || !server) throw new Error('browser or server did not start');
  const started = Date.now();
  const page = await browser.newPage();
  const consoleLines: string[] = [];
  const problems: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    const line = `[console.${m.type()}] ${m.text()}`;
    consoleLines.push(line);
    if (m.type() === 'error' || GPU_TROUBLE.test(m.text())) problems.push(line);
  });
  page.on('pageerror', (e) => problems.push(`[pageerror] ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`[requestfailed] ${r.url()}: ${r.failure()?.errorText ?? ''}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`[http ${r.status()}] ${r.url()}`);
  });

  // DIST_JS as the page sees it: the server's root is the repository.
  const libUrl = `/${relative(REPO_ROOT, DIST_JS).split(sep).join('/')}`;
  await page.goto(`${server.url}/test/browser/index.html?lib=${encodeURIComponent(libUrl)}`);
  try {
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 45_000, polling: 100 });
  } catch (err) {
    throw new Error(`the page never reported: ${String(err)}\npage console:\n${consoleLines.join('\n')}\n${problems.join('\n')}`);
  }
  const report = await page.evaluate(() => window.__result as BrowserReport);
  await page.close();

  const adapter = report.adapter;
  console.log(
    `[browser] Chromium ${browser.version()} (${report.userAgent})\n[browser] backend=${report.backend} adapter=${JSON.stringify(adapter)} ` +
      `cases=${report.cases.length} page=${Math.round(report.elapsedMs)}ms total=${Date.now() - started}ms`,
  );
  const context = consoleLines.length ? `\npage console:\n${consoleLines.join('\n')}` : '';
  expect(report.fatal, `page failed${context}`).toBeNull();
  expect(report.backend, 'the page must run on WebGPU, not fall back').toBe('webgpu');
  expect(report.gpuErrors, `GPU errors${context}`).toEqual([]);
  expect(problems, `console/page problems${context}`).toEqual([]);

  // Largest output error by how the step normalized; eval with running statistics on offset data
  // is dominated by float32 running_mean (see the tolerance note above).
  const maxErr: Record<string, number> = {};
  const failures = plan.flatMap((p) => compare(p, report, maxErr));
  const steps = plan.reduce((n, p) => n + p.planned.steps.length, 0);
  console.log(`[browser] ${plan.length} case runs, ${steps} steps, max output error ${JSON.stringify(maxErr)}`);
  expect(failures).toEqual([]);
  expect(report.cases.length).toBe(plan.length);
}, 60_000);
