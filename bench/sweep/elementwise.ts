/**
 * Section 2 of issue #10: candidates for the normalize pass (bench/sweep/normalize-variants.wgsl)
 * on one shape and layout, each checked against a float64 reference and timed against the copy.
 */
import { FLAG_AFFINE, FLAG_FROM_RUNNING, WORKGROUP_SIZE } from '../../src/gpu/contracts.js';
import { shaderSources } from '../../src/gpu/shader-sources.js';
import baselineBackwardSource from './backward-elementwise-baseline.wgsl?raw';
import { elementwiseShape } from '../../src/batch-norm/dispatch-shape.js';
import { geometryOf } from '../../src/batch-norm/geometry.js';
import baselineNormalizeSource from './normalize-baseline.wgsl?raw';
import variantsSource from './normalize-variants.wgsl?raw';
import { createTensorBuffer, readFloats, USAGE } from '../harness/gpu.js';
import type { Candidate } from './sweep-core.js';

export interface ElementwiseCase {
  readonly shape: readonly number[];
  readonly layout: 'channels_first' | 'channels_last';
}

interface View {
  readonly order: 'cf' | 'cl';
  readonly n: number;
  readonly c: number;
  readonly s: number;
  readonly rows: number;
  readonly cols: number;
  readonly floats: number;
}

function viewOf(c: ElementwiseCase): View {
  const [n = 0, ch = 0, ...rest] = c.shape;
  const s = rest.reduce((a, b) => a * b, 1);
  const order = c.layout === 'channels_last' || s === 1 ? 'cl' : 'cf';
  return order === 'cf'
    ? { order, n, c: ch, s, rows: n * ch, cols: s / 4, floats: n * ch * s }
    : { order, n, c: ch, s, rows: n * s, cols: ch / 4, floats: n * ch * s };
}

/** Deterministic pseudo-random floats in [-2, 2). */
export function randomFloats(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = ((state >>> 0) / 4294967296) * 4 - 2;
  }
  return out;
}

/** Buffers of one case plus the candidates that read them. */
export interface ElementwiseSetup {
  readonly x: GPUBuffer;
  readonly floats: number;
  readonly candidates: Candidate[];
  destroy(): void;
}

interface Launch {
  readonly entry: string;
  readonly workgroup: number;
  readonly items: number;
  readonly lanes: number;
  readonly invocations: number;
}

export function setupElementwise(device: GPUDevice, kase: ElementwiseCase): ElementwiseSetup {
  const v = viewOf(kase);
  const xData = randomFloats(v.floats, 7);
  const kData = randomFloats(v.c * 3, 11);
  // packed[c] = (K, scale, shift, 0), then planes K, scale, shift of c/4 vec4s each.
  const planeBase = v.c;
  const constData = new Float32Array((v.c + 3 * Math.ceil(v.c / 4)) * 4);
  for (let c = 0; c < v.c; c++) {
    const k = kData[3 * c] ?? 0;
    const scale = kData[3 * c + 1] ?? 0;
    const shift = kData[3 * c + 2] ?? 0;
    constData.set([k, scale, shift, 0], 4 * c);
    for (const [p, value] of [k, scale, shift].entries()) constData[4 * planeBase + p * v.c + c] = value;
  }
  const ref = new Float64Array(v.floats);
  for (let i = 0; i < v.floats; i++) {
    const c = v.order === 'cf' ? Math.floor(i / v.s) % v.c : i % v.c;
    ref[i] = ((xData[i] ?? 0) - (kData[3 * c] ?? 0)) * (kData[3 * c + 1] ?? 0) + (kData[3 * c + 2] ?? 0);
  }
  const x = createTensorBuffer(device, 'bench.sweep.x', v.floats * 4, xData);
  const y = createTensorBuffer(device, 'bench.sweep.y', v.floats * 4);
  const consts = createTensorBuffer(device, 'bench.sweep.consts', constData.byteLength, constData);
  const module = device.createShaderModule({ label: 'bench.sweep.module', code: variantsSource });
  const uniforms: GPUBuffer[] = [];
  const maxDim = device.limits.maxComputeWorkgroupsPerDimension;

  const check = async (encode: (encoder: GPUCommandEncoder, k: number) => void, expected: Float64Array = ref): Promise<number> => {
    device.queue.writeBuffer(y, 0, new Float32Array(v.floats).fill(Number.NaN));
    const encoder = device.createCommandEncoder({ label: 'bench.sweep.verify' });
    encode(encoder, 1);
    device.queue.submit([encoder.finish()]);
    const out = await readFloats(device, y, v.floats);
    let worst = 0;
    let scale = 1;
    for (let i = 0; i < v.floats; i++) {
      const o = out[i] ?? Number.NaN;
      worst = Math.max(worst, Number.isNaN(o) ? Infinity : Math.abs(o - (expected[i] ?? 0)));
      scale = Math.max(scale, Math.abs(expected[i] ?? 0));
    }
    return worst / scale;
  };

  const make = (name: string, l: Launch): Candidate => {
    const pipeline = device.createComputePipeline({
      label: `bench.sweep.${l.entry}.pipeline`,
      layout: 'auto',
      compute: { module, entryPoint: l.entry, constants: { WORKGROUP_SIZE: l.workgroup } },
    });
    const groups = Math.max(1, Math.ceil(l.invocations / l.workgroup));
    const gx = Math.min(groups, maxDim);
    const gy = Math.ceil(groups / gx);
    const uniform = device.createBuffer({ label: 'bench.sweep.params', size: 32, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    uniforms.push(uniform);
    device.queue.writeBuffer(uniform, 0, new Uint32Array([v.rows, v.cols, l.lanes, v.c, l.items, v.rows * v.cols, planeBase, gx]));
    const bindGroup = device.createBindGroup({
      label: `bench.sweep.${l.entry}.bindGroup`,
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: uniform } },
        { binding: 1, resource: { buffer: x } },
        { binding: 2, resource: { buffer: y } },
        { binding: 3, resource: { buffer: consts } },
      ],
    });
    const encode = (encoder: GPUCommandEncoder, k: number): void => {
      for (let i = 0; i < k; i++) {
        const pass = encoder.beginComputePass({ label: `bench.sweep.${l.entry}.pass` });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(gx, gy);
        pass.end();
      }
    };
    return {
      name,
      detail: `wg ${l.workgroup}, ${l.items ? `${l.items} per inv, ` : ''}${l.invocations} inv`,
      encode,
      verify: () => check(encode),
    };
  };

  // The library's own shaders/normalize.wgsl as it stands, with the launch dispatch-shape.ts
  // gives it on a fallback adapter: training (constants from channelStats) and evaluation (from
  // the running statistics, which are set so both give the same y).
  const planeStride = Math.ceil(v.c / 4);
  const statsData = new Float32Array((8 * planeStride + v.c) * 4);
  const rm = new Float32Array(v.c);
  const rv = new Float32Array(v.c);
  const w = new Float32Array(v.c);
  const b = new Float32Array(v.c);
  const eps = 1e-5;
  for (let c = 0; c < v.c; c++) {
    const k = kData[3 * c] ?? 0;
    const scale = kData[3 * c + 1] ?? 0;
    const shift = kData[3 * c + 2] ?? 0;
    for (const [p, value] of [k, scale, shift].entries()) statsData[4 * (p * planeStride) + c] = value;
    statsData.set([k, scale, shift, 0], 4 * (8 * planeStride + c));
    rm[c] = k;
    rv[c] = 1 - eps;
    w[c] = scale;
    b[c] = shift;
  }
  const libStats = createTensorBuffer(device, 'bench.sweep.channelStats', statsData.byteLength, statsData);
  const perChannel = [rm, rv, w, b].map((data, i) => createTensorBuffer(device, `bench.sweep.perChannel${i}`, data.byteLength, data));
  const modules = {
    baseline: device.createShaderModule({ label: 'bench.sweep.baselineModule', code: baselineNormalizeSource }),
    library: device.createShaderModule({ label: 'bench.sweep.libraryModule', code: shaderSources.normalize }),
  };
  // baseline: the kernel and fallback-adapter launch before the sweep (runs of 16 vec4s
  // channels-first, the row-lane walk channels-last); library: shaders/normalize.wgsl now, with
  // the launch the library computes (dispatch-shape.ts).
  const makeLibrary = (name: string, which: keyof typeof modules, fromRunning: boolean): Candidate => {
    const entry = v.order === 'cf' ? 'normalize_cf4' : 'normalize_cl4';
    let lanes = Math.max(1, Math.min(Math.ceil(v.rows / 16), Math.floor(65536 / v.cols)));
    if (v.order === 'cf' && lanes >= v.c) lanes = Math.floor(lanes / v.c) * v.c;
    const shape =
      which === 'library'
        ? elementwiseShape(geometryOf(kase.shape, kase.layout), 4, true)
        : v.order === 'cf'
          ? {
              lanes,
              blocksPerRow: Math.ceil(v.cols / 16),
              runLength: 0,
              invocations: v.rows * Math.ceil(v.cols / 16),
              constants: { CONTIGUOUS: 1, BLOCK_ITEMS: 16 },
            }
          : { lanes, blocksPerRow: 0, runLength: 0, invocations: lanes * v.cols, constants: {} };
    const pipeline = device.createComputePipeline({
      label: `bench.sweep.${which}.${entry}.pipeline`,
      layout: 'auto',
      compute: { module: modules[which], entryPoint: entry, constants: { ...shape.constants, WORKGROUP_SIZE } },
    });
    const blocksPerRow = shape.blocksPerRow;
    lanes = shape.lanes;
    const invocations = Math.max(shape.invocations, fromRunning ? v.c : 0);
    const groups = Math.ceil(invocations / 64);
    const gx = Math.min(groups, maxDim);
    const gy = Math.ceil(groups / gx);
    const uniform = device.createBuffer({ label: 'bench.sweep.libraryParams', size: 64, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    uniforms.push(uniform);
    const u = new Uint32Array(16);
    // The baseline's flag bits (FROM_RUNNING 1, AFFINE 2) predate the shared prelude's.
    const flags = which === 'baseline' ? (fromRunning ? 1 : 0) | 2 : (fromRunning ? FLAG_FROM_RUNNING : 0) | FLAG_AFFINE;
    u.set([v.rows, v.cols, lanes, v.c, v.order === 'cf' ? lanes % v.c : 0, 0, 0, planeStride, flags]);
    new Float32Array(u.buffer).set([eps], 9);
    u.set([0, 0, 0, 0, blocksPerRow, shape.runLength], 10);
    device.queue.writeBuffer(uniform, 0, u);
    const scratchStats = fromRunning ? createTensorBuffer(device, 'bench.sweep.scratchStats', statsData.byteLength) : libStats;
    if (fromRunning) uniforms.push(scratchStats);
    const bindGroup = device.createBindGroup({
      label: `bench.sweep.${which}.${entry}.bindGroup`,
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: uniform } },
        { binding: 1, resource: { buffer: x } },
        { binding: 2, resource: { buffer: y } },
        { binding: 3, resource: { buffer: scratchStats } },
        ...perChannel.map((buffer, i) => ({ binding: [6, 7, 4, 5][i] as number, resource: { buffer } })),
      ],
    });
    const encode = (encoder: GPUCommandEncoder, k: number): void => {
      for (let i = 0; i < k; i++) {
        const pass = encoder.beginComputePass({ label: 'bench.sweep.library.pass' });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(gx, gy);
        pass.end();
      }
    };
    return { name, detail: `${entry}, wg 64, ${invocations} inv`, encode, verify: () => check(encode) };
  };

  // Backward elementwise (batch statistics), old and new, on channelStats planes 0 (K), 4
  // (invstd), 5 (meanOffset), 6 (meanDy), 7 (projScale) and per-channel weight; dy is a second
  // random tensor. Reference: dx = dy·A − (x − K)·B + D (see backward-elementwise.wgsl).
  const dyData = randomFloats(v.floats, 17);
  const dyBuffer = createTensorBuffer(device, 'bench.sweep.dy', v.floats * 4, dyData);
  const planeData = new Float32Array((8 * planeStride + v.c) * 4);
  const coefficients: Array<[number, number, number, number]> = [];
  for (let c = 0; c < v.c; c++) {
    const k = kData[3 * c] ?? 0;
    const inv = 0.5 + 0.01 * (c % 7);
    const meanOffset = 0.01 * (c % 5);
    const meanDy = 0.02 * (c % 3);
    const proj = 0.03 * (c % 4);
    const wc = w[c] ?? 0;
    for (const [p, value] of [
      [0, k],
      [4, inv],
      [5, meanOffset],
      [6, meanDy],
      [7, proj],
    ] as const)
      planeData[4 * (p * planeStride) + c] = value;
    const a = inv * wc;
    coefficients.push([k, a, proj * a, (meanOffset * proj - meanDy) * a]);
  }
  const planes = createTensorBuffer(device, 'bench.sweep.backwardPlanes', planeData.byteLength, planeData);
  const refDx = new Float64Array(v.floats);
  for (let i = 0; i < v.floats; i++) {
    const c = v.order === 'cf' ? Math.floor(i / v.s) % v.c : i % v.c;
    const [k, a, b2, d] = coefficients[c] ?? [0, 0, 0, 0];
    refDx[i] = (dyData[i] ?? 0) * a - ((xData[i] ?? 0) - k) * b2 + d;
  }
  const backwardModules = {
    baseline: device.createShaderModule({ label: 'bench.sweep.baselineBackward', code: baselineBackwardSource }),
    library: device.createShaderModule({ label: 'bench.sweep.libraryBackward', code: shaderSources['backward-elementwise'] }),
  };
  const makeBackward = (name: string, which: keyof typeof backwardModules): Candidate => {
    const entry = v.order === 'cf' ? 'elementwise_cf4' : 'elementwise_cl4';
    let lanes = Math.max(1, Math.min(Math.ceil(v.rows / 16), Math.floor(65536 / v.cols)));
    if (v.order === 'cf' && lanes >= v.c) lanes = Math.floor(lanes / v.c) * v.c;
    const shape =
      which === 'library'
        ? elementwiseShape(geometryOf(kase.shape, kase.layout), 4, true)
        : v.order === 'cf'
          ? {
              lanes,
              blocksPerRow: Math.ceil(v.cols / 16),
              runLength: 0,
              invocations: v.rows * Math.ceil(v.cols / 16),
              constants: { CONTIGUOUS: 1, BLOCK_ITEMS: 16 },
            }
          : { lanes, blocksPerRow: 0, runLength: 0, invocations: lanes * v.cols, constants: {} };
    const pipeline = device.createComputePipeline({
      label: `bench.sweep.${which}.backward.pipeline`,
      layout: 'auto',
      compute: { module: backwardModules[which], entryPoint: entry, constants: { ...shape.constants, BATCH_STATS: 1, WORKGROUP_SIZE } },
    });
    const groups = Math.ceil(shape.invocations / 64);
    const gx = Math.min(groups, maxDim);
    const gy = Math.ceil(groups / gx);
    const uniform = device.createBuffer({ label: 'bench.sweep.backwardParams', size: 64, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    uniforms.push(uniform);
    // rows, cols, lanes, channels, laneChannelStep, xBase, dyBase, dxBase, weightBase, planeStride, flags, blocksPerRow, runLength
    device.queue.writeBuffer(
      uniform,
      0,
      new Uint32Array([
        v.rows,
        v.cols,
        shape.lanes,
        v.c,
        v.order === 'cf' ? shape.lanes % v.c : 0,
        0,
        0,
        0,
        0,
        planeStride,
        FLAG_AFFINE,
        shape.blocksPerRow,
        shape.runLength,
        0,
        0,
        0,
      ]),
    );
    const bindGroup = device.createBindGroup({
      label: `bench.sweep.${which}.backward.bindGroup`,
      layout: pipeline.getBindGroupLayout(0),
      entries: [uniform, x, dyBuffer, y, planes, perChannel[2] as GPUBuffer].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const encode = (encoder: GPUCommandEncoder, k: number): void => {
      for (let i = 0; i < k; i++) {
        const pass = encoder.beginComputePass({ label: 'bench.sweep.backward.pass' });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(gx, gy);
        pass.end();
      }
    };
    return { name, detail: `${entry}, wg 64, ${shape.invocations} inv`, encode, verify: () => check(encode, refDx) };
  };

  const candidates: Candidate[] = [
    makeBackward('baseline backward', 'baseline'),
    makeBackward('library backward', 'library'),
    makeLibrary('baseline train', 'baseline', false),
    makeLibrary('baseline eval', 'baseline', true),
    makeLibrary('library train', 'library', false),
    makeLibrary('library eval', 'library', true),
  ];
  const total = v.rows * v.cols;
  if (v.order === 'cf') {
    // The library's lanes for the coalesced walk (dispatch-shape.ts): ≥ 16 rows each, ≤ 64K
    // invocations, a multiple of C.
    let lanes = Math.max(1, Math.min(Math.ceil(v.rows / 16), Math.floor(65536 / v.cols)));
    if (lanes >= v.c) lanes = Math.floor(lanes / v.c) * v.c;
    if (lanes % v.c === 0)
      candidates.push(make('cf_lanes (GPU walk)', { entry: 'cf_lanes', workgroup: 64, items: 0, lanes, invocations: lanes * v.cols }));
    for (const wg of [64, 256]) {
      for (const items of [16, 64, v.cols]) {
        const runs = v.rows * Math.ceil(v.cols / items);
        const label = items === v.cols ? 'row' : `${items}`;
        candidates.push(make(`cf_run ${label}`, { entry: 'cf_run', workgroup: wg, items, lanes: 0, invocations: runs }));
      }
    }
    for (const wg of [64, 256]) {
      for (const items of [16, 64, v.cols, 4 * v.cols]) {
        const label = items === v.cols ? 'row' : items === 4 * v.cols ? '4 rows' : `${items}`;
        candidates.push(
          make(`cf_span ${label}`, { entry: 'cf_span', workgroup: wg, items, lanes: 0, invocations: Math.ceil(total / items) }),
        );
      }
    }
    if (v.cols % 16 === 0) {
      candidates.push(make('cf_span_fixed 16', { entry: 'cf_span_fixed', workgroup: 256, items: 16, lanes: 0, invocations: total / 16 }));
    }
  } else {
    const lanes = Math.max(1, Math.min(Math.ceil(v.rows / 16), Math.floor(65536 / v.cols)));
    for (const wg of [64, 256]) {
      candidates.push(make('cl_lanes (library)', { entry: 'cl_lanes', workgroup: wg, items: 0, lanes, invocations: lanes * v.cols }));
    }
    for (const wg of [64, 256]) {
      for (const items of [16, 64]) {
        const blocks = Math.ceil(v.rows / items);
        candidates.push(make(`cl_rows ${items}`, { entry: 'cl_rows', workgroup: wg, items, lanes: 0, invocations: blocks * v.cols }));
        if (v.cols % 4 === 0) {
          candidates.push(
            make(`cl_quad ${items}`, { entry: 'cl_quad', workgroup: wg, items, lanes: 0, invocations: (blocks * v.cols) / 4 }),
          );
        }
      }
    }
    for (const items of [16, 64]) {
      candidates.push(
        make(`cl_span ${items}`, { entry: 'cl_span', workgroup: 256, items, lanes: 0, invocations: Math.ceil(total / items) }),
      );
    }
  }
  return {
    x,
    floats: v.floats,
    candidates,
    destroy() {
      for (const buffer of [x, y, consts, libStats, dyBuffer, planes, ...perChannel, ...uniforms]) buffer.destroy();
    },
  };
}
