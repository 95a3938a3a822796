#!/usr/bin/env node
/**
 * Memory under ever new input sizes (issue #7 §5): one context per backend feeds 499 input lengths
 * through forward + backward of BatchNorm1d(64) on [4, 64, L], L = 2..500, reads every output, and
 * prints GPU buffers created (all, and by the tensor pool), bytes kept by the pool, and process RSS
 * growth. Each backend runs in its own child process so RSS is not shared. Against the built
 * library: `npm run build && node bench/memory-sizes.mjs [--pool-bytes N]`. Not a test: the numbers
 * go in the README's Memory paragraph.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 2 ** 20;

async function measure(backend, poolBytes) {
  process.env['VK_ICD_FILENAMES'] ??= '/usr/lib/chromium/vk_swiftshader_icd.json';
  const { createContext, BatchNorm1d } = await import(pathToFileURL(join(ROOT, 'dist', 'index.js')).href);
  const ctx = await createContext(poolBytes === undefined ? { backend } : { backend, poolBytes });
  const bn = new BatchNorm1d(ctx, 64);
  globalThis.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const statsBefore = ctx.stats;
  for (let len = 2; len <= 500; len++) {
    const n = 4 * 64 * len;
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.37 + len);
    const x = ctx.tensor(data, [4, 64, len]);
    const y = bn.forward(x);
    const { gradInput, gradWeight, gradBias } = bn.backward(y);
    await y.read();
    await gradInput.read();
    for (const t of [x, y, gradInput, gradWeight, gradBias]) t.destroy();
  }
  await ctx.sync();
  globalThis.gc?.();
  const stats = ctx.stats;
  const result = {
    backend,
    poolBytes: ctx.poolBytes ?? null,
    buffersCreated: stats.buffersCreated - statsBefore.buffersCreated,
    // @internal counters, read here only to split tensor/staging buffers from uniforms and scratch
    poolBuffersCreated: ctx.gpu ? ctx.gpu.pool.created : 0,
    pooledMiB: stats.pooledBytes === undefined ? null : +(stats.pooledBytes / MiB).toFixed(1),
    rssGrowthMiB: +((process.memoryUsage().rss - rssBefore) / MiB).toFixed(0),
  };
  ctx.destroy();
  return result;
}

const args = process.argv.slice(2);
const child = args.indexOf('--child');
const poolArg = args.indexOf('--pool-bytes');
const poolBytes = poolArg >= 0 ? Number(args[poolArg + 1]) : undefined;
if (child >= 0) {
  process.stdout.write(JSON.stringify(await measure(args[child + 1], poolBytes)));
} else {
  const rows = [];
  for (const backend of ['webgpu', 'cpu']) {
    const extra = poolBytes === undefined ? [] : ['--pool-bytes', String(poolBytes)];
    const out = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', backend, ...extra], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    rows.push(JSON.parse(out));
  }
  console.table(rows);
}
