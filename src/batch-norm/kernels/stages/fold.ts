import { fold } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/** shaders/fold.wgsl: a BN folded into the preceding layer's weight and bias. Entry `fold_batch_norm`. */
export const FOLD = /* @__PURE__ */ defineStage(fold);
