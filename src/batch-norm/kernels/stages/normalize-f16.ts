import { normalizeF16 } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/**
 * shaders/normalize-f16.wgsl (composed with normalize.wgsl), the native-f16 forward elementwise
 * stage for adapters with `shader-f16`: the packed-half entries of normalize.wgsl with `f16`
 * arithmetic on load and store. Selected by feature (see gpu-forward.ts); never on SwiftShader.
 */
export const NORMALIZE_F16 = /* @__PURE__ */ defineStage(normalizeF16);
