/**
 * SyncBatchNorm rows: one training step (forward and backward) of a batch split over
 * {@link SYNC_SHARDS} simulated shards on the shared device, two ways.
 * - `webgpu-batchnorm-sync`: everything in the caller's encoder: each shard's
 *   `encodeMomentsPartial` into its slot of one gathered buffer (the all-gather of a one-device
 *   simulation), `encodeForward` merging them on the GPU, `encodeGradPartial`, `encodeBackward`;
 *   K steps in one encoder, one submit.
 * - `webgpu-batchnorm-sync-host`: the host-merge path: `momentsPartial` (readback) per shard,
 *   `mergeMoments` in float64, `forward`, `gradPartial` (readback), `mergeGradSums`, `backward`:
 *   two readbacks per shard and step, as a transport that all-reduces on the host needs.
 * Shards are zero-copy slices of the harness's x / dy buffers along N (contiguous in both
 * layouts); both are checked against the whole batch's float64 references.
 */
import type * as Library from '../../src/index.js';
import { relativeError, worstError } from './data.js';
import { createTensorBuffer, poison, readFloats, submitTimed } from './gpu.js';
import { unavailableSet, type CaseContext, type Impl, type ImplSet } from './impl.js';
import type { SyncLibraryModule } from './types.js';

type SyncModule = InstanceType<SyncLibraryModule['SyncBatchNorm']>;

/** Shards the batch is split into (fewer when N is smaller). */
export const SYNC_SHARDS = 4;

const USAGE_STORAGE = 0x80;
const USAGE_COPY_DST = 0x08;

export function createSyncGpu(
  cc: CaseContext,
  ctx: Library.BatchNormContext | null,
  sync: SyncLibraryModule | null,
  which: 'encode' | 'host',
): ImplSet {
  const name = which === 'encode' ? 'webgpu-batchnorm-sync' : 'webgpu-batchnorm-sync-host';
  const gpu = cc.gpu;
  const xBuffer = cc.xBuffer;
  const dyBuffer = cc.dyBuffer;
  if (!gpu || !xBuffer || !dyBuffer || !ctx) return unavailableSet(name, ['sync-step'], 'no WebGPU device');
  if (!sync) return unavailableSet(name, ['sync-step'], 'the webgpu-batchnorm/sync entry did not load');
  const device = gpu.device;
  const d = cc.data;
  const g = d.geometry;
  const c = g.c;
  const n = cc.shape[0] ?? 1;
  const shards = Math.min(SYNC_SHARDS, n);
  const bounds = Array.from({ length: shards + 1 }, (_, i) => Math.round((i * n) / shards));
  const item = g.size / n;
  const layout = cc.layout;
  const shapeOf = (i: number): number[] => [(bounds[i + 1] as number) - (bounds[i] as number), ...cc.shape.slice(1)];
  const slice = (buffer: GPUBuffer, i: number, label: string): Library.Tensor =>
    ctx.tensorFromBuffer(buffer, shapeOf(i), { layout, byteOffset: (bounds[i] as number) * item * 4, label });
  const yBuffer = createTensorBuffer(device, `bench.${name}.y`, g.size * 4);
  const dxBuffer = createTensorBuffer(device, `bench.${name}.dx`, g.size * 4);
  const dwBuffers = Array.from({ length: shards }, (_, i) => createTensorBuffer(device, `bench.${name}.dw${i}`, c * 4));
  const dbBuffers = Array.from({ length: shards }, (_, i) => createTensorBuffer(device, `bench.${name}.db${i}`, c * 4));
  const moments = device.createBuffer({
    label: `bench.${name}.moments`,
    size: shards * c * sync.MOMENTS_RECORD_BYTES,
    usage: USAGE_STORAGE,
  });
  const grads = device.createBuffer({
    label: `bench.${name}.grads`,
    size: Math.ceil((shards * c * sync.GRAD_RECORD_BYTES) / 16) * 16,
    usage: USAGE_STORAGE | USAGE_COPY_DST,
  });
  const idx = Array.from({ length: shards }, (_, i) => i);
  const xs = idx.map((i) => slice(xBuffer, i, `x${i}`));
  const dys = idx.map((i) => slice(dyBuffer, i, `dy${i}`));
  const ys = idx.map((i) => slice(yBuffer, i, `y${i}`));
  const dxs = idx.map((i) => slice(dxBuffer, i, `dx${i}`));
  const dws = idx.map((i) => ctx.tensorFromBuffer(dwBuffers[i] as GPUBuffer, [c], { label: `dw${i}` }));
  const dbs = idx.map((i) => ctx.tensorFromBuffer(dbBuffers[i] as GPUBuffer, [c], { label: `db${i}` }));
  const modules = idx.map(() => {
    const bn = new sync.SyncBatchNorm(ctx, c, { eps: d.eps, momentum: d.momentum });
    bn.loadStateDict({ weight: d.weight, bias: d.bias, running_mean: d.runningMean, running_var: d.runningVar, num_batches_tracked: 0 });
    return bn;
  });

  const encodeStep = (e: GPUCommandEncoder): void => {
    const gatheredMoments = { buffer: moments, shards };
    const gatheredGrads = { buffer: grads, shards };
    for (const i of idx)
      (modules[i] as SyncModule).encodeMomentsPartial(e, xs[i] as Library.Tensor, moments, i * c * sync.MOMENTS_RECORD_BYTES);
    for (const i of idx) (modules[i] as SyncModule).encodeForward(e, xs[i] as Library.Tensor, ys[i] as Library.Tensor, gatheredMoments);
    for (const i of idx) (modules[i] as SyncModule).encodeGradPartial(e, dys[i] as Library.Tensor, grads, i * c * sync.GRAD_RECORD_BYTES);
    for (const i of idx) {
      (modules[i] as SyncModule).encodeBackward(e, dys[i] as Library.Tensor, gatheredGrads, {
        gradInput: dxs[i] as Library.Tensor,
        gradWeight: dws[i] as Library.Tensor,
        gradBias: dbs[i] as Library.Tensor,
      });
    }
  };

  /**
   * One host-merge step. With `keep` (verify only) its gradients are copied into the encoder path's
   * buffers to be checked; timed steps just release them, as a training loop would after its update.
   */
  const hostStep = async (keep: boolean): Promise<void> => {
    const partials = await Promise.all(idx.map((i) => (modules[i] as SyncModule).momentsPartial(xs[i] as Library.Tensor)));
    const merged = sync.mergeMoments(partials);
    for (const i of idx) (modules[i] as SyncModule).forward(xs[i] as Library.Tensor, merged, { out: ys[i] as Library.Tensor });
    const gradPartials = await Promise.all(idx.map((i) => (modules[i] as SyncModule).gradPartial(dys[i] as Library.Tensor)));
    const mergedGrad = sync.mergeGradSums(gradPartials);
    for (const i of idx) {
      const r = (modules[i] as SyncModule).backward(dys[i] as Library.Tensor, mergedGrad);
      const pairs: Array<[Library.Tensor | null, Library.Tensor]> = [
        [r.gradInput, dxs[i] as Library.Tensor],
        [r.gradWeight, dws[i] as Library.Tensor],
        [r.gradBias, dbs[i] as Library.Tensor],
      ];
      for (const [from, to] of pairs) {
        if (!from) continue;
        if (keep) to.writeFrom(from);
        from.destroy();
      }
    }
  };

  const run = async (k: number, keep = false): Promise<number | null> => {
    if (which === 'encode') {
      return submitTimed(
        device,
        `bench.${name}`,
        (e) => {
          for (let s = 0; s < k; s++) encodeStep(e);
        },
        cc.span,
      );
    }
    for (let s = 0; s < k; s++) await hostStep(keep);
    await ctx.sync();
    return null;
  };

  const impl: Impl = {
    impl: name,
    op: 'sync-step',
    kind: 'gpu',
    note:
      which === 'encode'
        ? `${shards} shards on one device: encodeMomentsPartial → encodeForward (GPU merge) → encodeGradPartial → encodeBackward, K steps in one encoder, one submit`
        : `${shards} shards on one device: momentsPartial / gradPartial readbacks, float64 mergeMoments / mergeGradSums on the host, forward / backward`,
    async verify() {
      for (const b of [yBuffer, dxBuffer]) poison(device, b, g.size);
      await run(1, true);
      await ctx.sync();
      const errors = [
        relativeError(await readFloats(device, yBuffer, g.size), d.refTrain),
        relativeError(await readFloats(device, dxBuffer, g.size), d.refGradInput),
      ];
      for (const i of idx) {
        errors.push(relativeError(await readFloats(device, dwBuffers[i] as GPUBuffer, c), d.refGradWeight));
        errors.push(relativeError(await readFloats(device, dbBuffers[i] as GPUBuffer, c), d.refGradBias));
      }
      return worstError(...errors);
    },
    run: (k) => run(k),
    dispose() {
      for (const m of modules) m.destroy();
      for (const t of [...xs, ...dys, ...ys, ...dxs, ...dws, ...dbs]) t.destroy();
      for (const b of [yBuffer, dxBuffer, moments, grads, ...dwBuffers, ...dbBuffers]) b.destroy();
    },
  };
  return { items: [impl], dispose: () => {} };
}
