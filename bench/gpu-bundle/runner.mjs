#!/usr/bin/env node
/**
 * Entry point of the GPU bundle's app folder: runs the bundled Node benchmark (bench/main.mjs,
 * built from bench/node/main.ts) with this folder as its root, so it finds dist/index.js,
 * node_modules/webgpu and node_modules/onnxruntime-web here and writes bench/results/ here.
 * Arguments are the benchmark's own (--quick, --cases, --samples, --target, --impls).
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from './bench/main.mjs';

const root = dirname(fileURLToPath(import.meta.url));
main(root, process.argv.slice(2)).then(
  // Dawn keeps the event loop alive; leave explicitly.
  (code) => process.exit(code),
  (err) => {
    console.error(`[gpu-bundle] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
