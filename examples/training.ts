/**
 * Training example: a small MLP (2 → 32 → 32 → 2) on two interleaved spirals, with BatchNorm1d after
 * each hidden linear layer (or without, for comparison), trained with SGD + momentum entirely on the
 * backend of `ctx`. On WebGPU a step is one command encoder and one submit with no readback; the
 * loss is read back only every `logEvery` steps.
 *
 * Environment-agnostic: no Node or DOM imports, so the browser benchmark page can import it too.
 * In Node: `node examples/train-node.mjs` (see there).
 *
 * @example
 * const ctx = await createContext();
 * const result = await runTrainingExample(ctx, { steps: 400, useBatchNorm: true, onLog: console.log });
 * console.log(result.firstLoss, result.finalLoss, result.accuracy);
 */
import type { BatchNormContext } from '../src/index.js';
import { createCpuTrainer } from './mlp-cpu.js';
import { createGpuTrainer } from './mlp-gpu.js';
import { initialParams, twoSpirals, type LossEntry, type ModelSpec, type Trainer } from './model.js';

export type { LossEntry, Trainer } from './model.js';

/** Options of {@link runTrainingExample} and {@link createTrainer}. */
export interface TrainingOptions {
  /** Training steps. Default 400. */
  steps?: number;
  /** BatchNorm1d after each hidden linear layer. Default true. */
  useBatchNorm?: boolean;
  /** Seeds the data set and the initial weights (the same for both backends). Default 1. */
  seed?: number;
  /** Width of the two hidden layers. Default 32. */
  hidden?: number;
  /** Samples per mini-batch. Default 128. */
  batchSize?: number;
  /** Fixed mini-batches; the data set has batchSize × batches points. Default 4. */
  batches?: number;
  /** SGD learning rate. Default 0.1. */
  learningRate?: number;
  /** SGD momentum. Default 0.9. */
  momentum?: number;
  /** Read the loss back every this many steps (and after the first and last). Default 25. */
  logEvery?: number;
  /** Called with each logged loss. */
  onLog?: (entry: LossEntry) => void;
}

/** What {@link runTrainingExample} reports. */
export interface TrainingResult {
  readonly backend: 'webgpu' | 'cpu';
  readonly useBatchNorm: boolean;
  readonly steps: number;
  /** Logged batch losses, first (after step 1) to last. */
  readonly losses: readonly LossEntry[];
  readonly firstLoss: number;
  readonly finalLoss: number;
  /** Accuracy over the whole data set after training, batch norm in eval mode (running stats). */
  readonly accuracy: number;
  /** Mean cross-entropy over the whole data set, in eval mode. */
  readonly evalLoss: number;
  /** Wall time per step, readbacks included, in milliseconds. */
  readonly msPerStep: number;
  /**
   * ctx.stats.buffersCreated after two warm-up steps and a readback, and after the last step:
   * equal, because a steady-state step allocates nothing.
   */
  readonly buffersCreated: { readonly afterWarmup: number; readonly afterLastStep: number };
}

function resolve(options: TrainingOptions): ModelSpec & { steps: number; seed: number; logEvery: number } {
  const hidden = options.hidden ?? 32;
  return {
    sizes: [2, hidden, hidden, 2],
    useBatchNorm: options.useBatchNorm ?? true,
    batchSize: options.batchSize ?? 128,
    batches: options.batches ?? 4,
    learningRate: options.learningRate ?? 0.1,
    momentum: options.momentum ?? 0.9,
    steps: options.steps ?? 400,
    seed: options.seed ?? 1,
    logEvery: options.logEvery ?? 25,
  };
}

/**
 * A trainer for the example network on `ctx`'s backend: create once, `step()` many times,
 * `destroy()`. Used by {@link runTrainingExample}; exposed so tests can count what one step costs.
 */
export function createTrainer(ctx: BatchNormContext, options: TrainingOptions = {}): Trainer {
  const spec = resolve(options);
  const data = twoSpirals(spec.batchSize * spec.batches, spec.seed);
  const init = initialParams(spec.sizes, spec.seed);
  return ctx.backend === 'webgpu' ? createGpuTrainer(ctx, spec, data, init) : createCpuTrainer(ctx, spec, data, init);
}

/** Trains the example network for `steps` steps and reports its loss curve and accuracy. */
export async function runTrainingExample(ctx: BatchNormContext, options: TrainingOptions = {}): Promise<TrainingResult> {
  const spec = resolve(options);
  const trainer = createTrainer(ctx, options);
  const losses: LossEntry[] = [];
  const log = async (): Promise<void> => {
    const entry = await trainer.readLoss();
    losses.push(entry);
    options.onLog?.(entry);
  };
  try {
    const start = performance.now();
    let afterWarmup = ctx.stats.buffersCreated;
    while (trainer.steps < spec.steps) {
      trainer.step();
      if (trainer.steps === 1 || trainer.steps % spec.logEvery === 0 || trainer.steps === spec.steps) await log();
      // Step 2 is the first to use the second num_batches_tracked slot (and its uniforms).
      if (trainer.steps <= 2) afterWarmup = ctx.stats.buffersCreated;
    }
    const afterLastStep = ctx.stats.buffersCreated;
    const msPerStep = (performance.now() - start) / Math.max(1, trainer.steps);
    const evaluation = await trainer.evaluate();
    const first = losses[0];
    const lastEntry = losses[losses.length - 1];
    return {
      backend: trainer.backend,
      useBatchNorm: spec.useBatchNorm,
      steps: trainer.steps,
      losses,
      firstLoss: first ? first.loss : NaN,
      finalLoss: lastEntry ? lastEntry.loss : NaN,
      accuracy: evaluation.accuracy,
      evalLoss: evaluation.loss,
      msPerStep,
      buffersCreated: { afterWarmup, afterLastStep },
    };
  } finally {
    trainer.destroy();
  }
}
