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
  const module =
    kase.shape.length === 4
      ? new Library.BatchNorm2d(ctx, c, { eps: EPS, momentum: MOMENTUM })
      : new Library.BatchNorm1d(ctx, c, { eps: EPS, momentum: MOMENTUM });
  module.loadStateDict({
    weight,
    bias,
    running_mean: new Float32Array(c),
    running_var: new Float32Array(c).fill(1),
    num_batches_tracked: 0,
  });
  const xt = ctx.tensorFromBuffer(x, [...kase.shape], { layout: kase.layout });
  const yt = ctx.tensorFromBuffer(y, [...kase.shape], { layout: kase.layout });
  const libraryEncode = (e: GPUCommandEncoder, k: number): void => {
    for (let i = 0; i < k; i++) module.encodeForward(e, xt, yt);
  };
  const candidates: Candidate[] = [
    {
      name: 'library train (3 dispatches)',
      detail: 'stats + finalize + normalize',
      encode: libraryEncode,
      verify: () => check(libraryEncode),
    },
  ];

  const cols = order === 'cf' ? s / 4 : c / 4;
  const rows = order === 'cf' ? n : n * s;
  const units = order === 'cf' ? c : cols;
  const stageVec4s = order === 'cf' ? n * cols : rows;
  const stageBytes = stageVec4s * 16;
  const paramsBuffers = [weight, bias].map((d, i) => createTensorBuffer(device, `bench.single.param${i}`, d.byteLength, d));
  const running = createTensorBuffer(
    device,
    'bench.single.running',
    c * 8,
    new Float32Array(2 * c).map((_, i) => i % 2),
  );
  const saved = createTensorBuffer(device, 'bench.single.saved', c * 8);
  buffers.push(...paramsBuffers, running, saved);
  const shaderModule = device.createShaderModule({ label: 'bench.single.module', code: singlePassSource });
  const maxDim = device.limits.maxComputeWorkgroupsPerDimension;
  // Workgroup size 256 measured 10-50x slower than 64 here (barriers over 256 invocations); only
  // 64 stays in the sweep.
  for (const wg of [64]) {
    for (const stage of [false, true]) {
      // Workgroup memory: the tile plus the partials (2 vec4 + 1 f32 per invocation) and constants.
      const bytes = (stage ? stageBytes : 16) + wg * 36 + 32;
      if (bytes > device.limits.maxComputeWorkgroupStorageSize || wg > device.limits.maxComputeInvocationsPerWorkgroup) continue;
      const pipeline = device.createComputePipeline({
        label: `bench.single.${order}.pipeline`,
        layout: 'auto',
        compute: {
          module: shaderModule,
          entryPoint: `single_pass_${order}4`,
          constants: { WORKGROUP_SIZE: wg, STAGE: stage ? 1 : 0, TILE: stage ? stageVec4s : 1 },
        },
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
  // One invocation per channel / vec4 column, no barrier (serial_cf4, serial_cl4).
  for (const wg of [4, 16]) {
    const pipeline = device.createComputePipeline({
      label: `bench.single.serial.${order}.pipeline`,
      layout: 'auto',
      compute: { module: shaderModule, entryPoint: `serial_${order}4`, constants: { WORKGROUP_SIZE: wg } },
    });
    const groups = Math.ceil(units / wg);
    const gx = Math.min(groups, maxDim);
    const gy = Math.ceil(groups / gx);
    const uniform = device.createBuffer({ label: 'bench.single.serialParams', size: 32, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    buffers.push(uniform);
    const u = new Uint32Array([rows, cols, c, 1, 64, gx, 0, 0]);
    new Float32Array(u.buffer).set([EPS, MOMENTUM], 6);
    device.queue.writeBuffer(uniform, 0, u);
    const bindGroup = device.createBindGroup({
      label: 'bench.single.serialBindGroup',
      layout: pipeline.getBindGroupLayout(0),
      entries: [uniform, x, y, ...paramsBuffers, running, saved].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const encode = (e: GPUCommandEncoder, k: number): void => {
      for (let i = 0; i < k; i++) {
        const pass = e.beginComputePass({ label: 'bench.single.serialPass' });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(gx, gy);
        pass.end();
      }
    };
    candidates.push({
      name: 'single dispatch, one invocation per channel, no barrier',
      detail: `wg ${wg}, ${units} invocations`,
      encode,
      verify: () => check(encode),
    });
  }
  // Backward (training, batch statistics): the library's (reduce, finalize, elementwise) against
  // one invocation per channel (serial_backward_*), on the same dy, both after one forward.
  const dyData = randomFloats(floats, 13);
  const mean = new Float64Array(c).map((_, ch) => (sum[ch] ?? 0) / per);
  const invstd = new Float64Array(c).map((_, ch) => 1 / Math.sqrt((sq[ch] ?? 0) / per + EPS));
  const gb = new Float64Array(c);
  const gw = new Float64Array(c);
  for (let i = 0; i < floats; i++) {
    const ch = channelOf(i);
    const g = dyData[i] ?? 0;
    gb[ch] = (gb[ch] ?? 0) + g;
    gw[ch] = (gw[ch] ?? 0) + g * ((xData[i] ?? 0) - (mean[ch] ?? 0)) * (invstd[ch] ?? 0);
  }
  const refDx = new Float64Array(floats);
  for (let i = 0; i < floats; i++) {
    const ch = channelOf(i);
    const xhat = ((xData[i] ?? 0) - (mean[ch] ?? 0)) * (invstd[ch] ?? 0);
    refDx[i] = (weight[ch] ?? 0) * (invstd[ch] ?? 0) * ((dyData[i] ?? 0) - (gb[ch] ?? 0) / per - (xhat * (gw[ch] ?? 0)) / per);
  }
  const dyBuffer = createTensorBuffer(device, 'bench.single.dy', floats * 4, dyData);
  const dx = createTensorBuffer(device, 'bench.single.dx', floats * 4);
  const gradW = createTensorBuffer(device, 'bench.single.gradWeight', c * 4);
  const gradB = createTensorBuffer(device, 'bench.single.gradBias', c * 4);
  const grads = createTensorBuffer(device, 'bench.single.grads', c * 8);
  buffers.push(dyBuffer, dx, gradW, gradB, grads);
  const relative = (out: Float32Array, ref: ArrayLike<number>, stride = 1, offset = 0): number => {
    let worst = 0;
    let scale = 1;
    for (let i = 0; i < ref.length; i++) {
      const o = out[i * stride + offset] ?? Number.NaN;
      const r = ref[i] ?? 0;
      worst = Math.max(worst, Number.isNaN(o) ? Infinity : Math.abs(o - r));
      scale = Math.max(scale, Math.abs(r));
    }
    return worst / scale;
  };
  const dyt = ctx.tensorFromBuffer(dyBuffer, [...kase.shape], { layout: kase.layout });
  const dxt = ctx.tensorFromBuffer(dx, [...kase.shape], { layout: kase.layout });
  const gwt = ctx.tensorFromBuffer(gradW, [c]);
  const gbt = ctx.tensorFromBuffer(gradB, [c]);
  const libraryBackward = (e: GPUCommandEncoder, k: number): void => {
    for (let i = 0; i < k; i++) module.encodeBackward(e, dyt, { gradInput: dxt, gradWeight: gwt, gradBias: gbt });
  };
  const run = async (encode: (e: GPUCommandEncoder) => void): Promise<void> => {
    const encoder = device.createCommandEncoder({ label: 'bench.single.once' });
    encode(encoder);
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  candidates.push({
    name: 'backward: library (3 dispatches)',
    detail: 'reduce + finalize + elementwise',
    encode: libraryBackward,
    async verify() {
      device.queue.writeBuffer(dx, 0, new Float32Array(floats).fill(Number.NaN));
      await run((e) => libraryEncode(e, 1));
      await run((e) => libraryBackward(e, 1));
      return Math.max(
        relative(await readFloats(device, dx, floats), refDx),
        relative(await readFloats(device, gradW, c), gw),
        relative(await readFloats(device, gradB, c), gb),
      );
    },
  });
  const serialForward = candidates.find((cand) => cand.name.startsWith('single dispatch'));
  for (const wg of [4, 16]) {
    const pipeline = device.createComputePipeline({
      label: `bench.single.backward.${order}.pipeline`,
      layout: 'auto',
      compute: { module: shaderModule, entryPoint: `serial_backward_${order}4`, constants: { WORKGROUP_SIZE: wg } },
    });
    const groups = Math.ceil(units / wg);
    const gx = Math.min(groups, maxDim);
    const gy = Math.ceil(groups / gx);
    const uniform = device.createBuffer({ label: 'bench.single.backwardParams', size: 32, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    buffers.push(uniform);
    const u = new Uint32Array([rows, cols, c, 1, 64, gx, 0, 0]);
    new Float32Array(u.buffer).set([EPS, MOMENTUM], 6);
    device.queue.writeBuffer(uniform, 0, u);
    const bindings: Array<[number, GPUBuffer]> = [
      [0, uniform],
      [1, x],
      [2, dx],
      [3, paramsBuffers[0] as GPUBuffer],
      [6, saved],
      [7, dyBuffer],
      [8, grads],
    ];
    const bindGroup = device.createBindGroup({
      label: 'bench.single.backwardBindGroup',
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map(([binding, buffer]) => ({ binding, resource: { buffer } })),
    });
    const encode = (e: GPUCommandEncoder, k: number): void => {
      for (let i = 0; i < k; i++) {
        const pass = e.beginComputePass({ label: 'bench.single.backwardPass' });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(gx, gy);
        pass.end();
      }
    };
    candidates.push({
      name: 'backward: single dispatch, one invocation per channel',
      detail: `wg ${wg}, ${units} invocations`,
      encode,
      async verify() {
        if (serialForward) await run((e) => serialForward.encode(e, 1));
        device.queue.writeBuffer(dx, 0, new Float32Array(floats).fill(Number.NaN));
        await run((e) => encode(e, 1));
        const g2 = await readFloats(device, grads, 2 * c);
        return Math.max(relative(await readFloats(device, dx, floats), refDx), relative(g2, gw, 2, 0), relative(g2, gb, 2, 1));
      },
    });
  }
  return {
    x,
    floats,
    stageBytes,
    candidates,
    destroy() {
      module.destroy();
      for (const t of [xt, yt, dyt, dxt, gwt, gbt]) t.destroy();
      ctx.destroy();
      for (const b of buffers) b.destroy();
    },
  };
}
