import { backwardPrepare } from 'virtual:bn-shaders';
import { defineStage } from '../../../gpu/stage.js';

/**
 * shaders/backward-prepare.wgsl, the functional backward's stage 0: channelStats constants from a
 * caller's saved mean and invstd (or running variance), weight and bias. Entry `backward_prepare`.
 */
export const BACKWARD_PREPARE = /* @__PURE__ */ defineStage(backwardPrepare);
