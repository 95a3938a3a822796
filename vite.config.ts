import { defineConfig } from 'vitest/config';
import { wgslShaders } from './build/wgsl-shaders.js';

const swiftshaderIcd = '/usr/lib/chromium/vk_swiftshader_icd.json';

export default defineConfig({
  // The benchmark app: index.html → bench/app/main.ts, built into dist-bench/ by
  // bench/run-browser.mjs (`npm start`). The library build lives in vite.lib.config.ts.
  publicDir: false,
  // The library's shaders and their reflected layouts (virtual:bn-shaders), as in the library build.
  plugins: [wgslShaders()],
  build: {
    outDir: 'dist-bench',
    emptyOutDir: true,
    target: 'es2022',
    // tfjs and onnxruntime-web are large by nature; the warning says nothing useful here.
    chunkSizeWarningLimit: 8192,
    reportCompressedSize: false,
    // onnxruntime-web finds its .wasm with `new URL('ort-wasm-….wasm', import.meta.url)`; keep it a
    // separate file (never inlined) so Vite emits it next to the bundle.
    assetsInlineLimit: (file) => (file.endsWith('.wasm') ? false : undefined),
  },
  optimizeDeps: {
    // The dev server's pre-bundling would move ORT's module away from its .wasm files.
    exclude: ['onnxruntime-web'],
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Dawn in one process at a time: SwiftShader already uses every core, and parallel files only
    // fight over them.
    fileParallelism: false,
    env: {
      VK_ICD_FILENAMES: process.env['VK_ICD_FILENAMES'] ?? swiftshaderIcd,
      XDG_RUNTIME_DIR: process.env['XDG_RUNTIME_DIR'] ?? '/tmp',
    },
  },
});
