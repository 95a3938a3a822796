#!/usr/bin/env node
/**
 * SyncBatchNorm across Node worker_threads: K workers, each with its own context (on WebGPU its
 * own GPUDevice), train one BatchNorm2d layer data-parallel on uneven slices of a batch, exchanging
 * partials by message passing only. Then the main thread replays the same steps on ONE ordinary
 * BatchNorm2d over the concatenated batch and prints how far each worker is from it.
 *
 *   npm run build && node examples/sync-bn/main.mjs [--workers 3] [--backend webgpu|cpu|mixed] [--steps 3]
 *
 * Without a GPU, VK_ICD_FILENAMES is pointed at SwiftShader when Chromium's exists.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { BatchNorm2d, createContext } from '../../dist/index.js';
import { shardData } from './data.mjs';
import { relay } from './transport.mjs';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
process.env.XDG_RUNTIME_DIR ??= '/tmp';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}
const world = Number(option('workers', '3'));
const mode = option('backend', 'webgpu');
const steps = Number(option('steps', '3'));
const channels = 8;
const hw = 6;
const lr = 0.05;
const sizes = Array.from({ length: world }, (_, r) => r + 2); // uneven shards: 2, 3, 4, ...
const backendOf = (r) => (mode === 'mixed' ? (r % 2 === 0 ? 'webgpu' : 'cpu') : mode);

const started = performance.now();
const workers = sizes.map(
  (n, rank) =>
    new Worker(new URL('./worker.mjs', import.meta.url), {
      workerData: { rank, world, backend: backendOf(rank), n, channels, hw, steps, lr },
    }),
);
relay(workers);
const results = await Promise.all(
  workers.map(
    (w) =>
      new Promise((resolve, reject) => {
        w.on('message', (m) => m?.type === 'done' && resolve(m));
        w.on('error', reject);
        w.on('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
      }),
  ),
);
for (const w of workers) await w.terminate();
const ms = performance.now() - started;

// The single-process reference: the same steps on the concatenated batch, on the CPU backend.
const ctx = await createContext({ backend: 'cpu' });
const bn = new BatchNorm2d(ctx, channels, { momentum: null });
const total = sizes.reduce((a, b) => a + b, 0);
let lastY = null;
let lastGradInput = null;
for (let step = 0; step < steps; step++) {
  const parts = sizes.map((n, rank) => shardData(rank, step, n, channels, hw));
  const concat = (key) => {
    const out = new Float32Array(parts.reduce((a, p) => a + p[key].length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p[key], at);
      at += p[key].length;
    }
    return out;
  };
  const x = ctx.tensor(concat('x'), [total, channels, hw, hw]);
  const dy = ctx.tensor(concat('dy'), [total, channels, hw, hw]);
  const y = bn.forward(x);
  const { gradInput, gradWeight, gradBias } = bn.backward(dy);
  const [w, b, gw, gb] = await Promise.all([bn.weight.read(), bn.bias.read(), gradWeight.read(), gradBias.read()]);
  bn.loadStateDict({ ...(await bn.stateDict()), weight: w.map((v, c) => v - lr * gw[c]), bias: b.map((v, c) => v - lr * gb[c]) });
  lastY = await y.read();
  lastGradInput = await gradInput.read();
}
const ref = await bn.stateDict();

const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
console.log(
  `${world} workers (${results.map((r) => r.backend).join(', ')}), shards of ${sizes.join(', ')} x [${channels}, ${hw}, ${hw}], ${steps} steps in ${ms.toFixed(0)} ms`,
);
console.log('max |worker − one BatchNorm2d on the concatenated batch| after the last step:');
let offset = 0;
let worst = 0;
for (const r of results.sort((a, b) => a.rank - b.rank)) {
  const len = r.last.y.length;
  const d = {
    output: maxDiff(r.last.y, lastY.subarray(offset, offset + len)),
    grad_input: maxDiff(r.last.gradInput, lastGradInput.subarray(offset, offset + len)),
    running_mean: maxDiff(r.state.running_mean, ref.running_mean),
    running_var: maxDiff(r.state.running_var, ref.running_var),
    weight: maxDiff(r.state.weight, ref.weight),
    bias: maxDiff(r.state.bias, ref.bias),
  };
  offset += len;
  worst = Math.max(worst, ...Object.values(d));
  const tracked = r.state.num_batches_tracked === ref.num_batches_tracked ? 'num_batches_tracked equal' : 'num_batches_tracked DIFFERS';
  console.log(
    `  worker ${r.rank} (${r.backend}): ${Object.entries(d)
      .map(([k, v]) => `${k} ${v.toExponential(1)}`)
      .join(', ')}; ${tracked}`,
  );
}
console.log(worst < 1e-4 ? 'OK: every worker matches the single-process batch norm' : 'MISMATCH');
bn.destroy();
ctx.destroy();
process.exit(worst < 1e-4 ? 0 : 1);
