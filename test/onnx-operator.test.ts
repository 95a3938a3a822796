/**
 * onnxBatchNormalization against the ONNX BatchNormalization spec (opset 15), written out here in
 * float64 from onnx.ai/onnx/operators/onnx__BatchNormalization:
 *   training_mode = 0: Y = (X − input_mean) / sqrt(input_var + epsilon) · scale + B
 *   training_mode = 1: current_mean = ReduceMean(X, all but axis 1); current_var = ReduceVar (population)
 *                      Y = (X − current_mean) / sqrt(current_var + epsilon) · scale + B
 *                      running_mean = input_mean · momentum + current_mean · (1 − momentum)
 *                      running_var  = input_var · momentum + current_var · (1 − momentum)
 * Ranks 2–5, both layouts, both backends. Tolerances: Y 1e-5 · (1 + |Y|), running 1e-6 · (1 + |r|).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, ShapeError, onnxBatchNormalization, type BatchNormContext, type Layout } from '../src/index.js';
import { BACKENDS, caseCounter, checkClose, contextFor, fromLayout, gaussian, rng, toLayout } from './helpers/backends.js';

const count = caseCounter('onnx BatchNormalization');
const maxErr: Record<string, number> = {};
afterAll(() => console.log(`[max error] onnx BatchNormalization: ${JSON.stringify(maxErr)}`));

function close(key: string, what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number): void {
  const r = checkClose(what, actual, expected, (i) => rel * (1 + Math.abs(expected[i] as number)));
  expect(r.failure, r.failure ?? '').toBeNull();
  maxErr[key] = Math.max(maxErr[key] ?? 0, r.maxErr);
}

/** The spec's formulas in float64, on logical (N, C, D1, ...) values. */
function onnxRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  scale: ArrayLike<number>,
  b: ArrayLike<number>,
  inputMean: ArrayLike<number>,
  inputVar: ArrayLike<number>,
  epsilon: number,
  momentum: number,
  training: boolean,
): { Y: Float64Array; runningMean: Float64Array; runningVar: Float64Array } {
  const c = shape[1] ?? 0;
  const s = shape.slice(2).reduce((p, d) => p * d, 1);
  const count = (shape[0] ?? 0) * s;
  const chOf = (i: number): number => Math.floor(i / s) % c;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let i = 0; i < x.length; i++) mean[chOf(i)] = (mean[chOf(i)] as number) + (x[i] as number) / count;
  for (let i = 0; i < x.length; i++)
    variance[chOf(i)] = (variance[chOf(i)] as number) + ((x[i] as number) - (mean[chOf(i)] as number)) ** 2 / count;
  const useMean = training ? mean : Float64Array.from(inputMean);
  const useVar = training ? variance : Float64Array.from(inputVar);
  const Y = Float64Array.from(
    x,
    (v, i) =>
      ((v - (useMean[chOf(i)] as number)) / Math.sqrt((useVar[chOf(i)] as number) + epsilon)) * (scale[chOf(i)] as number) +
      (b[chOf(i)] as number),
  );
  const runningMean = Float64Array.from(inputMean, (v, ch) => v * momentum + (mean[ch] as number) * (1 - momentum));
  const runningVar = Float64Array.from(inputVar, (v, ch) => v * momentum + (variance[ch] as number) * (1 - momentum));
  return { Y, runningMean, runningVar };
}

describe.each(BACKENDS)('onnxBatchNormalization on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  const shapes = [
    [7, 3],
    [2, 3, 5],
    [3, 4, 2, 3],
    [2, 2, 2, 3, 2],
  ];
  for (const shape of shapes) {
    for (const layout of ['channels_first', 'channels_last'] as Layout[]) {
      for (const training of [false, true]) {
        it(`X [${shape.join(', ')}] ${layout}, training_mode=${Number(training)}`, async () => {
          const next = rng(shape.length * 10 + (training ? 1 : 0));
          const size = shape.reduce((a, b) => a * b, 1);
          const c = shape[1] ?? 0;
          const f32 = (n: number, f: () => number): Float32Array => Float32Array.from({ length: n }, f);
          const xs = f32(size, () => 2 + 1.5 * gaussian(next));
          const scale = f32(c, () => 0.5 + next());
          const b = f32(c, () => next() - 0.5);
          const mean = f32(c, () => next());
          const variance = f32(c, () => 0.5 + next());
          const X = ctx.tensor(toLayout(xs, shape, layout), shape, { layout });
          const t = (v: Float32Array): ReturnType<BatchNormContext['tensor']> => ctx.tensor(v, [c]);
          const inputs = { X, scale: t(scale), B: t(b), inputMean: t(mean), inputVar: t(variance) };
          const out = onnxBatchNormalization(ctx, inputs, { epsilon: 1e-5, momentum: 0.9, trainingMode: training });
          const ref = onnxRef(xs, shape, scale, b, mean, variance, 1e-5, 0.9, training);
          close(`${backend} Y`, 'Y', fromLayout(await out.Y.read(), shape, layout), ref.Y, 1e-5);
          expect(out.Y.layout).toBe(layout);
          if (training) {
            if (!out.runningMean || !out.runningVar) throw new Error('training mode must return running_mean and running_var');
            close(`${backend} running`, 'running_mean', await out.runningMean.read(), ref.runningMean, 1e-6);
            close(`${backend} running`, 'running_var', await out.runningVar.read(), ref.runningVar, 1e-6);
          } else {
            expect(out.runningMean).toBeUndefined();
            expect(out.runningVar).toBeUndefined();
          }
          // Inputs are never modified.
          expect(Array.from(await inputs.inputMean.read())).toEqual(Array.from(mean));
          expect(Array.from(await inputs.inputVar.read())).toEqual(Array.from(variance));
          for (const v of [...Object.values(inputs), out.Y, out.runningMean, out.runningVar]) v?.destroy();
          count(backend);
        });
      }
    }
  }

  it('defaults (epsilon 1e-5, momentum 0.9, inference), epsilon 0, one value per channel (Y = B)', async () => {
    const one = (v: number[]): ReturnType<BatchNormContext['tensor']> => ctx.tensor(v, [2]);
    const inputs = {
      X: ctx.tensor([3, -4], [1, 2]),
      scale: one([2, 5]),
      B: one([0.5, -0.25]),
      inputMean: one([1, 1]),
      inputVar: one([4, 9]),
    };
    const inference = onnxBatchNormalization(ctx, inputs);
    close(
      `${backend} Y`,
      'defaults Y',
      await inference.Y.read(),
      [((3 - 1) / Math.sqrt(4 + 1e-5)) * 2 + 0.5, ((-4 - 1) / Math.sqrt(9 + 1e-5)) * 5 - 0.25],
      1e-5,
    );
    const zeroEps = onnxBatchNormalization(ctx, inputs, { epsilon: 0 });
    close(`${backend} Y`, 'epsilon 0 Y', await zeroEps.Y.read(), [(2 / 2) * 2 + 0.5, (-5 / 3) * 5 - 0.25], 1e-5);
    const single = onnxBatchNormalization(ctx, inputs, { trainingMode: true, momentum: 0.8 });
    expect(Array.from(await single.Y.read())).toEqual([0.5, -0.25]);
    close(
      `${backend} running`,
      'single running_mean',
      (await single.runningMean?.read()) ?? [],
      [1 * 0.8 + 3 * 0.2, 1 * 0.8 - 4 * 0.2],
      1e-6,
    );
    close(`${backend} running`, 'single running_var', (await single.runningVar?.read()) ?? [], [4 * 0.8, 9 * 0.8], 1e-6);
    for (const v of [...Object.values(inputs), inference.Y, zeroEps.Y, single.Y, single.runningMean, single.runningVar]) v?.destroy();
    count(backend);
  });

  it('rejects bad inputs before any work: rank < 2, wrong [C], negative epsilon', () => {
    const c2 = ctx.tensor([1, 1], [2]);
    const c3 = ctx.tensor([1, 1, 1], [3]);
    const X = ctx.tensor([1, 2, 3, 4], [2, 2]);
    const ok = { X, scale: c2, B: c2, inputMean: c2, inputVar: c2 };
    expect(() => onnxBatchNormalization(ctx, { ...ok, X: ctx.tensor([1, 2], [2]) })).toThrow(ShapeError);
    expect(() => onnxBatchNormalization(ctx, { ...ok, inputVar: c3 })).toThrow(/inputVar must have shape \[2\]/);
    expect(() => onnxBatchNormalization(ctx, ok, { epsilon: -1 })).toThrow(ArgumentError);
    expect(() => onnxBatchNormalization(ctx, ok, { momentum: Number.NaN })).toThrow(ArgumentError);
    for (const v of [c2, c3, X]) v.destroy();
    count(backend);
  });
});
