#!/usr/bin/env node
/**
 * Runs the "bring your model" CNN example in Node: loads examples/cnn/model.{pt,safetensors,onnx},
 * runs the example's WGSL convolutions around the library's BatchNorm2d (as layers, and folded into
 * the convolutions), compares the logits with PyTorch's and prints images/s.
 *
 *   node examples/cnn/infer-node.mjs [--backend auto|webgpu|cpu] [--reps 5]
 *
 * Loaded through Vite's SSR module loader like examples/train-node.mjs (the example is TypeScript
 * that imports WGSL with `?raw`); nothing is built first.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
process.env.XDG_RUNTIME_DIR ??= '/tmp';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}
const backend = option('backend', 'auto');
const reps = Number(option('reps', '5'));

const root = fileURLToPath(new URL('../..', import.meta.url));
const file = (name) => readFileSync(new URL(name, import.meta.url));
const server = await createServer({
  root,
  configFile: false,
  logLevel: 'error',
  appType: 'custom',
  server: { middlewareMode: true, hmr: false, ws: false },
  optimizeDeps: { noDiscovery: true, include: [] },
});
try {
  const { createContext } = await server.ssrLoadModule('/src/index.ts');
  const { runCnnExample } = await server.ssrLoadModule('/examples/cnn/inference.ts');
  const ctx = await createContext({ backend });
  console.log(`backend: ${ctx.backend}${ctx.fallbackReason ? ` (fell back: ${ctx.fallbackReason})` : ''}`);
  const files = {
    pt: file('model.pt'),
    safetensors: file('model.safetensors'),
    onnx: file('model.onnx'),
    reference: file('reference.safetensors'),
  };
  const r = await runCnnExample(ctx, files, { timingReps: reps });
  console.log(
    `${r.images} images; PyTorch float64 logits up to ${r.maxAbsLogit.toFixed(2)}; PyTorch's own float32 error ${r.torchFloat32Error.toExponential(2)}\n`,
  );
  console.log('file         | variant   | max |logit error| | accuracy | images/s');
  for (const row of r.rows) {
    console.log(
      `${row.format.padEnd(12)} | ${row.variant.padEnd(9)} | ${row.maxAbsError.toExponential(2).padStart(17)} | ${(100 * row.accuracy).toFixed(1).padStart(7)}% | ${row.imagesPerSecond.toFixed(0).padStart(8)}`,
    );
  }
  ctx.destroy();
} finally {
  await server.close();
}
