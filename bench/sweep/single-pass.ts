/**
 * Issue #10 §3 experiment: the training forward in one dispatch (bench/sweep/single-pass.wgsl),
 * with and without staging the channel in workgroup memory, against the library's training
 * forward (statistics, finalize, normalize: three dispatches in one pass) on the same device,
 * input and parameters, each checked against a float64 reference.
 */
import * as Library from '../../src/index.js';
import { createTensorBuffer, readFloats, USAGE } from '../harness/gpu.js';
import singlePassSource from './single-pass.wgsl?raw';
import { randomFloats } from './elementwise.js';
import type { Candidate } from './sweep-core.js';

export interface SinglePassCase {
  readonly shape: readonly number[];
  readonly layout: 'channels_first' | 'channels_last';
}

export interface SinglePassSetup {
  readonly x: GPUBuffer;
  readonly floats: number;
  /** Bytes one workgroup would stage (a channel, or a vec4 column of 4 channels). */
  readonly stageBytes: number;
  readonly candidates: Candidate[];
  destroy(): void;
}

const EPS = 1e-5;
const MOMENTUM = 0.1;

export async function setupSinglePass(device: GPUDevice, kase: SinglePassCase): Promise<SinglePassSetup> {
  const [n = 0, c = 0, ...rest] = kase.shape;
  const s = rest.reduce((a, b) => a * b, 1);
  const order = kase.layout === 'channels_last' || s === 1 ? 'cl' : 'cf';
  const floats = n * c * s;
  const xData = randomFloats(floats, 3);
  for (let i = 0; i < floats; i++) xData[i] = 3 + (xData[i] ?? 0);
  const weight = randomFloats(c, 5);
  const bias = randomFloats(c, 9);
  // float64 reference of training-mode batch norm (biased variance), memory order.
  const channelOf = (i: number): number => (order === 'cf' ? Math.floor(i / s) % c : i % c);
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  const per = floats / c;
  for (let i = 0; i < floats; i++) {
    const ch = channelOf(i);
    sum[ch] = (sum[ch] ?? 0) + (xData[i] ?? 0);
  }
  for (let i = 0; i < floats; i++) {
    const ch = channelOf(i);
    sq[ch] = (sq[ch] ?? 0) + ((xData[i] ?? 0) - (sum[ch] ?? 0) / per) ** 2;
  }
  const ref = new Float64Array(floats);
  for (let i = 0; i < floats; i++) {
    const ch = channelOf(i);
    const mean = (sum[ch] ?? 0) / per;
    ref[i] = (((xData[i] ?? 0) - mean) / Math.sqrt((sq[ch] ?? 0) / per + EPS)) * (weight[ch] ?? 0) + (bias[ch] ?? 0);
  }
  const x = createTensorBuffer(device, 'bench.single.x', floats * 4, xData);
  const y = createTensorBuffer(device, 'bench.single.y', floats * 4);
  const buffers: GPUBuffer[] = [x, y];
  const check = async (encode: (e: GPUCommandEncoder, k: number) => void): Promise<number> => {
    device.queue.writeBuffer(y, 0, new Float32Array(floats).fill(Number.NaN));
    const encoder = device.createCommandEncoder({ label: 'bench.single.verify' });
    encode(encoder, 1);
    device.queue.submit([encoder.finish()]);
    const out = await readFloats(device, y, floats);
    let worst = 0;
    let scale = 1;
    for (let i = 0; i < floats; i++) {
      const o = out[i] ?? Number.NaN;
      worst = Math.max(worst, Number.isNaN(o) ? Infinity : Math.abs(o - (ref[i] ?? 0)));
      scale = Math.max(scale, Math.abs(ref[i] ?? 0));
    }
    return worst / scale;
  };

  // The library, on this device, with the fallback adapter's access pattern.
  const ctx = await Library.createContext({ backend: 'webgpu', device, accessPattern: 'contiguous' });
  const module = kase.shape.length === 4 ? new Library.BatchNorm2d(ctx, c, { eps: EPS, momentum: MOMENTUM }) : new Library.BatchNorm1d(ctx, c, { eps: EPS, momentum: MOMENTUM });
  module.loadStateDict({ weight, bias, running_mean: new Float32Array(c), running_var: new Float32Array(c).fill(1), num_batches_tracked: 0 });
  const xt = ctx.tensorFromBuffer(x, [...kase.shape], { layout: kase.layout });
  const yt = ctx.tensorFromBuffer(y, [...kase.shape], { layout: kase.layout });
  const libraryEncode = (e: GPUCommandEncoder, k: number): void => {
    for (let i = 0; i < k; i++) module.encodeForward(e, xt, yt);
  };
  const candidates: Candidate[] = [
    { name: 'library train (3 dispatches)', detail: 'stats + finalize + normalize', encode: libraryEncode, verify: () => check(libraryEncode) },
  ];

  const cols = order === 'cf' ? s / 4 : c / 4;
  const rows = order === 'cf' ? n : n * s;
  const units = order === 'cf' ? c : cols;
  const stageVec4s = order === 'cf' ? n * cols : rows;
  const stageBytes = stageVec4s * 16;
  const paramsBuffers = [weight, bias].map((d, i) => createTensorBuffer(device, `bench.single.param${i}`, d.byteLength, d));
  const running = createTensorBuffer(device, 'bench.single.running', c * 8, new Float32Array(2 * c).map((_, i) => i % 2));
  const saved = createTensorBuffer(device, 'bench.single.saved', c * 8);
  buffers.push(...paramsBuffers, running, saved);
  const shaderModule = device.createShaderModule({ label: 'bench.single.module', code: singlePassSource });
  const maxDim = device.limits.maxComputeWorkgroupsPerDimension;
  for (const wg of [64, 256]) {
    for (const stage of [false, true]) {
      // Workgroup memory: the tile plus the partials (2 vec4 + 1 f32 per invocation) and constants.
      const bytes = (stage ? stageBytes : 16) + wg * 36 + 32;
      if (bytes > device.limits.maxComputeWorkgroupStorageSize || wg > device.limits.maxComputeInvocationsPerWorkgroup) continue;
      const pipeline = device.createComputePipeline({
        label: `bench.single.${order}.pipeline`,
        layout: 'auto',
        compute: { module: shaderModule, entryPoint: `single_pass_${order}4`, constants: { WORKGROUP_SIZE: wg, STAGE: stage ? 1 : 0, TILE: stage ? stageVec4s : 1 } },
      });
      let parts = 1;
      let partLen = 0;
      if (order === 'cf') {
        parts = Math.max(1, Math.min(cols, Math.ceil(wg / n)));
        partLen = Math.ceil(cols / parts);
        parts = Math.ceil(cols / partLen);
      } else {
        partLen = Math.ceil(rows / wg);
      }
      const gx = Math.min(units, maxDim);
      const gy = Math.ceil(units / gx);
      const uniform = device.createBuffer({ label: 'bench.single.params', size: 32, usage: USAGE.UNIFORM | USAGE.COPY_DST });
      buffers.push(uniform);
      const u = new Uint32Array([rows, cols, c, parts, partLen, gx, 0, 0]);
      new Float32Array(u.buffer).set([EPS, MOMENTUM], 6);
      device.queue.writeBuffer(uniform, 0, u);
      const bindGroup = device.createBindGroup({
        label: 'bench.single.bindGroup',
        layout: pipeline.getBindGroupLayout(0),
        entries: [uniform, x, y, ...paramsBuffers, running, saved].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      const encode = (e: GPUCommandEncoder, k: number): void => {
        for (let i = 0; i < k; i++) {
          const pass = e.beginComputePass({ label: 'bench.single.pass' });
          pass.setPipeline(pipeline);
          pass.setBindGroup(0, bindGroup);
          pass.dispatchWorkgroups(gx, gy);
          pass.end();
        }
      };
      candidates.push({
        name: `single pass, ${stage ? 'staged in workgroup memory' : 're-reading x'}`,
        detail: `wg ${wg}, ${units} workgroups, ${(stageBytes / 1024).toFixed(1)} KB per workgroup`,
        encode,
        verify: () => check(encode),
      });
    }
  }
  return {
    x,
    floats,
    stageBytes,
    candidates,
    destroy() {
      module.destroy();
      xt.destroy();
      yt.destroy();
      ctx.destroy();
      for (const b of buffers) b.destroy();
    },
  };
}
