import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { LIBRARY_ENTRIES } from './build/entries.js';
import { wgslShaders } from './build/wgsl-shaders.js';

const fflateLicense = readFileSync(fileURLToPath(new URL('node_modules/fflate/LICENSE', import.meta.url)), 'utf8')
  .trim()
  .replace(/\*\//g, '* /');
const commented = (text: string): string =>
  text
    .split('\n')
    .map((line) => ` * ${line}`.trimEnd())
    .join('\n');
// fflate (MIT, the .pt zip reader) and @bufbuild/protobuf's wire reader (the .onnx reader) are
// bundled, so their notices travel with the bundle.
const banner = `/*!\n * webgpu-batchnorm. Bundles fflate (https://github.com/101arrowz/fflate):\n *\n${commented(fflateLicense)}\n *\n * @bufbuild/protobuf (https://github.com/bufbuild/protobuf-es), Copyright 2021-2026 Buf Technologies, Inc.,\n * licensed under the Apache License, Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0) and BSD-3-Clause.\n */`;

/**
 * Library build: one ES module per package entry (`dist/index.js`, `io.js`, `sync.js`, `fold.js`,
 * `node.js`, see build/entries.ts) and shared chunks, with every shader inlined together with its
 * bind-group and uniform layouts, reflected at build time (build/wgsl-shaders.ts), so no WGSL
 * parser ships and the files import as-is in Node and in a browser (no import map). Each shader
 * is its own side-effect-free export, so an app's bundler keeps only those it dispatches.
 * Declarations come from `tsc -p tsconfig.build.json` afterwards (see the `build` script).
 *
 * Only `webgpu` (Dawn's Node bindings, an optional peer) stays external. src/gpu/acquire.ts
 * imports it through a variable specifier, so the bundler never sees it; listing it here as well
 * keeps it external should that import ever become a literal.
 */
export default defineConfig({
  // Nothing from public/ or index.html belongs in the library.
  publicDir: false,
  plugins: [wgslShaders()],
  build: {
    outDir: 'dist',
    // tsc writes the .d.ts files into dist/ after vite; vite empties it first so no stale output survives.
    emptyOutDir: true,
    target: 'es2022',
    minify: false,
    sourcemap: false,
    copyPublicDir: false,
    reportCompressedSize: false,
    lib: {
      entry: Object.fromEntries(
        Object.entries(LIBRARY_ENTRIES).map(([name, file]) => [name, fileURLToPath(new URL(file, import.meta.url))]),
      ),
      formats: ['es'],
      fileName: (_format, name) => `${name}.js`,
    },
    rolldownOptions: {
      external: ['webgpu', /^webgpu\//, /^node:/],
      output: {
        // Code the entries share (context, tensors, errors, the kernels) lives in chunks, so a class
        // is one class whichever entry it is imported through.
        chunkFileNames: 'chunks/[name]-[hash].js',
        // TSDoc travels in dist/*.d.ts, where editors read it; the bundle keeps the code and its
        // line comments (the why), and legal and bundler annotations.
        comments: { jsdoc: false, legal: true, annotation: true },
        banner,
      },
    },
  },
});
