import { it } from 'vitest';
import { createContext } from '../src/index.js';
import { runTrainingExample } from '../examples/training.js';
it('tmp', async () => {
  for (const backend of ['cpu', 'webgpu'] as const) {
    const ctx = await createContext({ backend });
    for (const useBatchNorm of [true, false]) {
      const r = await runTrainingExample(ctx, { steps: 400, useBatchNorm, logEvery: 50 });
      console.log(backend, useBatchNorm, r.losses.map((e) => `${e.step}:${e.loss.toFixed(3)}/${e.accuracy.toFixed(2)}`).join(' '), 'acc', r.accuracy, 'evalLoss', r.evalLoss.toFixed(3), 'ms', r.msPerStep.toFixed(2), r.buffersCreated);
    }
    await ctx.sync();
    ctx.destroy();
  }
}, 300000);
