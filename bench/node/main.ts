/**
 * The benchmark in Node on Dawn (the `webgpu` npm package, SwiftShader's Vulkan ICD on a machine
 * without a GPU). Bundled by bench/run-node.mjs (Vite SSR build → dist-bench-node/main.mjs) and
 * run against the BUILT library, dist/index.js, as a user would import it.
 *
 * tfjs-webgpu gets Dawn's GPU through a `navigator.gpu` shim; ONNX Runtime Web is tried through
 * its browser bundle. Whatever does not work here is reported as `unavailable` with the reason.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatReport } from '../harness/report.js';
import type { OrtModule } from '../harness/impl-ort.js';
import type { TfjsModules } from '../harness/impl-tfjs.js';
import { MAIN_CASES, runBenchmark, type BenchEnvironment, type BenchOptions } from '../harness/run.js';
import type { ImplName, LibraryModule, SyncLibraryModule } from '../harness/types.js';

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

/** A CommonJS package imported from ESM: its namespace, or its `default` when that holds the exports. */
function exportsOf<T>(mod: unknown, probe: string): T {
  const m = mod as Record<string, unknown>;
  if (probe in m) return m as T;
  return m['default'] as T;
}

/** `--cases 8x256x28x28:cl,256x1024`: shapes joined by x, layout suffix :cf (default) or :cl. */
function parseCases(text: string): NonNullable<BenchOptions['cases']> {
  return text
    .split(',')
    .filter(Boolean)
    .map((item) => {
      const [dims = '', suffix = 'cf'] = item.split(':');
      const shape = dims.split('x').map(Number);
      if (shape.length < 2 || shape.some((d) => !Number.isInteger(d) || d < 1) || (suffix !== 'cf' && suffix !== 'cl')) {
        throw new Error(`--cases: '${item}' is not N x C [x spatial...] with an optional :cf or :cl`);
      }
      return { shape, layout: suffix === 'cl' ? 'channels_last' : 'channels_first' };
    });
}

function parseArgs(argv: readonly string[]): BenchOptions {
  const o: BenchOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a ?? ''} needs a value`);
      return v;
    };
    if (a === '--samples') o.samples = Number(next());
    else if (a === '--target') o.targetSampleMs = Number(next());
    else if (a === '--impls') o.impls = next().split(',').filter(Boolean) as ImplName[];
    else if (a === '--quick') o.cases = MAIN_CASES;
    else if (a === '--cases') o.cases = parseCases(next());
    else if (a === '--case') {
      // e.g. --case 8x256x28x28:cl (repeatable): one shape and layout instead of the defaults.
      const [dims = '', lay = 'cf'] = next().split(':');
      const kase = { shape: dims.split('x').map(Number), layout: lay === 'cl' ? ('channels_last' as const) : ('channels_first' as const) };
      if (kase.shape.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`--case needs NxCx...[:cf|cl], got ${dims}`);
      o.cases = [...(o.cases ?? []), kase];
    } else
      throw new Error(
        `unknown option ${a ?? ''} (--samples N, --target MS, --impls a,b, --quick, --cases 8x256x28x28:cl,256x1024, --case NxCx..:cf|cl)`,
      );
  }
  return o;
}

function stamp(): string {
  return new Date()
    .toISOString()
    .replace(/[:]/g, '-')
    .replace(/\.\d+Z$/, 'Z');
}

/** Runs the benchmark; `root` is the repository root. Returns the process exit code. */
export async function main(root: string, argv: readonly string[]): Promise<number> {
  const started = performance.now();
  const options = parseArgs(argv);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const readVersion = (name: string): string => {
    try {
      return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };

  // Dawn reads these when it creates its Vulkan instance.
  process.env['VK_ICD_FILENAMES'] ??= '/usr/lib/chromium/vk_swiftshader_icd.json';
  process.env['XDG_RUNTIME_DIR'] ??= '/tmp';

  let gpu: GPU | null = null;
  let gpuError: string | undefined;
  try {
    const dawn = exportsOf<DawnModule>(await import('webgpu'), 'create');
    for (const [name, value] of Object.entries(dawn.globals)) {
      if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
    }
    gpu = dawn.create([]);
  } catch (err) {
    gpuError = `the 'webgpu' package (Dawn) did not load: ${String(err)}`;
  }
  // tfjs-webgpu and ORT look for navigator.gpu.
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (gpu) {
    if (!g.navigator) {
      Object.defineProperty(globalThis, 'navigator', {
        value: { gpu, userAgent: `node ${process.version}`, hardwareConcurrency: availableParallelism() },
        configurable: true,
        writable: true,
      });
    } else if (!g.navigator.gpu) {
      Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
    }
  }

  const lib = (await import(/* @vite-ignore */ pathToFileURL(join(root, 'dist', 'index.js')).href)) as LibraryModule;
  const dawnVersion = readVersion('webgpu');

  let lastProgress = 0;
  const env: BenchEnvironment = {
    name: 'node',
    lib,
    gpu,
    ...(gpuError ? { gpuError } : {}),
    agent: `node ${process.version} (${process.platform}/${process.arch}), Dawn via the 'webgpu' npm package ${dawnVersion}`,
    hardwareConcurrency: availableParallelism(),
    crossOriginIsolated: null,
    versions: { 'webgpu-batchnorm': pkg.version, node: process.version, webgpu: dawnVersion },
    notes: ['Node runner: the library is the built dist/index.js; peers run where their packages work in Node'],
    async loadTfjs(): Promise<TfjsModules> {
      const tf = exportsOf<TfjsModules['tf']>(await import('@tensorflow/tfjs-core'), 'tensor');
      await import('@tensorflow/tfjs-backend-cpu');
      try {
        const webgpu = exportsOf<{ WebGPUBackend: NonNullable<TfjsModules['WebGPUBackend']> }>(
          await import('@tensorflow/tfjs-backend-webgpu'),
          'WebGPUBackend',
        );
        return { tf, WebGPUBackend: webgpu.WebGPUBackend };
      } catch (err) {
        return { tf, WebGPUBackend: null, webgpuError: `@tensorflow/tfjs-backend-webgpu did not load in Node: ${String(err)}` };
      }
    },
    async loadSync(): Promise<SyncLibraryModule> {
      return (await import(/* @vite-ignore */ pathToFileURL(join(root, 'dist', 'sync.js')).href)) as SyncLibraryModule;
    },
    async loadOrt(): Promise<OrtModule> {
      // The package's "node" export is the wasm-only build; the browser bundle has the webgpu EP.
      const bundle = pathToFileURL(join(root, 'node_modules', 'onnxruntime-web', 'dist', 'ort.bundle.min.mjs')).href;
      return exportsOf<OrtModule>(await import(/* @vite-ignore */ bundle), 'InferenceSession');
    },
    log: (line) => console.log(`[bench] ${line}`),
    progress(p) {
      const t = performance.now();
      if (t - lastProgress < 5000) return;
      lastProgress = t;
      const pct = p.total ? ((100 * p.done) / p.total).toFixed(0) : '0';
      console.log(
        `[progress ${pct.padStart(3)}% ${((t - started) / 1000).toFixed(0)}s] case ${p.caseIndex}/${p.caseCount} [${p.shape.join(',')}] ${p.layout} | ${p.phase}${p.impl ? ` | ${p.impl} ${p.op ?? ''}` : ''}`,
      );
    },
  };

  const result = await runBenchmark(env, options);
  result.meta.total_seconds = (performance.now() - started) / 1000;
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const json = `${JSON.stringify(result, null, 2)}\n`;
  const s = stamp();
  const report = formatReport(result);
  writeFileSync(join(dir, 'node-latest.json'), json);
  writeFileSync(join(dir, `node-${s}.json`), json);
  // The table as text too, for runs whose terminal output is not kept (bench/gpu-bundle).
  writeFileSync(join(dir, 'node-latest.txt'), `${report}\n`);
  console.log('');
  console.log(report);
  console.log('');
  console.log(`[run-node] wrote bench/results/node-latest.json (and node-${s}.json, node-latest.txt)`);
  return 0;
}
