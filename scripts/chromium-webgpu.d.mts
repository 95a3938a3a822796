/** Types of scripts/chromium-webgpu.mjs. */

/** Debian 12's chromium package. */
export declare const CHROMIUM_PATH: '/usr/bin/chromium';
/** Chromium flags that give headless Chromium a WebGPU adapter on SwiftShader. */
export declare const CHROMIUM_WEBGPU_ARGS: readonly string[];
