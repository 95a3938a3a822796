import { defineConfig } from 'vitest/config';

const swiftshaderIcd = '/usr/lib/chromium/vk_swiftshader_icd.json';

export default defineConfig({
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
