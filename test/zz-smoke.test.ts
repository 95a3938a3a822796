import { expect, it } from 'vitest';
import { createContext, BatchNorm2d } from '../src/index.js';
it('smoke', async () => {
  for (const backend of ['webgpu', 'cpu'] as const) {
    const ctx = await createContext({ backend });
    const N = 2, C = 3, H = 4, W = 5;
    const data = Float32Array.from({ length: N * C * H * W }, (_, i) => Math.sin(i) * 3 + 1e4 + (i % 7));
    for (const layout of ['channels_first', 'channels_last'] as const) {
      const x = ctx.tensor(data, [N, C, H, W], { layout });
      const bn = new BatchNorm2d(ctx, C, { momentum: null });
      const y = bn.forward(x);
      const out = await y.read();
      const sd = await bn.stateDict();
      console.log(backend, layout, out.slice(0, 6), sd);
      bn.eval();
      const y2 = await bn.forward(x).read();
      console.log(y2.slice(0, 4));
    }
    const x = ctx.tensor(data.slice(0, 2*64), [2, 64], {});
    const bn = new BatchNorm2d(ctx, 64);
    ctx.destroy();
  }
});
