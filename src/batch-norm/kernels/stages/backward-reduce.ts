import { backwardReduce } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/**
 * shaders/backward-reduce.wgsl, backward stage 1: per-channel partial sums (Σdy, Σdy·(x − mean))
 * through the epilogue's derivative (`reduce_{cf,cl}{1,4}`), then `reduce_finalize`: grad_weight,
 * grad_bias and the elementwise stage's constants. Overrides `ACTIVATION`, `RESIDUAL`,
 * `GRAD_RESIDUAL`, `PRELU_WEIGHT_GRAD`, `CONTIGUOUS`.
 */
export const BACKWARD_REDUCE = /* @__PURE__ */ defineStage(backwardReduce);
