#!/usr/bin/env node
/**
 * Runs the training example in Node (Dawn through the `webgpu` package, or the CPU backend) and
 * prints the loss curves with and without batch norm side by side.
 *
 *   node examples/train-node.mjs [--backend auto|webgpu|cpu] [--steps 400] [--seed 1] [--log-every 50]
 *
 * The example is TypeScript that imports WGSL (`?raw`, and the library's `virtual:bn-shaders`), so it is loaded through Vite's SSR
 * module loader (the same transform vitest uses); nothing is built first. Without a GPU, point
 * VK_ICD_FILENAMES at a Vulkan ICD such as SwiftShader's (done here when Chromium's exists).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
// Dawn's Vulkan loader complains on stderr without one (headless machines, CI).
process.env.XDG_RUNTIME_DIR ??= '/tmp';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}
const backend = option('backend', 'auto');
const steps = Number(option('steps', '400'));
const seed = Number(option('seed', '1'));
const logEvery = Number(option('log-every', '50'));

const root = fileURLToPath(new URL('..', import.meta.url));
const server = await createServer({
  root,
  // vite.config.ts brings the plugin that serves the library's shaders (virtual:bn-shaders).
  configFile: fileURLToPath(new URL('../vite.config.ts', import.meta.url)),
  logLevel: 'error',
  appType: 'custom',
  server: { middlewareMode: true, hmr: false, ws: false },
  optimizeDeps: { noDiscovery: true, include: [] },
});
try {
  // One loader for both, so the example and this script share the library's module instances.
  const { createContext } = await server.ssrLoadModule('/src/index.ts');
  const { runTrainingExample } = await server.ssrLoadModule('/examples/training.ts');
  const ctx = await createContext({ backend });
  console.log(`backend: ${ctx.backend}${ctx.fallbackReason ? ` (fell back: ${ctx.fallbackReason})` : ''}`);
  const runs = [];
  for (const useBatchNorm of [true, false]) {
    runs.push(await runTrainingExample(ctx, { steps, seed, useBatchNorm, logEvery }));
  }
  await ctx.sync();
  const [bn, plain] = runs;
  console.log('\n step | loss with BatchNorm | loss without');
  bn.losses.forEach((e, i) => {
    const other = plain.losses[i];
    console.log(`${String(e.step).padStart(5)} | ${e.loss.toFixed(4).padStart(19)} | ${other ? other.loss.toFixed(4).padStart(12) : ''}`);
  });
  for (const r of runs) {
    console.log(
      `\n${r.useBatchNorm ? 'with BatchNorm   ' : 'without BatchNorm'}: first loss ${r.firstLoss.toFixed(4)}, final batch loss ${r.finalLoss.toFixed(4)}, ` +
        `eval loss ${r.evalLoss.toFixed(4)}, accuracy ${(100 * r.accuracy).toFixed(1)}%, ${r.msPerStep.toFixed(2)} ms/step, ` +
        `GPU buffers ${r.buffersCreated.afterWarmup} after warm-up → ${r.buffersCreated.afterLastStep} after step ${r.steps}`,
    );
  }
  ctx.destroy();
} finally {
  await server.close();
}
