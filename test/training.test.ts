/**
 * The training example (examples/training.ts) learns on both backends, learns better with batch
 * norm than without, trains the same network on WebGPU as on the CPU, and on WebGPU a steady-state
 * step creates no GPU buffer and makes exactly one queue submission (its own; none by the library).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchNormContext } from '../src/index.js';
import { createTrainer, runTrainingExample, type TrainingResult } from '../examples/training.js';
import { BACKENDS, caseCounter, contextFor, type Backend } from './helpers/backends.js';

const count = caseCounter('training');
const STEPS = 300;

/**
 * Thresholds after 300 steps (SGD, lr 0.1, momentum 0.9, 4 mini-batches of 128): chance level is
 * ln 2 = 0.693 and 50%. With batch norm the network reaches eval loss ≈ 0.01 and 100% here, so
 * 0.05 / 97% leave room for rounding differences between machines yet fail on any broken gradient
 * (which stalls near chance or diverges). Without batch norm the same run is still at ≈ 0.37 /
 * 86%: it is only required to be worse than the batch-norm run.
 */
const MAX_EVAL_LOSS = 0.05;
const MIN_ACCURACY = 0.97;

const runs: Partial<Record<Backend, { bn: TrainingResult; plain: TrainingResult }>> = {};

afterAll(() => {
  for (const b of BACKENDS) {
    const r = runs[b];
    if (!r) continue;
    const curve = (t: TrainingResult): string => t.losses.map((e) => `${e.step}:${e.loss.toFixed(3)}`).join(' ');
    console.log(
      `[training] ${b} with BatchNorm:    ${curve(r.bn)} | eval loss ${r.bn.evalLoss.toFixed(4)}, accuracy ${(100 * r.bn.accuracy).toFixed(1)}%, ${r.bn.msPerStep.toFixed(2)} ms/step`,
    );
    console.log(
      `[training] ${b} without BatchNorm: ${curve(r.plain)} | eval loss ${r.plain.evalLoss.toFixed(4)}, accuracy ${(100 * r.plain.accuracy).toFixed(1)}%, ${r.plain.msPerStep.toFixed(2)} ms/step`,
    );
  }
});

describe.each(BACKENDS)('training example on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it(`learns the two spirals in ${STEPS} steps, better with batch norm than without`, async () => {
    const bn = await runTrainingExample(ctx, { steps: STEPS, useBatchNorm: true, logEvery: 25 });
    const plain = await runTrainingExample(ctx, { steps: STEPS, useBatchNorm: false, logEvery: 25 });
    await ctx.sync();
    runs[backend] = { bn, plain };
    expect(bn.backend).toBe(backend);
    expect(bn.steps).toBe(STEPS);
    expect(bn.firstLoss).toBeGreaterThan(0.6);
    expect(bn.evalLoss).toBeLessThan(MAX_EVAL_LOSS);
    expect(bn.accuracy).toBeGreaterThanOrEqual(MIN_ACCURACY);
    expect(bn.finalLoss).toBeLessThan(bn.firstLoss / 4);
    expect(bn.evalLoss).toBeLessThan(plain.evalLoss);
    expect(bn.accuracy).toBeGreaterThan(plain.accuracy);
    // No GPU buffer was created after the warm-up steps (0 = 0 on the CPU).
    expect(bn.buffersCreated.afterLastStep).toBe(bn.buffersCreated.afterWarmup);
    expect(plain.buffersCreated.afterLastStep).toBe(plain.buffersCreated.afterWarmup);
    count(backend);
  });

  it('trains the same network as the other backend (same data, same initial weights)', () => {
    const mine = runs[backend];
    const other = runs[backend === 'webgpu' ? 'cpu' : 'webgpu'];
    if (!mine || !other) return; // the first backend to run has nothing to compare with yet
    // Training amplifies float32 rounding differences (summation order differs between the
    // backends), so only the first 100 steps are compared, to 0.01 absolute; a wrong gradient on
    // either side moves the loss by O(0.1) within a few dozen steps.
    for (const key of ['bn', 'plain'] as const) {
      for (const e of mine[key].losses) {
        if (e.step > 100) continue;
        const o = other[key].losses.find((x) => x.step === e.step);
        expect(o, `step ${e.step} logged on both`).toBeDefined();
        expect(Math.abs(e.loss - (o?.loss ?? NaN)), `${key} loss at step ${e.step}`).toBeLessThan(0.01);
      }
    }
    count(backend);
  });
});

describe('training example on webgpu: steady state', () => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
  });
  afterAll(() => ctx.destroy());

  it('1,000 steps create no GPU buffers and submit exactly once per step', async () => {
    const device = ctx.device;
    if (!device) throw new Error('no device');
    const trainer = createTrainer(ctx, { useBatchNorm: true });
    // Every queue submission, the library's and the example's own.
    let queueSubmits = 0;
    const queue = device.queue;
    const realSubmit = queue.submit.bind(queue);
    queue.submit = (buffers: Iterable<GPUCommandBuffer>): undefined => {
      queueSubmits++;
      return realSubmit(buffers);
    };
    try {
      trainer.step();
      trainer.step();
      await trainer.readLoss();
      await ctx.sync();
      const before = { buffers: ctx.stats.buffersCreated, librarySubmits: ctx.stats.submits, queueSubmits };
      for (let i = 0; i < 1000; i++) {
        const submitsBefore = queueSubmits;
        trainer.step();
        if (queueSubmits - submitsBefore !== 1) throw new Error(`step ${i}: ${queueSubmits - submitsBefore} queue submissions`);
      }
      const after = { buffers: ctx.stats.buffersCreated, librarySubmits: ctx.stats.submits, queueSubmits };
      const last = await trainer.readLoss();
      await ctx.sync();
      console.log(
        `[training] webgpu GPU buffers created: ${before.buffers} before 1,000 steps, ${after.buffers} after (${after.buffers - before.buffers} new); ` +
          `queue submits during them: ${after.queueSubmits - before.queueSubmits}; batch loss after ${trainer.steps} steps: ${last.loss.toFixed(4)}`,
      );
      expect(after.buffers - before.buffers).toBe(0);
      expect(after.librarySubmits - before.librarySubmits).toBe(0);
      expect(after.queueSubmits - before.queueSubmits).toBe(1000);
      expect(last.loss).toBeLessThan(MAX_EVAL_LOSS * 4);
      count('webgpu');
    } finally {
      queue.submit = realSubmit;
      trainer.destroy();
    }
  });
});
