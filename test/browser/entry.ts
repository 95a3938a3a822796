/**
 * Browser side of test/browser.test.ts. Loads the BUILT library (dist/index.js, URL given by the
 * page's `?lib=` parameter), fetches the plan the test serves at /plan.json, runs every planned
 * case on `createContext({ backend: 'webgpu' })`, and leaves a BrowserReport in `window.__result`.
 * All comparisons against PyTorch happen in Node; this page only runs the library and reports.
 *
 * Transpiled on the fly by the test (TypeScript's transpileModule), so it may import types only.
 */
import type * as Library from '../../src/index.js';
import type { BrowserPlan, BrowserReport, CaseResult, PlannedCase, StepResult } from './protocol.js';

const gpuErrors: string[] = [];

function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

// Anything thrown outside the awaited chain still fails the test.
window.addEventListener('error', (e) => gpuErrors.push(`page error: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => gpuErrors.push(`unhandled rejection: ${describeError(e.reason)}`));

async function runCase(lib: typeof Library, ctx: Library.BatchNormContext, c: PlannedCase): Promise<CaseResult> {
  const options = { eps: c.eps, momentum: c.momentum, affine: c.affine, trackRunningStats: c.trackRunningStats };
  const bn =
    c.module === 'BatchNorm1d'
      ? new lib.BatchNorm1d(ctx, c.numFeatures, options)
      : c.module === 'BatchNorm2d'
        ? new lib.BatchNorm2d(ctx, c.numFeatures, options)
        : new lib.BatchNorm3d(ctx, c.numFeatures, options);
  const steps: StepResult[] = [];
  try {
    if (c.stateDict) bn.loadStateDict(c.stateDict);
    for (const step of c.steps) {
      const x = ctx.tensor(Float32Array.from(step.input), step.shape, { layout: step.layout, label: 'input' });
      const y = bn.train(step.training).forward(x);
      const output = await y.read();
      if (y.layout !== step.layout) throw new Error(`output layout ${y.layout}, input layout ${step.layout}`);
      const sd = await bn.stateDict();
      steps.push({
        output: Array.from(output),
        runningMean: sd.running_mean ? Array.from(sd.running_mean) : null,
        runningVar: sd.running_var ? Array.from(sd.running_var) : null,
        numBatchesTracked: sd.num_batches_tracked ?? null,
      });
      x.destroy();
      y.destroy();
    }
    // Rejects with GPUOperationError if WebGPU reported an error for any of this case's work.
    await ctx.sync();
    return { id: c.id, steps, error: null };
  } catch (err) {
    return { id: c.id, steps, error: describeError(err) };
  } finally {
    bn.destroy();
  }
}

async function main(): Promise<BrowserReport> {
  const started = performance.now();
  const base = {
    userAgent: navigator.userAgent,
    gpuErrors,
  };
  const libUrl = new URLSearchParams(location.search).get('lib') ?? '/dist/index.js';
  const lib = (await import(/* @vite-ignore */ libUrl)) as typeof Library;
  const plan = (await (await fetch('/plan.json')).json()) as BrowserPlan;

  // backend 'webgpu' throws WebGPUUnavailableError instead of falling back to the CPU.
  const ctx = await lib.createContext({ backend: 'webgpu' });
  const info = ctx.adapterInfo;
  const adapter = info
    ? {
        vendor: info.vendor,
        architecture: info.architecture,
        device: info.device,
        description: info.description,
        isFallbackAdapter: typeof info.isFallbackAdapter === 'boolean' ? info.isFallbackAdapter : null,
      }
    : null;
  const device = ctx.device;
  if (ctx.backend !== 'webgpu' || !device) {
    return {
      ...base,
      backend: ctx.backend,
      adapter,
      cases: [],
      fatal: `createContext({ backend: 'webgpu' }) gave backend '${ctx.backend}'`,
      elapsedMs: 0,
    };
  }

  device.addEventListener('uncapturederror', (e) => {
    const message = `uncapturederror: ${(e as GPUUncapturedErrorEvent).error.message}`;
    gpuErrors.push(message);
    console.error(message);
  });
  // Outermost scopes: catch whatever the library's own scopes do not.
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('internal');

  const cases: CaseResult[] = [];
  for (const c of plan.cases) cases.push(await runCase(lib, ctx, c));

  for (const kind of ['internal', 'out-of-memory', 'validation']) {
    const error = await device.popErrorScope();
    if (error) gpuErrors.push(`${kind} error scope: ${error.message}`);
  }
  ctx.destroy();
  return { ...base, backend: 'webgpu', adapter, cases, fatal: null, elapsedMs: performance.now() - started };
}

main().then(
  (report) => {
    window.__result = report;
  },
  (err: unknown) => {
    window.__result = {
      backend: 'none',
      adapter: null,
      userAgent: navigator.userAgent,
      cases: [],
      gpuErrors,
      fatal: describeError(err),
      elapsedMs: 0,
    };
  },
);
