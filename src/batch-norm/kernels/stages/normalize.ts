import { normalize } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/**
 * shaders/normalize.wgsl, the forward's elementwise stage: y = (x − K)·scale + shiftedBias and the
 * fused epilogue; in evaluation it derives the constants from the running statistics. Entries
 * `normalize_{cf,cl}{1,4}`; overrides `ACTIVATION`, `RESIDUAL`, `CONTIGUOUS`.
 */
export const NORMALIZE = /* @__PURE__ */ defineStage(normalize);
