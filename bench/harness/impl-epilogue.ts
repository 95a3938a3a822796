/**
 * Fused epilogue rows: the library's BN → ReLU and BN → add → ReLU (forward in training and
 * evaluation, and the backward through them), and BN → GELU / BN → sigmoid (training forward and
 * backward, fused only: their backward recomputes the pre-activation, the costlier path), the ReLU
 * ones against the same work unfused, i.e. the library's
 * plain BN followed by the separate elementwise passes of unfused-epilogue.wgsl, as an eager
 * framework runs `relu(bn(x))` and `relu(bn(x) + z)`: one extra pass for ReLU, two for add + ReLU,
 * and ReLU's backward (threshold_backward) before BN's backward. Same device, same buffers, K
 * iterations recorded into one encoder and one submit, like impl-ours.ts.
 */
import { cpuActivate, cpuGradFromPreActivation } from '../../src/batch-norm/cpu/cpu-epilogue.js';
import { checkActivation } from '../../src/batch-norm/epilogue.js';
import type * as Library from '../../src/index.js';
import { forEachElement, relativeError, worstError, type CaseData } from './data.js';
import { createTensorBuffer, poison, readFloats, submitTimed } from './gpu.js';
import { moduleFor } from './impl-ours.js';
import { unavailableSet, type CaseContext, type Impl, type ImplSet } from './impl.js';
import { activationOfOp, EPILOGUE_OPS, plainOpOf, UNFUSED_EPILOGUE_OPS, type EpilogueOpName, type ImplName } from './types.js';
import unfusedSource from './unfused-epilogue.wgsl?raw';

const USAGE_UNIFORM = 0x40;
const USAGE_COPY_DST = 0x08;
const WORKGROUP = 64;
const ITEMS = 16;

type PassEntry = 'relu' | 'add' | 'relu_backward';

/** The unfused passes of unfused-epilogue.wgsl on one device, for tensors of `floats` values. */
class UnfusedPasses {
  readonly #device: GPUDevice;
  readonly #pipelines = new Map<PassEntry, GPUComputePipeline>();
  readonly #uniform: GPUBuffer;
  readonly #groups: [number, number];
  readonly #bytes: number;

  constructor(device: GPUDevice, floats: number, blocked: boolean) {
    if (floats % 4 !== 0) throw new Error(`unfused passes need a multiple of 4 floats, got ${floats}`);
    this.#device = device;
    this.#bytes = floats * 4;
    const module = device.createShaderModule({ label: 'bench.unfused.module', code: unfusedSource });
    for (const entry of ['relu', 'add', 'relu_backward'] as const) {
      this.#pipelines.set(
        entry,
        device.createComputePipeline({
          label: `bench.unfused.${entry}.pipeline`,
          layout: 'auto',
          compute: { module, entryPoint: entry, constants: { WORKGROUP, ITEMS, BLOCKED: blocked ? 1 : 0 } },
        }),
      );
    }
    const len = floats / 4;
    const groups = Math.max(1, Math.ceil(len / (WORKGROUP * (blocked ? ITEMS : 16))));
    const gx = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
    const gy = Math.ceil(groups / gx);
    this.#groups = [gx, gy];
    this.#uniform = device.createBuffer({ label: 'bench.unfused.params', size: 16, usage: USAGE_UNIFORM | USAGE_COPY_DST });
    device.queue.writeBuffer(this.#uniform, 0, new Uint32Array([len, gx * gy * WORKGROUP, gx, 0]));
  }

  /** A recorder of `entry` reading a (and b) and writing dst; bind groups are made once here. */
  pass(entry: PassEntry, a: GPUBuffer, b: GPUBuffer | null, dst: GPUBuffer): (encoder: GPUCommandEncoder) => void {
    const pipeline = this.#pipelines.get(entry);
    if (!pipeline) throw new Error(`no pipeline ${entry}`);
    const range = (buffer: GPUBuffer): GPUBufferBinding => ({ buffer, offset: 0, size: this.#bytes });
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: this.#uniform } },
      { binding: 1, resource: range(a) },
      { binding: 3, resource: range(dst) },
    ];
    if (b) entries.push({ binding: 2, resource: range(b) });
    const group = this.#device.createBindGroup({
      label: `bench.unfused.${entry}.bindGroup`,
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    const [gx, gy] = this.#groups;
    return (encoder) => {
      const p = encoder.beginComputePass({ label: `bench.unfused.${entry}.pass` });
      p.setPipeline(pipeline);
      p.setBindGroup(0, group);
      p.dispatchWorkgroups(gx, gy);
      p.end();
    };
  }

  destroy(): void {
    this.#uniform.destroy();
  }
}

/** A deterministic residual z in [-1, 1]. */
function residualData(size: number): Float32Array {
  return new Float32Array(size).map((_, i) => Math.sin(i * 0.37 + 0.1));
}

/** Float64 BN training backward of gradient `g` (the formula of data.ts), for the references. */
function bnBackwardRef(d: CaseData, g: Float64Array): { gradInput: Float64Array; gradWeight: Float64Array; gradBias: Float64Array } {
  const geo = d.geometry;
  const c = geo.c;
  const count = geo.n * geo.s;
  const sumG = new Float64Array(c);
  const sumGX = new Float64Array(c);
  forEachElement(geo, (i, k) => {
    const xhat = ((d.x[i] as number) - (d.mean[k] as number)) * (d.invstd[k] as number);
    sumG[k] = (sumG[k] as number) + (g[i] as number);
    sumGX[k] = (sumGX[k] as number) + (g[i] as number) * xhat;
  });
  const gradInput = new Float64Array(geo.size);
  forEachElement(geo, (i, k) => {
    const is = d.invstd[k] as number;
    const xhat = ((d.x[i] as number) - (d.mean[k] as number)) * is;
    gradInput[i] = (d.weight[k] as number) * is * ((g[i] as number) - (sumG[k] as number) / count - (xhat * (sumGX[k] as number)) / count);
  });
  return { gradInput, gradWeight: sumGX, gradBias: sumG };
}

/**
 * Fused (`webgpu-batchnorm`) and unfused (`webgpu-batchnorm-unfused`) epilogue rows on the shared
 * device. `which` selects the set.
 */
export function createEpilogueGpu(cc: CaseContext, ctx: Library.BatchNormContext | null, which: 'fused' | 'unfused'): ImplSet {
  const implName: ImplName = which === 'fused' ? 'webgpu-batchnorm' : 'webgpu-batchnorm-unfused';
  const gpu = cc.gpu;
  // The unfused baseline has ReLU passes only (unfused-epilogue.wgsl).
  const ops = which === 'fused' ? EPILOGUE_OPS : UNFUSED_EPILOGUE_OPS;
  if (!gpu || !cc.xBuffer || !cc.dyBuffer || !ctx) return unavailableSet(implName, ops, 'no WebGPU device');
  const device = gpu.device;
  const d = cc.data;
  const g = d.geometry;
  const size = g.size;
  const shape = cc.shape;
  const layout = cc.layout;
  const c = g.c;
  const zData = residualData(size);
  const owned: GPUBuffer[] = [];
  const buffer = (label: string, n = size, data?: Float32Array): GPUBuffer => {
    const b = createTensorBuffer(device, `bench.epilogue.${which}.${label}`, n * 4, data);
    owned.push(b);
    return b;
  };
  const tensors: Library.Tensor[] = [];
  const wrap = (b: GPUBuffer, s: readonly number[], label: string, l: 'channels_first' | 'channels_last' = layout): Library.Tensor => {
    const t = ctx.tensorFromBuffer(b, s, { layout: l, label });
    tensors.push(t);
    return t;
  };
  const xBuffer = cc.xBuffer;
  const dyBuffer = cc.dyBuffer;
  const x = wrap(xBuffer, shape, 'x');
  const dy = wrap(dyBuffer, shape, 'dy');
  const zBuffer = buffer('z', size, zData);
  const z = wrap(zBuffer, shape, 'z');
  const passes = which === 'unfused' ? new UnfusedPasses(device, size, gpu.adapterInfo?.isFallbackAdapter === true) : null;
  const note =
    which === 'fused'
      ? "encodeForward/encodeBackward with epilogue { activation: relu | gelu | sigmoid, residual? }: the activation in BN's own passes"
      : 'plain encodeForward/encodeBackward plus separate WGSL passes (add, relu; relu backward): the unfused baseline';

  // The library's own float64 activations (cpu-epilogue.ts, checked against torch by the tests).
  const resolved = (op: EpilogueOpName) => checkActivation(activationOfOp(op), 'bench');
  const forwardRef = (op: EpilogueOpName, mode: 'train' | 'eval', add: boolean): Float64Array => {
    const base = mode === 'train' ? d.refTrain : d.refEval;
    const a = resolved(op);
    return base.map((v, i) => cpuActivate(a, v + (add ? (zData[i] as number) : 0)));
  };

  const forwardImpl = (op: EpilogueOpName): Impl => {
    const mode = plainOpOf(op) === 'eval' ? 'eval' : 'train';
    const add = op.includes('add');
    const bn = moduleFor(cc, ctx);
    if (mode === 'eval') bn.eval();
    const outBuffer = buffer(`${op}.out`);
    const out = wrap(outBuffer, shape, 'out');
    let record: (e: GPUCommandEncoder) => void;
    if (passes) {
      const yBuffer = buffer(`${op}.y`);
      const y = wrap(yBuffer, shape, 'y');
      const sumBuffer = add ? buffer(`${op}.sum`) : null;
      const addPass = sumBuffer ? passes.pass('add', yBuffer, zBuffer, sumBuffer) : null;
      const reluPass = passes.pass('relu', sumBuffer ?? yBuffer, null, outBuffer);
      record = (e) => {
        bn.encodeForward(e, x, y);
        addPass?.(e);
        reluPass(e);
      };
    } else {
      const epilogue = { activation: activationOfOp(op), residual: add ? z : null };
      record = (e) => bn.encodeForward(e, x, out, { epilogue });
    }
    const run = (k: number): Promise<number | null> =>
      submitTimed(
        device,
        `bench.epilogue.${which}.${op}`,
        (e) => {
          for (let i = 0; i < k; i++) record(e);
        },
        cc.span,
      );
    return {
      impl: implName,
      op,
      kind: 'gpu',
      note,
      async verify() {
        poison(device, outBuffer, size);
        await run(1);
        await ctx.sync();
        return relativeError(await readFloats(device, outBuffer, size), forwardRef(op, mode, add));
      },
      run,
      dispose() {
        bn.destroy();
      },
    };
  };

  const backwardImpl = (op: EpilogueOpName): Impl => {
    const add = op.includes('add');
    const bn = moduleFor(cc, ctx);
    const outBuffer = buffer(`${op}.out`);
    const out = wrap(outBuffer, shape, 'out');
    const dxBuffer = buffer(`${op}.dx`);
    const dwBuffer = buffer(`${op}.dw`, c);
    const dbBuffer = buffer(`${op}.db`, c);
    const gradInput = wrap(dxBuffer, shape, 'grad_input');
    const gradWeight = wrap(dwBuffer, [c], 'grad_weight', 'channels_first');
    const gradBias = wrap(dbBuffer, [c], 'grad_bias', 'channels_first');
    // Fused: written by the elementwise pass. Unfused: autograd hands ReLU's gradient to both
    // branches of the add, so the residual's gradient IS the masked dy (no pass, no copy).
    const grBuffer = add && !passes ? buffer(`${op}.gradResidual`) : null;
    const gradResidual = grBuffer ? wrap(grBuffer, shape, 'grad_residual') : null;
    let forward: (e: GPUCommandEncoder) => void;
    let backward: (e: GPUCommandEncoder) => void;
    let maskedBuffer: GPUBuffer | null = null;
    if (passes) {
      const yBuffer = buffer(`${op}.y`);
      const y = wrap(yBuffer, shape, 'y');
      const sumBuffer = add ? buffer(`${op}.sum`) : null;
      const addPass = sumBuffer ? passes.pass('add', yBuffer, zBuffer, sumBuffer) : null;
      const reluPass = passes.pass('relu', sumBuffer ?? yBuffer, null, outBuffer);
      maskedBuffer = buffer(`${op}.maskedDy`);
      const masked = wrap(maskedBuffer, shape, 'masked_dy');
      const reluBackward = passes.pass('relu_backward', dyBuffer, outBuffer, maskedBuffer);
      forward = (e) => {
        bn.encodeForward(e, x, y);
        addPass?.(e);
        reluPass(e);
      };
      backward = (e) => {
        reluBackward(e);
        bn.encodeBackward(e, masked, { gradInput, gradWeight, gradBias });
      };
    } else {
      const epilogue = { activation: activationOfOp(op), residual: add ? z : null };
      forward = (e) => bn.encodeForward(e, x, out, { epilogue });
      backward = (e) => bn.encodeBackward(e, dy, { gradInput, gradWeight, gradBias, gradResidual });
    }
    let forwardDone = false;
    const run = async (k: number): Promise<number | null> => {
      if (!forwardDone) {
        // One training forward leaves the statistics and the output every timed backward reuses.
        await submitTimed(device, `bench.epilogue.${which}.${op}.forward`, forward, null);
        forwardDone = true;
      }
      return submitTimed(
        device,
        `bench.epilogue.${which}.${op}`,
        (e) => {
          for (let i = 0; i < k; i++) backward(e);
        },
        cc.span,
      );
    };
    return {
      impl: implName,
      op,
      kind: 'gpu',
      note,
      async verify() {
        for (const [b, n] of [
          [dxBuffer, size],
          [dwBuffer, c],
          [dbBuffer, c],
        ] as const)
          poison(device, b, n);
        if (grBuffer) poison(device, grBuffer, size);
        await run(1);
        await ctx.sync();
        // ReLU: the mask comes from the forward's own output (as the backward's does), so a value
        // that rounds across 0 cannot fail the check; smooth activations: their derivative at the
        // float64 pre-activation. Everything else is float64.
        const y = await readFloats(device, outBuffer, size);
        const dyData = d.dy;
        const a = resolved(op);
        const gRef = new Float64Array(size).map((_, i) => {
          const g = dyData[i] as number;
          if (a.kind === 'relu') return (y[i] as number) > 0 ? g : 0;
          return cpuGradFromPreActivation(a, g, (d.refTrain[i] as number) + (add ? (zData[i] as number) : 0));
        });
        const ref = bnBackwardRef(d, gRef);
        const residualErr = grBuffer
          ? relativeError(await readFloats(device, grBuffer, size), gRef)
          : maskedBuffer && add
            ? relativeError(await readFloats(device, maskedBuffer, size), gRef)
            : 0;
        return worstError(
          relativeError(await readFloats(device, dxBuffer, size), ref.gradInput),
          relativeError(await readFloats(device, dwBuffer, c), ref.gradWeight),
          relativeError(await readFloats(device, dbBuffer, c), ref.gradBias),
          residualErr,
        );
      },
      run,
      dispose() {
        bn.destroy();
      },
    };
  };

  const items = ops.map((op) => (plainOpOf(op) === 'backward' ? backwardImpl(op) : forwardImpl(op)));
  return {
    items,
    dispose() {
      for (const t of tensors) t.destroy();
      for (const b of owned) b.destroy();
      passes?.destroy();
    },
  };
}
