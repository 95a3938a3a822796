import type { DType } from '../dtype.js';
import { optionKeys, optionsObject, rejectUnknownKeys } from '../arguments.js';
import { assertContext, type BatchNormContext } from '../context.js';
import { ArgumentError, BackwardStateError, DestroyedError, ShapeError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { cpuBackward, cpuEpilogueGrad } from './cpu/cpu-backward.js';
import { checkEncoder, checkNoAliasing, type NamedTensor } from './aliasing.js';
import { checkEpilogue, masksFromOutput, usesPreActivation, type Epilogue, type ResolvedEpilogue } from './epilogue.js';
import { runGpuOp } from '../gpu/dispatch.js';
import { cpuData, cpuTarget, cpuValues, type ForwardRecord } from './forward.js';
import { checkShapeAndLayout, type Geometry } from './geometry.js';
import { encodeBackward, encodePrepare, type GpuBackwardArgs } from './kernels/gpu-backward.js';
import { channelStatsBytes } from '../gpu/contracts.js';
import { checkBoolean, checkEps } from './config/options.js';
import { checkChannelTensor, checkInput } from './validate.js';
import { CONVENTIONS } from './config/conventions.js';

/** Which of [gradInput, gradWeight, gradBias] to compute, as PyTorch's `output_mask`. */
export type OutputMask = readonly [boolean, boolean, boolean];

/**
 * What a module backward needs from its module: a snapshot the module hands over, so this file
 * never imports the module class (and the module keeps its forward record private).
 */
export interface ModuleBackwardSource {
  readonly ctx: BatchNormContext;
  /** Class name for messages, e.g. `'BatchNorm2d'`. */
  readonly name: string;
  readonly numFeatures: number;
  readonly affine: boolean;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  /** The module's state version now; a record from an older version is stale. */
  readonly version: number;
  readonly lastForward: ForwardRecord | null;
  assertAlive(): void;
}

/** Options of `BatchNorm.backward`. */
export interface BackwardOptions {
  /**
   * Which of [gradInput, gradWeight, gradBias] to compute; work for the others is skipped and they
   * come back null. Modules: default `[true, true, true]` (gradWeight and gradBias are null anyway
   * when the module has no weight / bias). `batchNormBackward`: default `[true, w, w]` with w =
   * whether a weight was given; as in ATen, gradWeight and gradBias may also be asked for without
   * a weight (they are then the gradients of an implicit weight of 1 and bias of 0).
   */
  outputMask?: OutputMask;
}

/** The keys of {@link BackwardOptions}; any other key is rejected. */
export const BACKWARD_OPTION_KEYS = optionKeys<BackwardOptions>({ outputMask: true });

/** Gradients of a backward; each is a new tensor on the context's backend, or null. */
export interface BackwardResult<D extends DType = DType> {
  /** dL/dx, same shape and layout as the input; null when not requested. */
  readonly gradInput: Tensor<D> | null;
  /** dL/dweight, shape [C]; null when not requested or the module is not affine. */
  readonly gradWeight: Tensor<'float32'> | null;
  /** dL/dbias, shape [C]; null when not requested or the module is not affine. */
  readonly gradBias: Tensor<'float32'> | null;
  /**
   * dL/dresidual of a fused epilogue (same shape and layout as the input): non-null exactly when
   * the forward added a residual. It is dL/dy taken through the activation's derivative.
   */
  readonly gradResidual: Tensor<D> | null;
  /**
   * dL/dweight of a PReLU epilogue's slope tensor (its shape, [C] or [1]): Σ dy·t over the
   * elements with t ≤ 0 of each channel (of all channels for [1]), as torch's prelu backward.
   * Non-null exactly when the forward's activation was PReLU.
   */
  readonly gradPreluWeight: Tensor<'float32'> | null;
}

/**
 * Where `BatchNorm.encodeBackward` writes. A gradient is computed only when its tensor is
 * given; each must be distinct from the others and from the input, gradOutput and weight.
 */
export interface BackwardOutputs {
  /** Same shape and layout as the forward's input. */
  gradInput?: Tensor | null;
  /** Shape [C]; only for affine modules. */
  gradWeight?: Tensor | null;
  /** Shape [C]; only for affine modules. */
  gradBias?: Tensor | null;
  /** Same shape and layout as the forward's input; only when the forward added a residual. */
  gradResidual?: Tensor | null;
  /** The PReLU slope's shape ([C] or [1]); only when the forward's activation was PReLU. */
  gradPreluWeight?: Tensor | null;
}

/** The keys of {@link BackwardOutputs}; any other key is rejected (a misspelt output would be skipped). */
export const BACKWARD_OUTPUT_KEYS = optionKeys<BackwardOutputs>({
  gradInput: true,
  gradWeight: true,
  gradBias: true,
  gradResidual: true,
  gradPreluWeight: true,
});

/** Arguments of {@link batchNormBackward}, named after `torch.ops.aten.native_batch_norm_backward`. */
export interface BatchNormBackwardArgs {
  /** dL/dy, same shape and layout as `input`. */
  gradOutput: Tensor;
  /** The forward's input x, (N, C, ...). */
  input: Tensor;
  /** Shape [C]; null or absent means an implicit weight of 1 (no affine). */
  weight?: Tensor | null;
  /**
   * Shape [C]: the mean the forward normalized with: the batch mean when `training` (required
   * then); with `training: false` and no running statistics given, the constant mean it used.
   */
  saveMean?: Tensor | null;
  /** Shape [C]: the forward's 1 / sqrt(var + eps), given together with `saveMean`. */
  saveInvstd?: Tensor | null;
  /**
   * Shape [C]: the running mean an eval-mode forward used (with `training: false`; takes
   * precedence over saveMean/saveInvstd, as in ATen).
   */
  runningMean?: Tensor | null;
  /** Shape [C]: the running variance an eval-mode forward used; invstd = 1 / sqrt(runningVar + eps). */
  runningVar?: Tensor | null;
  /**
   * Default true: the forward used batch statistics (`saveMean`, `saveInvstd`), and the gradient
   * flows through them. False: the forward used running statistics (`runningMean`, `runningVar`,
   * or else `saveMean`, `saveInvstd`), which are constants.
   */
  training?: boolean;
  /** Added to `runningVar` inside the square root when `training` is false. Default 1e-5. */
  eps?: number;
  /**
   * The fused epilogue the forward applied (`batchNorm(..., { epilogue })`); default none. With a
   * residual, `gradResidual` is returned too.
   */
  epilogue?: Epilogue;
  /** The forward's output y: required with a ReLU-family activation (its mask comes from y). */
  output?: Tensor | null;
  /**
   * Shape [C]: the forward's bias (default 0). Only an epilogue whose backward recomputes the
   * pre-activation (every activation but the ReLU family) reads it, with x and the statistics.
   */
  bias?: Tensor | null;
}

/** The keys of {@link BatchNormBackwardArgs}; any other key is rejected. */
export const BATCH_NORM_BACKWARD_ARG_KEYS = optionKeys<BatchNormBackwardArgs>({
  gradOutput: true,
  input: true,
  weight: true,
  saveMean: true,
  saveInvstd: true,
  runningMean: true,
  runningVar: true,
  training: true,
  eps: true,
  epilogue: true,
  output: true,
  bias: true,
});

function checkMask(mask: unknown, who: string): [boolean, boolean, boolean] {
  if (!Array.isArray(mask) || mask.length !== 3 || mask.some((m) => typeof m !== 'boolean')) {
    throw new ArgumentError(
      `${who}: outputMask must be an array of 3 booleans [gradInput, gradWeight, gradBias], got ${JSON.stringify(mask)}`,
    );
  }
  return [mask[0] as boolean, mask[1] as boolean, mask[2] as boolean];
}

function checkGradOutput(ctx: BatchNormContext, dy: Tensor, x: Tensor, who: string): void {
  checkShapeAndLayout(ctx, dy, x, 'gradOutput', "the forward input's", who);
}

/** The forward record a module backward runs on; throws if there is none usable. */
function forwardRecord(bn: ModuleBackwardSource, who: string): ForwardRecord {
  const record = bn.lastForward;
  if (!record) {
    throw new BackwardStateError(
      `${who}: no forward to differentiate since the module was created or last changed by loadStateDict; call forward() (or encodeForward()) first`,
    );
  }
  if (record.version !== bn.version) {
    throw new BackwardStateError(
      `${who}: the module changed (loadStateDict) since the last forward; run forward() again before backward()`,
    );
  }
  checkForwardTensorsAlive(record, who);
  return record;
}

/**
 * The one check that a forward's tensors a backward reads are still alive (BatchNorm and
 * SyncBatchNorm): its input, and what its epilogue's backward reads (the output for a mask, the
 * residual for a recomputed pre-activation, the PReLU weight).
 * @throws DestroyedError naming the tensor and why the backward needs it.
 */
export function checkForwardTensorsAlive(
  forward: { readonly input: Tensor; readonly output: Tensor; readonly epilogue: ResolvedEpilogue | null },
  who: string,
): void {
  if (forward.input.destroyed) {
    throw new DestroyedError(`${who}: the forward's input tensor '${forward.input.label}' was destroyed; backward needs it`);
  }
  const e = forward.epilogue;
  if (e && masksFromOutput(e.activation) && forward.output.destroyed) {
    throw new DestroyedError(
      `${who}: the forward's output tensor '${forward.output.label}' was destroyed; backward through its ${e.activation.kind} epilogue masks with it (keep the output until backward)`,
    );
  }
  if (e && usesPreActivation(e.activation) && e.residual?.destroyed) {
    throw new DestroyedError(
      `${who}: the forward's epilogue.residual tensor '${e.residual.label}' was destroyed; backward through its ${e.activation.kind} epilogue recomputes the pre-activation from it`,
    );
  }
  if (e?.activation.weight?.destroyed) {
    throw new DestroyedError(
      `${who}: the forward's PReLU weight tensor '${e.activation.weight.label}' was destroyed; backward reads the slope from it`,
    );
  }
}

interface Resolved {
  readonly x: Tensor;
  readonly dy: Tensor;
  readonly g: Geometry;
  readonly weight: Tensor | null;
  readonly useBatchStats: boolean;
  readonly gradInput: Tensor | null;
  readonly gradWeight: Tensor | null;
  readonly gradBias: Tensor | null;
  /** The forward's epilogue, its output (ReLU-family mask) and where dL/dresidual goes. */
  readonly epilogue: ResolvedEpilogue | null;
  readonly output: Tensor | null;
  readonly gradResidual: Tensor | null;
  /** PReLU: where dL/dweight of the slope goes (null: not requested). */
  readonly gradPreluWeight: Tensor | null;
}

/** A pre-activation epilogue's CPU backward recomputes t = x·scale + shift (+ residual) with these. */
interface CpuAffine {
  readonly scale: ArrayLike<number>;
  readonly shift: ArrayLike<number>;
}

function runCpu(r: Resolved, mean: ArrayLike<number>, invstd: ArrayLike<number>, affine: CpuAffine | null): void {
  const x = cpuValues(r.x);
  let dy: ArrayLike<number> = cpuValues(r.dy);
  const e = r.epilogue;
  if (e) {
    const grad = cpuEpilogueGrad(x, dy, r.g, {
      activation: e.activation,
      output: r.output && masksFromOutput(e.activation) ? cpuValues(r.output) : null,
      residual: e.residual ? cpuValues(e.residual) : null,
      scale: affine?.scale ?? null,
      shift: affine?.shift ?? null,
      preluSlope: e.activation.weight ? cpuData(e.activation.weight) : null,
      gradPreluWeight: r.gradPreluWeight ? cpuData(r.gradPreluWeight) : null,
    });
    if (r.gradResidual) {
      const out = cpuTarget(r.gradResidual);
      out.values.set(grad);
      out.commit();
    }
    dy = grad;
  }
  const gradInput = r.gradInput ? cpuTarget(r.gradInput) : null;
  cpuBackward({ x, dy, mean, invstd, weight: r.weight ? cpuData(r.weight) : null, useBatchStats: r.useBatchStats }, r.g, {
    gradInput: gradInput ? gradInput.values : null,
    gradWeight: r.gradWeight ? cpuData(r.gradWeight) : null,
    gradBias: r.gradBias ? cpuData(r.gradBias) : null,
  });
  gradInput?.commit();
}

function gpuArgs(r: Resolved, channelStats: GPUBuffer): GpuBackwardArgs {
  return {
    x: r.x,
    dy: r.dy,
    weight: r.weight,
    channelStats,
    useBatchStats: r.useBatchStats,
    gradInput: r.gradInput,
    gradWeight: r.gradWeight,
    gradBias: r.gradBias,
    epilogue: r.epilogue
      ? { epilogue: r.epilogue, output: r.output, gradResidual: r.gradResidual, gradPreluWeight: r.gradPreluWeight }
      : null,
  };
}

/** Reads and writes of a backward, for the aliasing check. */
function backwardTensors(r: Resolved, extraReads: readonly NamedTensor[] = []): [NamedTensor[], NamedTensor[]] {
  const e = r.epilogue;
  return [
    [
      ['input', r.x],
      ['gradOutput', r.dy],
      ['weight', r.weight],
      // What the epilogue's backward reads: the output for a mask, the residual for a recomputed
      // pre-activation, PReLU's slope.
      ['the forward output', e && masksFromOutput(e.activation) ? r.output : null],
      ['epilogue.residual', e && usesPreActivation(e.activation) ? e.residual : null],
      ['epilogue.activation.weight', e?.activation.weight ?? null],
      ...extraReads,
    ],
    [
      ['gradInput', r.gradInput],
      ['gradWeight', r.gradWeight],
      ['gradBias', r.gradBias],
      ['gradResidual', r.gradResidual],
      ['gradPreluWeight', r.gradPreluWeight],
    ],
  ];
}

/**
 * Runs a backward on WebGPU under the library's submit protocol: into `encoder` when given, else
 * one submit; if it fails, its gradients reject on read() with its error.
 */
function runGpuBackward(
  ctx: BatchNormContext,
  r: Resolved,
  record: (encoder: GPUCommandEncoder) => void,
  encoder?: GPUCommandEncoder,
): void {
  const gpu = ctx.gpu;
  if (!gpu) throw new Error('internal: GPU backward on a CPU context');
  runGpuOp(gpu, 'bn.backward', { outputs: [r.gradInput, r.gradWeight, r.gradBias, r.gradResidual, r.gradPreluWeight] }, record, {
    encoder,
  });
}

/** Runs a validated module backward: on the CPU now, on WebGPU into `encoder` or one submit. */
function runModuleBackward(ctx: BatchNormContext, record: ForwardRecord, r: Resolved, encoder?: GPUCommandEncoder): void {
  const saved = record.saved;
  const gpu = ctx.gpu;
  if (gpu) {
    if (saved.kind !== 'gpu') throw new Error('internal: CPU statistics on a WebGPU context');
    const args = gpuArgs(r, saved.channelStats);
    runGpuBackward(ctx, r, (e) => encodeBackward(gpu, e, r.g, args), encoder);
    return;
  }
  if (saved.kind !== 'cpu') throw new Error('internal: GPU statistics on a CPU context');
  runCpu(r, saved.mean, saved.invstd, saved);
}

function allocGradients(
  ctx: BatchNormContext,
  x: Tensor,
  c: number,
  mask: readonly boolean[],
): [Tensor | null, Tensor<'float32'> | null, Tensor<'float32'> | null] {
  return [
    mask[0] ? ctx.allocTensor(x.shape, x.layout, 'grad_input', x.dtype) : null,
    mask[1] ? ctx.allocTensor([c], 'channels_first', 'grad_weight') : null,
    mask[2] ? ctx.allocTensor([c], 'channels_first', 'grad_bias') : null,
  ];
}

function destroyAll(ts: ReadonlyArray<Tensor | null>): void {
  for (const t of ts) t?.destroy();
}

/** A new tensor for a PReLU epilogue's weight gradient (the slope's shape), or null without PReLU. */
function allocPreluGrad(ctx: BatchNormContext, e: ResolvedEpilogue | null): Tensor<'float32'> | null {
  const w = e?.activation.weight;
  return w ? ctx.allocTensor(w.shape, 'channels_first', 'grad_prelu_weight') : null;
}

/**
 * `BatchNorm.backward`: gradients of the module's last forward. Training-mode forwards are
 * differentiated through their batch statistics, eval-mode forwards through the running ones
 * (constants), eval without running statistics through the batch ones, as in PyTorch.
 * @internal use the module method
 */
export function moduleBackward(bn: ModuleBackwardSource, gradOutput: Tensor, options: Partial<BackwardOptions>): BackwardResult {
  bn.assertAlive();
  const who = `${bn.name}.backward`;
  const record = forwardRecord(bn, who);
  checkGradOutput(bn.ctx, gradOutput, record.input, who);
  const mask = checkMask(options.outputMask ?? [true, true, true], who);
  // Gradients exist only for the parameters the module has (Keras scale/center may drop one).
  if (!bn.weight) mask[1] = false;
  if (!bn.bias) mask[2] = false;
  const [gradInput, gradWeight, gradBias] = allocGradients(bn.ctx, record.input, bn.numFeatures, mask);
  const e = record.epilogue;
  const gradResidual = e?.residual
    ? bn.ctx.allocTensor(record.input.shape, record.input.layout, 'grad_residual', record.input.dtype)
    : null;
  const gradPreluWeight = allocPreluGrad(bn.ctx, e);
  if (!gradInput && !gradWeight && !gradBias && !gradResidual && !gradPreluWeight)
    return { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight };
  try {
    runModuleBackward(bn.ctx, record, {
      x: record.input,
      dy: gradOutput,
      g: record.geometry,
      weight: bn.weight,
      useBatchStats: record.usedBatchStats,
      gradInput,
      gradWeight,
      gradBias,
      epilogue: e,
      output: record.output,
      gradResidual,
      gradPreluWeight,
    });
  } catch (err) {
    destroyAll([gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight]);
    throw err;
  }
  return { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight };
}

/** The gradients an `encodeBackward` writes, each a checked caller tensor or null. */
export type CheckedBackwardOutputs = { readonly [K in keyof BackwardOutputs]-?: Tensor | null };

/** An `encodeBackward`'s `outputs` as a value: an object of the known keys (checked before the forward record). */
export function checkBackwardOutputsObject(outputs: unknown, who: string): BackwardOutputs {
  if (outputs === null || typeof outputs !== 'object') {
    throw new ArgumentError(
      `${who}: outputs must be an object { gradInput?, gradWeight?, gradBias?, gradResidual?, gradPreluWeight? }, got ${String(outputs)}`,
    );
  }
  rejectUnknownKeys(outputs, BACKWARD_OUTPUT_KEYS, `${who} outputs`);
  return outputs as BackwardOutputs;
}

/**
 * The one check of an `encodeBackward`'s output tensors (BatchNorm and SyncBatchNorm), after
 * checkBackwardOutputsObject: gradInput and gradResidual like the forward's input (context, dtype,
 * shape, layout), gradResidual only after a forward with a residual, gradPreluWeight only after a
 * PReLU one and of its weight's shape; gradWeight / gradBias only for a module that has them, shape [C].
 */
export function checkBackwardOutputs(
  module: { readonly ctx: BatchNormContext; readonly weight: Tensor | null; readonly bias: Tensor | null; readonly numFeatures: number },
  o: BackwardOutputs,
  forward: { readonly input: Tensor; readonly epilogue: ResolvedEpilogue | null },
  who: string,
): CheckedBackwardOutputs {
  const ctx = module.ctx;
  const gradInput = o.gradInput ?? null;
  const gradWeight = o.gradWeight ?? null;
  const gradBias = o.gradBias ?? null;
  const gradResidual = o.gradResidual ?? null;
  const gradPreluWeight = o.gradPreluWeight ?? null;
  const e = forward.epilogue;
  if (gradInput) checkShapeAndLayout(ctx, gradInput, forward.input, 'gradInput', "the forward input's", who);
  if (gradResidual) {
    if (!e?.residual) throw new ArgumentError(`${who}: gradResidual was given but the last forward had no epilogue.residual`);
    checkShapeAndLayout(ctx, gradResidual, forward.input, 'gradResidual', "the forward input's", who);
  }
  if (gradPreluWeight) {
    const w = e?.activation.weight;
    if (!w) throw new ArgumentError(`${who}: gradPreluWeight was given but the last forward's activation was not prelu`);
    ctx.assertOwnTensor(gradPreluWeight, 'gradPreluWeight');
    if (gradPreluWeight.shape.length !== 1 || gradPreluWeight.shape[0] !== w.shape[0]) {
      throw new ShapeError(
        `${who}: gradPreluWeight must have the PReLU weight's shape [${w.shape.join(', ')}], got [${gradPreluWeight.shape.join(', ')}]`,
      );
    }
  }
  for (const [name, t] of [
    ['gradWeight', gradWeight],
    ['gradBias', gradBias],
  ] as const) {
    if (!t) continue;
    if (!(name === 'gradWeight' ? module.weight : module.bias)) {
      throw new ArgumentError(
        `${who}: ${name} was given but the module has no ${name === 'gradWeight' ? 'weight (affine = false or scale = false)' : 'bias (affine = false or center = false)'}`,
      );
    }
    checkChannelTensor(ctx, t, name, module.numFeatures, who);
  }
  return { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight };
}

/**
 * `BatchNorm.encodeBackward`: records the backward into the caller's encoder, writing only the
 * gradients whose output tensors are given.
 * @internal use the module method
 */
export function moduleEncodeBackward(
  bn: ModuleBackwardSource,
  encoder: GPUCommandEncoder,
  gradOutput: Tensor,
  outputs: BackwardOutputs,
): void {
  bn.assertAlive();
  const who = `${bn.name}.encodeBackward`;
  if (!bn.ctx.gpu) throw new ArgumentError(`${who} needs the 'webgpu' backend; this context runs on 'cpu'`);
  checkEncoder(encoder, who);
  const given = checkBackwardOutputsObject(outputs, who);
  const record = forwardRecord(bn, who);
  checkGradOutput(bn.ctx, gradOutput, record.input, who);
  const { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight } = checkBackwardOutputs(bn, given, record, who);
  const e = record.epilogue;
  const weight = bn.weight;
  const resolved: Resolved = {
    x: record.input,
    dy: gradOutput,
    g: record.geometry,
    weight,
    useBatchStats: record.usedBatchStats,
    gradInput,
    gradWeight,
    gradBias,
    epilogue: e,
    output: record.output,
    gradResidual,
    gradPreluWeight,
  };
  checkNoAliasing(bn.ctx, who, ...backwardTensors(resolved));
  runModuleBackward(bn.ctx, record, resolved, encoder);
}

const WHO = 'batchNormBackward';

/**
 * `torch.ops.aten.native_batch_norm_backward` on this context's backend: the gradients of a batch
 * norm forward with respect to its input, weight and bias, given the statistics that forward used.
 *
 * With `training` (default true) the forward normalized with the batch statistics `saveMean` and
 * `saveInvstd`, and the gradient flows through them; with `training: false` it normalized with
 * constants: `runningMean` and `runningVar` (invstd = 1 / sqrt(runningVar + eps)), or, when those
 * are not given, `saveMean` and `saveInvstd` as they are.
 * Each requested gradient comes back as a new tensor; the others are null.
 * @throws ShapeError / ArgumentError / ContextMismatchError / DestroyedError, before any work.
 */
export function batchNormBackward(
  ctx: BatchNormContext,
  args: BatchNormBackwardArgs,
  options: BackwardOptions | null = {},
): BackwardResult {
  assertContext(ctx, WHO);
  const opts = optionsObject<BackwardOptions>(options, `${WHO} options`, BACKWARD_OPTION_KEYS);
  if (args === null || typeof args !== 'object') throw new ArgumentError(`${WHO}: args must be an object, got ${String(args)}`);
  rejectUnknownKeys(args, BATCH_NORM_BACKWARD_ARG_KEYS, `${WHO} args`);
  const x = args.input;
  const g = checkInput(ctx, x, 'input', null, null, WHO, 'any');
  checkGradOutput(ctx, args.gradOutput, x, WHO);
  const weight = args.weight ?? null;
  if (weight) checkChannelTensor(ctx, weight, 'weight', g.c, WHO);
  const training = checkBoolean(args.training ?? true, 'training');
  let mean: Tensor;
  let invstd: Tensor;
  // fromVar: `invstd` holds a variance, and invstd = 1 / sqrt(var + eps) is taken by the backend.
  let fromVar = false;
  let eps = 0;
  const running = !training && (args.runningMean || args.runningVar);
  if (running) {
    if (!args.runningMean || !args.runningVar) {
      throw new ArgumentError(
        `${WHO}: runningMean and runningVar must be given together (got only ${args.runningMean ? 'runningMean' : 'runningVar'})`,
      );
    }
    mean = args.runningMean;
    invstd = args.runningVar;
    checkChannelTensor(ctx, mean, 'runningMean', g.c, WHO);
    checkChannelTensor(ctx, invstd, 'runningVar', g.c, WHO);
    eps = checkEps(args.eps ?? CONVENTIONS.pytorch.eps);
    fromVar = true;
  } else {
    if (!args.saveMean || !args.saveInvstd) {
      throw new ArgumentError(
        training
          ? `${WHO}: saveMean and saveInvstd are required when training is true (got ${args.saveMean ? 'no saveInvstd' : 'no saveMean'})`
          : `${WHO}: training is false: give runningMean and runningVar (or the mean and invstd used, as saveMean and saveInvstd)`,
      );
    }
    mean = args.saveMean;
    invstd = args.saveInvstd;
    checkChannelTensor(ctx, mean, 'saveMean', g.c, WHO);
    checkChannelTensor(ctx, invstd, 'saveInvstd', g.c, WHO);
  }
  const epilogue = checkEpilogue(ctx, args.epilogue, x, WHO);
  const output = args.output ?? null;
  const bias = args.bias ?? null;
  if (epilogue && masksFromOutput(epilogue.activation)) {
    if (!output)
      throw new ArgumentError(`${WHO}: output (the forward's y) is required to differentiate a ${epilogue.activation.kind} epilogue`);
    checkShapeAndLayout(ctx, output, x, 'output', "the input's", WHO);
  }
  if (bias) checkChannelTensor(ctx, bias, 'bias', g.c, WHO);
  const mask = checkMask(opts.outputMask ?? [true, weight !== null, weight !== null], WHO);
  const [gradInput, gradWeight, gradBias] = allocGradients(ctx, x, g.c, mask);
  const gradResidual = epilogue?.residual ? ctx.allocTensor(x.shape, x.layout, 'grad_residual', x.dtype) : null;
  const gradPreluWeight = allocPreluGrad(ctx, epilogue);
  if (!gradInput && !gradWeight && !gradBias && !gradResidual && !gradPreluWeight)
    return { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight };

  const r: Resolved = {
    x,
    dy: args.gradOutput,
    g,
    weight,
    useBatchStats: training,
    gradInput,
    gradWeight,
    gradBias,
    epilogue,
    output: epilogue && masksFromOutput(epilogue.activation) ? output : null,
    gradResidual,
    gradPreluWeight,
  };
  try {
    const gpu = ctx.gpu;
    if (gpu) {
      const channelStats = gpu.scratch('backward.channelStats', channelStatsBytes(g.c));
      runGpuBackward(ctx, r, (e) => {
        encodePrepare(gpu, e, { channels: g.c, mean, invstd, fromVar, eps, weight, bias, channelStats });
        encodeBackward(gpu, e, g, gpuArgs(r, channelStats));
      });
    } else {
      const m = cpuData(mean);
      const s = cpuData(invstd);
      const inv = fromVar ? Array.from(s, (v) => 1 / Math.sqrt(v + eps)) : s;
      runCpu(r, m, inv, cpuAffineOf(m, inv, weight ? cpuData(weight) : null, bias ? cpuData(bias) : null));
    }
  } catch (err) {
    destroyAll([gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight]);
    throw err;
  }
  return { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight };
}

/** The forward's y = x·scale + shift per channel (float64), as cpuNormalize forms it. */
function cpuAffineOf(
  mean: ArrayLike<number>,
  invstd: ArrayLike<number>,
  weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null,
): CpuAffine {
  const c = mean.length;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let i = 0; i < c; i++) {
    scale[i] = (invstd[i] as number) * (weight ? (weight[i] as number) : 1);
    shift[i] = (bias ? (bias[i] as number) : 0) - (mean[i] as number) * (scale[i] as number);
  }
  return { scale, shift };
}
