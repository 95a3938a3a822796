/**
 * One shard of a data-parallel step: its own context (its own GPUDevice on WebGPU), its own
 * SyncBatchNorm2d, its slice of the batch. Partials go out and come back through the transport.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createContext } from '../../dist/index.js';
import {
  SyncBatchNorm,
  gradSumsFromArray,
  gradSumsToArray,
  mergeGradSums,
  mergeMoments,
  momentsFromArray,
  momentsToArray,
} from '../../dist/sync.js';
import { shardData } from './data.mjs';
import { workerTransport } from './transport.mjs';

const { rank, world, backend, n, channels, hw, steps, lr } = workerData;
const transport = workerTransport(parentPort, world);

const ctx = await createContext({ backend });
const bn = new SyncBatchNorm(ctx, channels, { momentum: null });
const shape = [n, channels, hw, hw];
let last = null;
for (let step = 0; step < steps; step++) {
  const { x: xs, dy: dys } = shardData(rank, step, n, channels, hw);
  const x = ctx.tensor(xs, shape);
  const dy = ctx.tensor(dys, shape);

  // Forward: local moments → all-gather → the same merged statistics on every shard.
  const moments = await bn.momentsPartial(x);
  const merged = mergeMoments((await transport.allGather(momentsToArray(moments))).map(momentsFromArray));
  const y = bn.forward(x, merged);

  // Backward: local (Σdy, Σdy·x̂) → all-gather → this shard's grad_input and the whole batch's
  // grad_weight / grad_bias (identical on every shard, so the SGD step keeps replicas in sync).
  const sums = await bn.gradPartial(dy);
  const mergedSums = mergeGradSums((await transport.allGather(gradSumsToArray(sums))).map(gradSumsFromArray));
  const { gradInput, gradWeight, gradBias } = bn.backward(dy, mergedSums);
  const [w, b, gw, gb] = await Promise.all([bn.weight.read(), bn.bias.read(), gradWeight.read(), gradBias.read()]);
  bn.loadStateDict({
    ...(await bn.stateDict()),
    weight: w.map((v, c) => v - lr * gw[c]),
    bias: b.map((v, c) => v - lr * gb[c]),
  });
  last = { y: await y.read(), gradInput: await gradInput.read() };
  for (const t of [x, dy, y, gradInput, gradWeight, gradBias]) t.destroy();
}
const state = await bn.stateDict();
// Leave no WebGPU promise pending when the thread ends: Dawn's Node binding aborts the whole
// process on one. bn.destroy() schedules its buffers' release after the queue drains, and sync()
// waits for exactly that. (ctx.destroy() would schedule more releases on a device it then
// destroys, so the thread simply ends and takes the device with it.)
bn.destroy();
await ctx.sync();
parentPort.postMessage({ type: 'done', rank, backend: ctx.backend, state, last });
