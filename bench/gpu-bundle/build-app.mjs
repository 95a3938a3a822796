#!/usr/bin/env node
/**
 * Bundles the Node benchmark (bench/node/main.ts and the harness) into ONE plain-JS file for the
 * GPU bundle: `node bench/gpu-bundle/build-app.mjs OUT_FILE`. Unlike bench/run-node.mjs, which
 * leaves packages external because node_modules sits next to it, everything is inlined here
 * (tfjs included) except Dawn's `webgpu` package, which loads a native addon and travels as its
 * own folder. The library (dist/index.js) and ONNX Runtime Web's bundle are imported at run time
 * by file URL, so they stay separate files as well.
 */
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outFile = process.argv[2];
if (!outFile) {
  console.error('usage: node bench/gpu-bundle/build-app.mjs OUT_FILE');
  process.exit(2);
}

const { build } = await import('vite');
await build({
  configFile: false,
  root: ROOT,
  logLevel: 'warn',
  publicDir: false,
  ssr: { noExternal: true, external: ['webgpu'] },
  build: {
    ssr: join(ROOT, 'bench', 'node', 'main.ts'),
    outDir: dirname(resolve(outFile)),
    emptyOutDir: false,
    target: 'node20',
    minify: true,
    reportCompressedSize: false,
    rolldownOptions: { output: { entryFileNames: basename(outFile), codeSplitting: false } },
  },
});
