/**
 * The example CNN on WebGPU: the example's own WGSL layers (cnn.wgsl) around the library's
 * BatchNorm2d, recorded with `bn.encodeForward` into the same encoder on the example's own buffers
 * (zero-copy), or with the batch norms folded into the convolutions on the GPU
 * (`foldBatchNormTensors`) and gone from the network. Everything is allocated once; one inference
 * is one encoder and one submit.
 */
import { BatchNorm2d, type BatchNormContext, type Tensor } from '../../src/index.js';
import { foldBatchNormTensors } from '../../src/fold/index.js';
import { loadBatchNorm, type ModelFile } from '../../src/io/index.js';
import cnnSource from './cnn.wgsl?raw';
import type { CnnRunner, CnnVariant } from './runner.js';
import { cnnWeights } from './weights.js';

const WORKGROUP = 64;
const STORAGE = 0x80;
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const UNIFORM = 0x40;
const MAP_READ = 0x01;

interface Dispatch {
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly workgroups: number;
}

/** Creates the WebGPU network for `images` (N × 3 × H × W, NCHW). */
export function createGpuCnn(
  ctx: BatchNormContext,
  file: ModelFile,
  variant: CnnVariant,
  images: Float32Array,
  shape: readonly number[],
): CnnRunner {
  const device = ctx.device;
  if (!device) throw new Error('createGpuCnn needs a WebGPU context');
  const w = cnnWeights(file);
  const [n = 0, , h = 0, wd = 0] = shape;
  const c = w.width;
  const plane = n * c * h * wd;
  const owned: GPUBuffer[] = [];
  const tensors: Tensor[] = [];
  const buffer = (label: string, size: number, usage = STORAGE | COPY_SRC | COPY_DST): GPUBuffer => {
    const b = device.createBuffer({ label: `example.cnn.${label}`, size: Math.max(16, Math.ceil(size / 16) * 16), usage });
    owned.push(b);
    return b;
  };
  const upload = (label: string, values: Float32Array): GPUBuffer => {
    const b = buffer(label, values.byteLength);
    device.queue.writeBuffer(b, 0, values.buffer, values.byteOffset, values.byteLength);
    return b;
  };
  const module = device.createShaderModule({ label: 'example.cnn.module', code: cnnSource });
  const pipelines = new Map<string, GPUComputePipeline>();
  const pipeline = (entry: string): GPUComputePipeline => {
    let p = pipelines.get(entry);
    if (!p) {
      p = device.createComputePipeline({
        label: `example.cnn.${entry}.pipeline`,
        layout: 'auto',
        compute: { module, entryPoint: entry, constants: { WORKGROUP_SIZE: WORKGROUP } },
      });
      pipelines.set(entry, p);
    }
    return p;
  };
  const noBias = buffer('noBias', 16);
  /** One dispatch with its uniform, made once. */
  const dispatch = (
    entry: string,
    p: { cin: number; cout: number; k?: number; count: number; bias?: GPUBuffer | null },
    resources: Record<number, GPUBuffer>,
  ): Dispatch => {
    const uniform = buffer(`${entry}.params`, 32, UNIFORM | COPY_DST);
    device.queue.writeBuffer(uniform, 0, new Uint32Array([n, p.cin, p.cout, h, wd, p.k ?? 0, p.count, p.bias ? 1 : 0]));
    const pl = pipeline(entry);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform } }];
    for (const [binding, b] of Object.entries(resources)) entries.push({ binding: Number(binding), resource: { buffer: b } });
    if (p.bias !== undefined) entries.push({ binding: 3, resource: { buffer: p.bias ?? noBias } });
    return {
      pipeline: pl,
      bindGroup: device.createBindGroup({ label: `example.cnn.${entry}.bindGroup`, layout: pl.getBindGroupLayout(0), entries }),
      workgroups: Math.ceil(p.count / WORKGROUP),
    };
  };

  const input = upload('images', images);
  const acts = Array.from({ length: 9 }, (_, i) => buffer(`act${i}`, plane * 4));
  const pooled = buffer('pooled', n * c * 4);
  const logits = buffer('logits', n * w.classes * 4);
  const staging = buffer('staging', n * w.classes * 4, MAP_READ | COPY_DST);
  const fcWeight = upload('fc.weight', w.fcWeight);
  const fcBias = upload('fc.bias', w.fcBias);

  // The library's batch norms, loaded from the file (eval: running statistics).
  const bns = w.convs.map((cv) => {
    const bn = new BatchNorm2d(ctx, cv.bn.numFeatures).eval();
    loadBatchNorm(bn, file, cv.bn);
    return bn;
  });
  const convWeights = w.convs.map((cv, i) => ctx.tensor(cv.weight, cv.shape, { label: `example.conv${i}.weight` }));
  tensors.push(...convWeights);
  const foldedLayers =
    variant === 'folded' ? convWeights.map((weight, i) => foldBatchNormTensors(bns[i] as BatchNorm2d, { weight })) : null;
  for (const f of foldedLayers ?? []) tensors.push(f.weight, f.bias);

  const conv = (i: number, src: GPUBuffer, dst: GPUBuffer): Dispatch => {
    const cv = w.convs[i];
    if (!cv) throw new Error('unreachable');
    const folded = foldedLayers?.[i];
    const weight = folded ? folded.weight.buffer : (convWeights[i] as Tensor).buffer;
    return dispatch(
      'conv2d',
      { cin: cv.shape[1], cout: cv.shape[0], k: cv.shape[2], count: n * cv.shape[0] * h * wd, bias: folded ? folded.bias.buffer : null },
      { 1: src, 2: weight, 4: dst },
    );
  };
  const relu = (src: GPUBuffer, dst: GPUBuffer): Dispatch => dispatch('relu', { cin: c, cout: c, count: plane }, { 1: src, 4: dst });
  const view = (b: GPUBuffer, label: string): Tensor => {
    const t = ctx.tensorFromBuffer(b, [n, c, h, wd], { label });
    tensors.push(t);
    return t;
  };
  type Step = Dispatch | { bn: BatchNorm2d; x: Tensor; y: Tensor };
  const steps: Step[] = [];
  const [a0, a1, a2, a3, a4, a5, a6, a7, a8] = acts as [
    GPUBuffer,
    GPUBuffer,
    GPUBuffer,
    GPUBuffer,
    GPUBuffer,
    GPUBuffer,
    GPUBuffer,
    GPUBuffer,
    GPUBuffer,
  ];
  if (variant === 'bn-layers') {
    steps.push(conv(0, input, a0), { bn: bns[0] as BatchNorm2d, x: view(a0, 'conv1'), y: view(a1, 'bn1') }, relu(a1, a2));
    steps.push(conv(1, a2, a3), { bn: bns[1] as BatchNorm2d, x: view(a3, 'block.conv1'), y: view(a4, 'block.bn1') }, relu(a4, a5));
    steps.push(conv(2, a5, a6), { bn: bns[2] as BatchNorm2d, x: view(a6, 'block.conv2'), y: view(a7, 'block.bn2') });
    steps.push(dispatch('add_relu', { cin: c, cout: c, count: plane }, { 1: a7, 5: a2, 4: a8 }));
  } else {
    steps.push(conv(0, input, a0), relu(a0, a2), conv(1, a2, a3), relu(a3, a5), conv(2, a5, a6));
    steps.push(dispatch('add_relu', { cin: c, cout: c, count: plane }, { 1: a6, 5: a2, 4: a8 }));
  }
  steps.push(dispatch('global_avg_pool', { cin: c, cout: c, count: n * c }, { 1: a8, 4: pooled }));
  steps.push(dispatch('linear', { cin: c, cout: w.classes, count: n * w.classes, bias: fcBias }, { 1: pooled, 2: fcWeight, 4: logits }));

  const encode = (encoder: GPUCommandEncoder): void => {
    for (const s of steps) {
      if ('bn' in s) {
        s.bn.encodeForward(encoder, s.x, s.y);
        continue;
      }
      const pass = encoder.beginComputePass({ label: 'example.cnn.pass' });
      pass.setPipeline(s.pipeline);
      pass.setBindGroup(0, s.bindGroup);
      pass.dispatchWorkgroups(s.workgroups);
      pass.end();
    }
  };
  const submit = (readback: boolean): void => {
    const encoder = device.createCommandEncoder({ label: 'example.cnn.encoder' });
    encode(encoder);
    if (readback) encoder.copyBufferToBuffer(logits, 0, staging, 0, n * w.classes * 4);
    device.queue.submit([encoder.finish()]);
  };

  return {
    async logits(): Promise<Float32Array> {
      submit(true);
      await staging.mapAsync(MAP_READ);
      const out = new Float32Array(staging.getMappedRange().slice(0, n * w.classes * 4));
      staging.unmap();
      await ctx.sync();
      return out;
    },
    async time(reps: number): Promise<number> {
      await ctx.sync();
      const start = performance.now();
      for (let r = 0; r < reps; r++) submit(false);
      await device.queue.onSubmittedWorkDone();
      return (performance.now() - start) / 1000;
    },
    destroy(): void {
      for (const t of tensors) t.destroy();
      for (const bn of bns) bn.destroy();
      for (const b of owned) b.destroy();
    },
  };
}
