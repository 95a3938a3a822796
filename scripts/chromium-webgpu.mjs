/**
 * How this project starts headless Chromium with WebGPU: Debian's /usr/bin/chromium (installed by
 * scripts/setup.mjs, never downloaded) driven by playwright-core. Shared by test/browser.test.ts
 * and available to the benchmark runner:
 *
 *   import { chromium } from 'playwright-core';
 *   import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from './scripts/chromium-webgpu.mjs';
 *   const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_WEBGPU_ARGS });
 *
 * The page must come from a secure origin (http://127.0.0.1, see scripts/serve-static.mjs):
 * `navigator.gpu` does not exist on about:blank or file://.
 */

/** Debian 12's chromium package. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * On Chromium 156 without a GPU, `--enable-unsafe-webgpu` alone is what makes WebGPU work: it
 * allows the SwiftShader (Vulkan on the CPU) fallback adapter, which is otherwise blocklisted.
 * `--use-angle=swiftshader` and `--use-webgpu-adapter=swiftshader` pin SwiftShader even where a
 * real GPU exists, so numbers and timings do not depend on the machine. The rest keeps a headless
 * run quiet and container-friendly (no network chatter, /tmp instead of a small /dev/shm).
 */
export const CHROMIUM_WEBGPU_ARGS = Object.freeze([
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--use-angle=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
]);
