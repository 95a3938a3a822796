/**
 * The package as npm publishes it: `npm pack` of this checkout (after the build), unpacked into
 * the node_modules of a fresh consumer project, with its runtime dependencies linked from ours
 * (no registry, no network: an `npm install` of the tarball would need them in npm's cache). What
 * test/dist.test.ts cannot see through its link to the checkout is checked here: that "files"
 * ships dist/ and nothing of the sources (no shaders/, src/, test/), that "dependencies" name
 * exactly what the shipped code and declarations import, that browser apps build from the
 * unpacked copy with Vite, with esbuild and with Rolldown on its own (no `node:` module reached, sizes printed),
 * and that Node loads it by `import` and by `require()` from outside this repository.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIBRARY_ENTRIES, subpathOf } from '../build/entries.js';
import { REPO_ROOT, ensureDist } from './browser/dist.js';
import { BUNDLERS, buildBrowserApp, ENTRY_USAGE, typeCheck, type AppBundle, type Bundler, type EntryName } from './helpers/consumer-app.js';

/** One file of `npm pack --json`. */
interface PackedFile {
  path: string;
  size: number;
}

/** What `npm pack --json` reports for the tarball. */
interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: PackedFile[];
}

interface Manifest {
  name: string;
  files: string[];
  exports: Record<string, { types: string; import: string; default: string }>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  repository?: { type: string; url: string };
  homepage?: string;
  bugs?: { url: string };
}

// x: (N=2, C=2, L=3); the training-mode output of BatchNorm1d(2) is checked in float64 by dist.test.ts,
// here only that both backends agree and the values are normalized (mean 0 per channel).
const SHAPE = [2, 2, 3];
const INPUT = [1, 2, 3, 10, 20, 30, 4, 5, 7, 40, 50, 80];

let work = '';
let consumer = '';
let pack: PackResult;
let manifest: Manifest;

const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;

/** Links `name` (a package of this repository's node_modules) into the consumer's node_modules. */
function linkDependency(name: string): void {
  const target = join(consumer, 'node_modules', name);
  mkdirSync(dirname(target), { recursive: true });
  symlinkSync(join(REPO_ROOT, 'node_modules', name), target, 'dir');
}

function runNode(args: readonly string[], script: string): string {
  const r = spawnSync(process.execPath, [...args, '-e', script], { cwd: consumer, encoding: 'utf8', timeout: 120_000 });
  expect(r.error).toBeUndefined();
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').pop() ?? '';
}

/** Bare module specifiers (not relative, not `node:`) that `code` imports or re-exports with a literal. */
function bareImports(code: string, withTypeReferences: boolean): Set<string> {
  const pattern = withTypeReferences
    ? /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+|reference types=)['"]([^'"]+)['"]/gm
    : /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm;
  const out = new Set<string>();
  for (const m of code.matchAll(pattern)) {
    const spec = m[1] ?? '';
    if (!spec.startsWith('.') && !spec.startsWith('node:'))
      out.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec));
  }
  return out;
}

/** The declaration files a consumer's tsc reads: every file reachable from the entries' "types". */
function reachableDeclarations(root: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(join(root, file), 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)['"](\.[^'"]+)['"]/g)) {
      const spec = (m[1] ?? '').replace(/\.js$/, '.d.ts');
      visit(posix.normalize(posix.join(posix.dirname(file), spec)));
    }
  };
  for (const target of Object.values(manifest.exports)) visit(posix.normalize(target.types));
  return [...seen].sort();
}

beforeAll(() => {
  ensureDist();
  work = mkdtempSync(join(tmpdir(), 'bn-pack-'));
  // --ignore-scripts: nothing but packing (there is no prepack step; the build ran above).
  const r = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.error || r.status !== 0) throw new Error(`npm pack failed (${r.error?.message ?? `exit ${String(r.status)}`}):\n${r.stderr}`);
  const [result] = JSON.parse(r.stdout) as PackResult[];
  if (!result) throw new Error(`npm pack printed no result:\n${r.stdout}`);
  pack = result;

  // The consumer project: the tarball unpacked where `npm install` would put it.
  consumer = join(work, 'consumer');
  const installed = join(consumer, 'node_modules', 'webgpu-batchnorm');
  mkdirSync(installed, { recursive: true });
  const tar = spawnSync('tar', ['-xzf', join(work, pack.filename), '-C', installed, '--strip-components=1'], { encoding: 'utf8' });
  if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr}`);
  manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Manifest;
  // Its dependencies and (optional) peers, resolved as npm would install them: from ours.
  for (const name of [...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]) linkDependency(name);
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships dist/, LICENSE, README.md and package.json only: no shaders/, src/ or tests', () => {
    const paths = pack.files.map((f) => f.path);
    const outside = paths.filter((p) => !p.startsWith('dist/') && !['LICENSE', 'README.md', 'package.json'].includes(p));
    expect(outside).toEqual([]);
    // WGSL travels inlined in the modules (dist.test.ts checks every shader is there), never as files.
    expect(paths.filter((p) => /\.(?:wgsl|ts)$/.test(p) && !p.endsWith('.d.ts'))).toEqual([]);
    expect(paths.filter((p) => p.endsWith('.map'))).toEqual([]);
    // Every file "exports" names is in the tarball.
    for (const [subpath, target] of Object.entries(manifest.exports)) {
      for (const file of [target.import, target.default, target.types])
        expect(paths, `${subpath} → ${file}`).toContain(posix.normalize(file));
    }
    const sum = (pred: (p: string) => boolean): number => pack.files.filter((f) => pred(f.path)).reduce((a, f) => a + f.size, 0);
    const js = sum((p) => p.endsWith('.js'));
    const dts = sum((p) => p.endsWith('.d.ts'));
    expect(js + dts + sum((p) => !p.startsWith('dist/'))).toBe(pack.unpackedSize);
    console.log(
      `[pack] ${pack.filename}: ${pack.files.length} files, tarball ${kib(pack.size)}, unpacked ${kib(pack.unpackedSize)} ` +
        `(dist JS ${kib(js)}, declarations ${kib(dts)}, README/LICENSE/package.json ${kib(pack.unpackedSize - js - dts)})`,
    );
  });

  it('"dependencies" are what the shipped code and declarations import; bundled libraries are not among them', () => {
    const root = join(consumer, 'node_modules', 'webgpu-batchnorm');
    const files = pack.files.map((f) => f.path).filter((p) => p.startsWith('dist/'));
    const code = files.filter((p) => p.endsWith('.js')).map((p) => readFileSync(join(root, p), 'utf8'));
    // The modules import nothing bare: fflate and @bufbuild/protobuf are bundled, `webgpu` (the
    // optional peer) is a runtime import() through a variable, invisible here and to bundlers.
    expect([...bareImports(code.join('\n'), false)]).toEqual([]);
    const declarations = reachableDeclarations(root);
    const typeImports = bareImports(declarations.map((p) => readFileSync(join(root, p), 'utf8')).join('\n'), true);
    // A types-only dependency, then: the declarations reference it, so it must install with us.
    expect([...typeImports].sort()).toEqual(Object.keys(manifest.dependencies ?? {}).sort());
    expect(manifest.peerDependencies).toEqual({ webgpu: expect.any(String) });
    expect(manifest.peerDependenciesMeta?.['webgpu']?.optional).toBe(true);
    console.log(
      `[pack] dependencies: ${JSON.stringify(manifest.dependencies)}; ${declarations.length} of ${files.filter((p) => p.endsWith('.d.ts')).length} declaration files reachable from the entries`,
    );
  });

  it('repository, homepage and bugs name one GitHub repository', () => {
    const repo = /^git\+https:\/\/github\.com\/([\w.-]+\/[\w.-]+)\.git$/.exec(manifest.repository?.url ?? '')?.[1];
    expect(manifest.repository?.type).toBe('git');
    expect(repo).toBeDefined();
    expect(manifest.homepage).toBe(`https://github.com/${repo}#readme`);
    expect(manifest.bugs?.url).toBe(`https://github.com/${repo}/issues`);
  });
});

describe('a consumer project with the tarball installed', () => {
  it('Node: import of every entry, a forward on cpu and on webgpu (the peer found from the consumer)', () => {
    const specifiers = (Object.keys(LIBRARY_ENTRIES) as EntryName[]).map((n) => `webgpu-batchnorm${subpathOf(n).slice(1)}`);
    const script = `
      import { createRequire } from 'node:module';
      const where = createRequire(import.meta.url).resolve('webgpu-batchnorm');
      const entries = {};
      for (const s of ${JSON.stringify(specifiers)}) entries[s] = Object.keys(await import(s)).length;
      const lib = await import('webgpu-batchnorm');
      const out = { where, entries };
      for (const backend of ['cpu', 'webgpu']) {
        const ctx = await lib.createContext({ backend });
        const bn = new lib.BatchNorm1d(ctx, 2);
        const y = bn.forward(ctx.tensor(${JSON.stringify(INPUT)}, ${JSON.stringify(SHAPE)}));
        out[backend] = { backend: ctx.backend, y: Array.from(await y.read()) };
        ctx.destroy();
      }
      console.log(JSON.stringify(out));
    `;
    const out = JSON.parse(runNode(['--input-type=module'], script)) as {
      where: string;
      entries: Record<string, number>;
      cpu: { backend: string; y: number[] };
      webgpu: { backend: string; y: number[] };
    };
    expect(out.where.startsWith(join(consumer, 'node_modules', 'webgpu-batchnorm'))).toBe(true);
    for (const s of specifiers) expect(out.entries[s], s).toBeGreaterThan(0);
    expect(out.cpu.backend).toBe('cpu');
    expect(out.webgpu.backend).toBe('webgpu');
    expect(out.cpu.y).toHaveLength(INPUT.length);
    for (let i = 0; i < INPUT.length; i++) expect(Math.abs((out.webgpu.y[i] ?? 0) - (out.cpu.y[i] ?? 0)), `y[${i}]`).toBeLessThan(1e-5);
    // Normalized per channel: channel 0 is elements 0-2 and 6-8.
    const ch0 = [0, 1, 2, 6, 7, 8].reduce((a, i) => a + (out.cpu.y[i] ?? 0), 0);
    expect(Math.abs(ch0)).toBeLessThan(1e-5);
  });

  it('Node: require() of the root entry and of /io from CommonJS (require(esm), Node >= 20.19)', () => {
    const script = `
      const lib = require('webgpu-batchnorm');
      const io = require('webgpu-batchnorm/io');
      (async () => {
        const ctx = await lib.createContext({ backend: 'cpu' });
        const y = new lib.BatchNorm1d(ctx, 2).forward(ctx.tensor(${JSON.stringify(INPUT)}, ${JSON.stringify(SHAPE)}));
        const values = Array.from(await y.read());
        ctx.destroy();
        console.log(JSON.stringify({ requireModule: process.features.require_module ?? null, io: typeof io.readModelFile, sameError: io.ModelFileError === lib.ModelFileError, n: values.length }));
      })();
    `;
    const out = JSON.parse(runNode(['--input-type=commonjs'], script)) as {
      requireModule: boolean | null;
      io: string;
      sameError: boolean;
      n: number;
    };
    expect(out).toEqual({ requireModule: true, io: 'function', sameError: true, n: INPUT.length });
  });

  it('TypeScript (NodeNext) resolves the declarations and @webgpu/types from the installed copy', () => {
    const file = join(consumer, 'main.ts');
    const source = `
      import { createContext, BatchNorm2d, type Tensor } from 'webgpu-batchnorm';
      import { readModelFile, type ModelFile } from 'webgpu-batchnorm/io';
      export async function use(device: GPUDevice): Promise<number> {
        const ctx = await createContext({ device });
        const x: Tensor<'float32'> = ctx.tensor(new Float32Array(12), [1, 3, 2, 2]);
        const y: Float32Array = await new BatchNorm2d(ctx, 3).forward(x).read();
        const file: ModelFile = await readModelFile(new Uint8Array(0));
        return y.length + file.tensors.size;
      }
    `;
    const diagnostics = typeCheck(file, source, {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2022.d.ts'],
      types: [],
      strict: true,
      skipLibCheck: true,
      noEmit: true,
    });
    expect(diagnostics).toEqual([]);
  });

  it('browser apps of the root entry and of /io build with Vite, esbuild and Rolldown: no node: module, sizes printed', async () => {
    const sizes: string[] = [];
    const bundles: Partial<Record<`${EntryName}/${Bundler}`, AppBundle>> = {};
    for (const entry of ['index', 'io'] as const) {
      for (const bundler of BUNDLERS) {
        const dir = join(consumer, `app-${entry}-${bundler}`);
        mkdirSync(dir);
        const bundle = await buildBrowserApp(dir, ENTRY_USAGE[entry], bundler);
        bundles[`${entry}/${bundler}`] = bundle;
        expect(bundle.code, `${entry}/${bundler}: node: specifier`).not.toMatch(/['"]node:/);
        expect(bundle.code, `${entry}/${bundler}: require()`).not.toMatch(/\brequire\(\s*['"]/);
        sizes.push(
          `${entry === 'index' ? 'webgpu-batchnorm' : 'webgpu-batchnorm/io'} via ${bundler}: ${kib(bundle.bytes)} (gzip ${kib(bundle.gzipBytes)})`,
        );
      }
    }
    // The root app carries the shaders and the module classes, not the file parsers; /io the reverse.
    // Every bundler: a real app (not an empty output), the shaders in the root app only.
    for (const bundler of BUNDLERS) {
      const root = bundles[`index/${bundler}`];
      const io = bundles[`io/${bundler}`];
      expect(root?.bytes ?? 0, `index/${bundler}: bytes`).toBeGreaterThan(10_000);
      expect(io?.bytes ?? 0, `io/${bundler}: bytes`).toBeGreaterThan(10_000);
      expect(root?.code, `index/${bundler}`).toMatch(/@compute/);
      expect(io?.code, `io/${bundler}`).not.toMatch(/@compute/);
    }
    console.log(`[pack] minified browser apps from the tarball: ${sizes.join('; ')}`);
  }, 300_000);
});
