#!/usr/bin/env node
/**
 * `npm run bench:node`: the same harness as the page, in Node on Dawn (SwiftShader), against the
 * built library (dist/index.js; `npm run bench:node` builds it first). The harness is TypeScript,
 * so it is bundled once with Vite's SSR build (bench/node/main.ts → dist-bench-node/main.mjs,
 * packages left external) and imported. Writes bench/results/node-latest.json (+ a timestamped
 * copy) and prints the table and the target checklist.
 *
 * Options: --samples N, --target MS (per sample), --quick (two small cases), --impls a,b,c,
 * --case NxCx...:cf|cl (repeatable).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = join(ROOT, 'dist-bench-node');

async function main() {
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) {
    throw new Error('dist/index.js is missing: run `npm run build` (or `npm run bench:node`, which builds first)');
  }
  const { build } = await import('vite');
  await build({
    configFile: false,
    root: ROOT,
    logLevel: 'warn',
    publicDir: false,
    build: {
      ssr: join(ROOT, 'bench', 'node', 'main.ts'),
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
    console.error(`[run-node] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
