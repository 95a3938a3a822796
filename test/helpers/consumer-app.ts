/**
 * Consumer projects of the built package, shared by test/dist.test.ts (the checkout's dist/,
 * linked into a temporary node_modules) and test/pack.test.ts (the tarball `npm pack` makes,
 * unpacked into one): the app a user writes against each entry, the bundlers a user builds it
 * with, and a TypeScript program checked as a consumer's tsc would check it.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import ts from 'typescript';
import type { LIBRARY_ENTRIES } from '../../build/entries.js';
import { REPO_ROOT } from '../browser/dist.js';

export type EntryName = keyof typeof LIBRARY_ENTRIES;

/** Per entry, the smallest app that uses it the way the README shows (what the size claims measure). */
export const ENTRY_USAGE: Readonly<Record<EntryName, string>> = {
  index:
    "import { createContext, BatchNorm2d } from 'webgpu-batchnorm';\nconst ctx = await createContext();\nconsole.log(new BatchNorm2d(ctx, 3));",
  io: "import { readModelFile, loadBatchNorm } from 'webgpu-batchnorm/io';\nconsole.log(readModelFile, loadBatchNorm);",
  sync: "import { SyncBatchNorm, mergeMoments } from 'webgpu-batchnorm/sync';\nconsole.log(SyncBatchNorm, mergeMoments);",
  fold: "import { foldBatchNormTensors } from 'webgpu-batchnorm/fold';\nconsole.log(foldBatchNormTensors);",
  node: "import { readModelFileFromPath } from 'webgpu-batchnorm/node';\nconsole.log(readModelFileFromPath);",
};

/**
 * The browser bundlers an app is built with: Vite (its programmatic `build()`, production mode),
 * esbuild (a devDependency, bundling and minifying for the browser) and Rolldown on its own
 * (`platform: 'browser'`, ESM, minified; Vite 8's bundler).
 */
export const BUNDLERS = ['vite', 'esbuild', 'rolldown'] as const;
export type Bundler = (typeof BUNDLERS)[number];

/** What a bundler emitted for an app: every JS file joined, its bytes and gzip bytes. */
export interface AppBundle {
  readonly code: string;
  readonly bytes: number;
  readonly gzipBytes: number;
}

function bundleOf(chunks: readonly string[]): AppBundle {
  const code = chunks.join('\n');
  return { code, bytes: Buffer.byteLength(code), gzipBytes: gzipSync(code, { level: 9 }).length };
}

/**
 * Builds the app `source` (an ES module, written to `dir/main.js`) for the browser with
 * `bundler`. Bare imports resolve from `dir` upwards, as in a user's project. Throws on any
 * build error.
 */
export async function buildBrowserApp(dir: string, source: string, bundler: Bundler): Promise<AppBundle> {
  const main = join(dir, 'main.js');
  writeFileSync(main, `${source}\n`);
  if (bundler === 'vite') {
    const { build } = await import('vite');
    writeFileSync(join(dir, 'index.html'), '<script type="module" src="./main.js"></script>\n');
    await build({ root: dir, logLevel: 'silent', configFile: false, build: { outDir: 'out-vite', target: 'es2022' } });
    const assets = join(dir, 'out-vite', 'assets');
    return bundleOf(
      readdirSync(assets)
        .filter((f) => f.endsWith('.js'))
        .map((f) => readFileSync(join(assets, f), 'utf8')),
    );
  }
  if (bundler === 'esbuild') {
    const { build } = await import('esbuild');
    const result = await build({
      entryPoints: [main],
      absWorkingDir: dir,
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      minify: true,
      outfile: join(dir, 'out-esbuild', 'main.js'),
      write: false,
      logLevel: 'silent',
    });
    return bundleOf(result.outputFiles.filter((f) => f.path.endsWith('.js')).map((f) => f.text));
  }
  const { rolldown } = await import('rolldown');
  const bundle = await rolldown({ input: main, cwd: dir, platform: 'browser', logLevel: 'silent' });
  try {
    const { output } = await bundle.generate({ format: 'esm', minify: true });
    return bundleOf(output.flatMap((o) => (o.type === 'chunk' ? [o.code] : [])));
  } finally {
    await bundle.close();
  }
}

/** Diagnostics of `source` compiled as the file `consumer` with `options` (the file exists only in memory). */
export function typeCheck(consumer: string, source: string, options: ts.CompilerOptions): string[] {
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.readFile = (f) => (f === consumer ? source : readFile(f));
  host.fileExists = (f) => f === consumer || fileExists(f);
  const program = ts.createProgram([consumer], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where =
      d.file && d.start !== undefined
        ? `${relative(REPO_ROOT, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}`
        : '';
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}
