import { backwardElementwise } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/**
 * shaders/backward-elementwise.wgsl, backward stage 2: grad_input (and the residual's gradient)
 * elementwise. Entries `elementwise_{cf,cl}{1,4}`; overrides `BATCH_STATS`, `GRAD_INPUT`,
 * `GRAD_RESIDUAL`, `ACTIVATION`, `RESIDUAL`, `CONTIGUOUS`.
 */
export const BACKWARD_ELEMENTWISE = /* @__PURE__ */ defineStage(backwardElementwise);
