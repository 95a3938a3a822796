#!/usr/bin/env node
/**
 * Runs the issue-#10 sweeps (bench/sweep/main.ts) in Node on Dawn: bundles main.ts with Vite's SSR
 * build (for the `?raw` WGSL imports), then imports it. Options: see main.ts.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT_DIR = join(ROOT, 'dist-bench-sweep');

async function main() {
  const { build } = await import('vite');
  await build({
    configFile: false,
    root: ROOT,
    logLevel: 'warn',
    publicDir: false,
    build: {
      ssr: join(ROOT, 'bench', 'sweep', 'main.ts'),
      outDir: OUT_DIR,
      emptyOutDir: true,
      target: 'node20',
      minify: false,
      reportCompressedSize: false,
      rolldownOptions: { output: { entryFileNames: 'main.mjs' } },
    },
  });
  const { main: run } = await import(pathToFileURL(join(OUT_DIR, 'main.mjs')).href);
  return run(ROOT, process.argv.slice(2));
}

main().then(
  // Dawn keeps the event loop alive; leave explicitly.
  (code) => process.exit(code),
  (err) => {
    console.error(`[sweep] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
