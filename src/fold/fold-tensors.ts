/**
 * Folding a BatchNorm module into the layer before it when the weights are already tensors of its
 * context: on WebGPU one dispatch of shaders/fold.wgsl on the GPUBuffers (zero-copy, recordable
 * into your encoder), on the CPU the float64 fold of fold-cpu.ts.
 */
import { optionKeys, rejectUnknownKeys } from '../arguments.js';
import { checkFloat32 } from '../dtype.js';
import type { BatchNorm } from '../batch-norm/module.js';
import { checkEncoder, checkNoAliasing } from '../batch-norm/aliasing.js';
import { runGpuOp } from '../gpu/dispatch.js';
import { grid } from '../gpu/grid.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { WORKGROUP_SIZE } from '../gpu/contracts.js';
import { FOLD } from '../batch-norm/kernels/stages/fold.js';
import type { GpuRuntime } from '../gpu/runtime.js';
import { bindOptional, bindTensor, bindUniforms } from '../gpu/tensor-binding.js';
import type { Tensor } from '../tensor.js';
import { foldBatchNorm } from './fold-cpu.js';
import { foldGeometry, type FoldGeometry, type WeightLayout } from './fold-geometry.js';

/** The layer before the batch norm, as tensors of the module's context. */
export interface FoldTensorLayer {
  /** The weight, its `shape` the weight's shape (e.g. [O, I/groups, kH, kW]). */
  readonly weight: Tensor;
  /** Per-output-channel bias of shape [O], or null/absent. */
  readonly bias?: Tensor | null;
}

/** Where {@link encodeFoldBatchNorm} writes. */
export interface FoldTensorOutputs {
  /** Same shape as the input weight; must not share a buffer with any input. Float32. */
  readonly weight: Tensor<'float32'>;
  /** Shape [O]. Float32. */
  readonly bias: Tensor<'float32'>;
}

/** Options of {@link foldBatchNormTensors} and {@link encodeFoldBatchNorm}. */
export interface FoldTensorOptions {
  /** Where the weight's output channels are. Default `'channels_first'` (PyTorch). */
  layout?: WeightLayout;
}

/** The keys of {@link FoldTensorOptions}; any other key is rejected. */
export const FOLD_TENSOR_OPTION_KEYS = optionKeys<FoldTensorOptions>({ layout: true });

interface CheckedFold {
  readonly g: FoldGeometry;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
}

function check(who: string, bn: BatchNorm, layer: FoldTensorLayer, options: FoldTensorOptions): CheckedFold {
  rejectUnknownKeys(options, FOLD_TENSOR_OPTION_KEYS, `${who} options`);
  bn.assertAlive();
  const ctx = bn.ctx;
  if (!bn.runningMean || !bn.runningVar) {
    throw new ArgumentError(
      `${who}: ${bn.name} has trackRunningStats=false; only a batch norm with running statistics (evaluation mode) can be folded`,
    );
  }
  if (!layer || typeof layer !== 'object') throw new ArgumentError(`${who}: layer must be { weight, bias? }`);
  ctx.assertOwnTensor(layer.weight, `${who}: layer.weight`);
  if (layer.bias) ctx.assertOwnTensor(layer.bias, `${who}: layer.bias`);
  // Folding is float32 arithmetic on float32 weights (float16 / bfloat16 tensors are activations).
  checkFloat32(layer.weight, 'layer.weight', who);
  if (layer.bias) checkFloat32(layer.bias, 'layer.bias', who);
  const g = foldGeometry(who, layer.weight.shape, bn.numFeatures, options.layout);
  if (g.channelsLast && layer.weight.layout !== 'channels_first') {
    throw new ArgumentError(
      `${who}: a channels_last (k…×I×O) weight must be a plain row-major tensor (tensor layout 'channels_first'), got tensor layout '${layer.weight.layout}'`,
    );
  }
  if (layer.bias && layer.bias.size !== g.channels) {
    throw new ShapeError(`${who}: layer.bias has shape [${layer.bias.shape.join(', ')}], expected [${g.channels}]`);
  }
  return { g, runningMean: bn.runningMean, runningVar: bn.runningVar };
}

function checkOutputs(who: string, bn: BatchNorm, layer: FoldTensorLayer, out: FoldTensorOutputs, g: FoldGeometry): void {
  const ctx = bn.ctx;
  ctx.assertOwnTensor(out.weight, `${who}: out.weight`);
  ctx.assertOwnTensor(out.bias, `${who}: out.bias`);
  checkFloat32(out.weight, 'out.weight', who);
  checkFloat32(out.bias, 'out.bias', who);
  if (out.weight.size !== g.count) throw new ShapeError(`${who}: out.weight has ${out.weight.size} values, the weight ${g.count}`);
  if (out.bias.size !== g.channels)
    throw new ShapeError(`${who}: out.bias has shape [${out.bias.shape.join(', ')}], expected [${g.channels}]`);
  checkNoAliasing(
    ctx,
    who,
    [
      ['layer.weight', layer.weight],
      ['layer.bias', layer.bias ?? null],
      ['bn.weight', bn.weight],
      ['bn.bias', bn.bias],
      ['bn.runningMean', bn.runningMean],
      ['bn.runningVar', bn.runningVar],
    ],
    [
      ['out.weight', out.weight],
      ['out.bias', out.bias],
    ],
  );
}

/** Records the fold dispatch; inputs and outputs are validated tensors on the GPU. */
function encodeFold(
  gpu: GpuRuntime,
  encoder: GPUCommandEncoder,
  bn: BatchNorm,
  layer: FoldTensorLayer,
  out: FoldTensorOutputs,
  c: CheckedFold,
): void {
  const device = gpu.device;
  const kernel = FOLD.kernel(device, 'fold_batch_norm');
  const weight = bindTensor(device, layer.weight);
  const bias = bindOptional(gpu, layer.bias ?? null, 'bias');
  const bnWeight = bindOptional(gpu, bn.weight, 'bnWeight');
  const bnBias = bindOptional(gpu, bn.bias, 'bnBias');
  const runningMean = bindTensor(device, c.runningMean);
  const runningVar = bindTensor(device, c.runningVar);
  const foldedWeight = bindTensor(device, out.weight);
  const foldedBias = bindTensor(device, out.bias);
  const pass = encoder.beginComputePass({ label: 'bn.fold.pass' });
  pass.setPipeline(kernel.pipeline);
  pass.setBindGroup(
    0,
    gpu.bindGroups.get(kernel, {
      params: bindUniforms(gpu, kernel, {
        count: c.g.count,
        channels: c.g.channels,
        inner: c.g.inner,
        channelsLast: c.g.channelsLast ? 1 : 0,
        hasBias: layer.bias ? 1 : 0,
        affine: bn.weight ? 1 : 0,
        eps: bn.kernelEps,
        weightBase: weight.base,
        biasBase: bias.base,
        bnWeightBase: bnWeight.base,
        bnBiasBase: bnBias.base,
        runningMeanBase: runningMean.base,
        runningVarBase: runningVar.base,
        foldedWeightBase: foldedWeight.base,
        foldedBiasBase: foldedBias.base,
      }),
      weight: weight.resource,
      bias: bias.resource,
      bnWeight: bnWeight.resource,
      bnBias: bnBias.resource,
      runningMean: runningMean.resource,
      runningVar: runningVar.resource,
      foldedWeight: foldedWeight.resource,
      foldedBias: foldedBias.resource,
    }),
  );
  const invocations = Math.max(c.g.count, c.g.channels);
  pass.dispatchWorkgroups(...grid(Math.ceil(invocations / WORKGROUP_SIZE), device.limits.maxComputeWorkgroupsPerDimension));
  pass.end();
}

function cpuData(t: Tensor): Float32Array {
  const s = t.storage;
  if (s.kind !== 'cpu') throw new Error(`internal: tensor '${t.label}' is not on the CPU`);
  return s.data;
}

/**
 * Folds `bn`'s current evaluation-mode values (weight, bias, running statistics, and the eps its
 * forward uses, `bn.kernelEps`) into `layer`
 * and returns new tensors `{ weight, bias }` of the same context, on either backend. WebGPU: one
 * dispatch, one submit, no readback; CPU: float64 arithmetic as {@link foldBatchNorm}.
 *
 * @example
 * const conv = { weight: ctx.tensor(w, [16, 3, 3, 3]), bias: null };
 * const folded = foldBatchNormTensors(bn, conv);           // bn: a loaded BatchNorm2d(16)
 * // run your convolution with folded.weight / folded.bias and drop the batch norm
 *
 * @throws ShapeError when the weight's output channels or the bias disagree with bn.numFeatures;
 *   ArgumentError when bn has no running statistics or a tensor belongs to another context.
 */
export function foldBatchNormTensors(bn: BatchNorm, layer: FoldTensorLayer, options: FoldTensorOptions = {}): FoldTensorOutputs {
  const who = 'foldBatchNormTensors';
  const c = check(who, bn, layer, options);
  const ctx = bn.ctx;
  const weight = ctx.allocTensor(layer.weight.shape, layer.weight.layout, 'folded_weight');
  const bias = ctx.allocTensor([c.g.channels], 'channels_first', 'folded_bias');
  const out = { weight, bias };
  const gpu = ctx.gpu;
  if (gpu) {
    runGpuOp(gpu, 'bn.fold', { outputs: [out.weight, out.bias] }, (encoder) => encodeFold(gpu, encoder, bn, layer, out, c));
    return out;
  }
  const folded = foldBatchNorm(
    { weight: cpuData(layer.weight), weightShape: layer.weight.shape, bias: layer.bias ? cpuData(layer.bias) : null },
    {
      weight: bn.weight ? cpuData(bn.weight) : null,
      bias: bn.bias ? cpuData(bn.bias) : null,
      running_mean: cpuData(c.runningMean),
      running_var: cpuData(c.runningVar),
    },
    { eps: bn.kernelEps, ...(options.layout ? { layout: options.layout } : {}) },
  );
  cpuData(weight).set(folded.weight);
  cpuData(bias).set(folded.bias);
  return out;
}

/**
 * Records the fold into your command encoder (WebGPU only), reading the layer's and `bn`'s buffers
 * and writing `out`; nothing is submitted or read back. `bn`'s values are read when you submit.
 * @throws as {@link foldBatchNormTensors}, and ArgumentError on the CPU backend or when an output
 *   shares a buffer with an input.
 */
export function encodeFoldBatchNorm(
  encoder: GPUCommandEncoder,
  bn: BatchNorm,
  layer: FoldTensorLayer,
  out: FoldTensorOutputs,
  options: FoldTensorOptions = {},
): void {
  const who = 'encodeFoldBatchNorm';
  const c = check(who, bn, layer, options);
  const gpu = bn.ctx.gpu;
  if (!gpu) throw new ArgumentError(`${who} needs the 'webgpu' backend; this context runs on 'cpu' (use foldBatchNormTensors)`);
  checkEncoder(encoder, who);
  checkOutputs(who, bn, layer, out, c.g);
  runGpuOp(gpu, 'bn.fold', { outputs: [out.weight, out.bias] }, (e) => encodeFold(gpu, e, bn, layer, out, c), { encoder });
}
