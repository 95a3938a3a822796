import { describe, expect, it } from 'vitest';
import {
  fixtureEntries,
  loadFixture,
  parseTorchJson,
  runTorchReference,
  stringifyTorchJson,
  torchAvailable,
  type TorchCase,
} from './helpers/torch-reference.js';

function allFinite(values: readonly number[] | null): boolean {
  return values === null || values.every((v) => Number.isFinite(v));
}

describe('torch reference fixtures', () => {
  it('are aligned, well-formed and finite', () => {
    const entries = fixtureEntries();
    expect(entries.length).toBeGreaterThan(50);
    const names = new Set<string>();
    for (const { case: c, result: r } of entries) {
      expect(r.name).toBe(c.name);
      expect(names.has(c.name)).toBe(false);
      names.add(c.name);
      if (r.error === null) expect(r.steps.length).toBe(c.steps.length);
      else expect(r.steps.length).toBeLessThan(c.steps.length);
      r.steps.forEach((s, i) => {
        const step = c.steps[i];
        if (step === undefined) throw new Error('step missing');
        const n = step.shape.reduce((a, b) => a * b, 1);
        expect(step.input.length).toBe(n);
        expect(s.output.length).toBe(n);
        expect(s.output_f32.length).toBe(n);
        for (const arr of [s.output, s.output_f32, s.grad_input, s.grad_weight, s.grad_bias]) {
          expect(allFinite(arr)).toBe(true);
        }
        for (const arr of [s.state.weight, s.state.bias, s.state.running_mean, s.state.running_var]) {
          expect(allFinite(arr)).toBe(true);
        }
        expect(step.input.every((v) => Number.isFinite(v))).toBe(true);
      });
    }
  });

  it('record the torch errors', () => {
    const fx = loadFixture('forward');
    const errs = fx.results.filter((r) => r.error !== null);
    expect(errs.length).toBeGreaterThan(5);
    const oneValue = fx.results.find((r) => r.name === 'error_bn1d_train_one_value_per_channel_N1_C3');
    expect(oneValue?.error?.type).toBe('ValueError');
    expect(oneValue?.error?.message).toMatch(/^Expected more than 1 value per channel when training/);
  });
});

describe('non-finite JSON round trip', () => {
  it('encodes and decodes NaN/Infinity inside arrays only', () => {
    const text = stringifyTorchJson({ name: 'NaN', a: [1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY] });
    expect(text).toBe('{"name":"NaN","a":[1,"NaN","Infinity","-Infinity"]}');
    const back = parseTorchJson(text) as { name: string; a: number[] };
    expect(back.name).toBe('NaN');
    expect(back.a[0]).toBe(1);
    expect(Number.isNaN(back.a[1])).toBe(true);
    expect(back.a[2]).toBe(Number.POSITIVE_INFINITY);
    expect(back.a[3]).toBe(Number.NEGATIVE_INFINITY);
  });
});

describe('runTorchReference (live PyTorch)', () => {
  it.runIf(torchAvailable())('reproduces a committed fixture bit for bit', () => {
    const fx = loadFixture('forward');
    const picks = ['bn2d_C3_4x5_basic', 'bn1d_2d_C4_mom_none_varying_N', 'error_bn1d_wrong_rank_4d'];
    const cases = picks.map((n) => {
      const c = fx.cases.find((x) => x.name === n);
      if (c === undefined) throw new Error(`fixture case ${n} missing`);
      return c;
    });
    const live = runTorchReference(cases);
    picks.forEach((n, i) => {
      expect(live[i]).toEqual(fx.results.find((r) => r.name === n));
    });
  });

  it.runIf(torchAvailable())('computes a small hand-checkable case', () => {
    const c: TorchCase = {
      name: 'hand',
      module: 'BatchNorm1d',
      num_features: 1,
      eps: 0,
      momentum: null,
      affine: true,
      track_running_stats: true,
      steps: [
        { training: true, shape: [2, 1], input: [1, 3], grad_output: [1, 0] },
        { training: false, shape: [1, 1], input: [Number.NaN], grad_output: null },
      ],
    };
    const [r] = runTorchReference([c]);
    if (r === undefined) throw new Error('no result');
    expect(r.error).toBeNull();
    const [s0, s1] = r.steps;
    if (s0 === undefined || s1 === undefined) throw new Error('missing steps');
    expect(s0.output[0]).toBeCloseTo(-1, 12);
    expect(s0.output[1]).toBeCloseTo(1, 12);
    expect(s0.grad_input?.[0]).toBeCloseTo(0, 12);
    expect(s0.grad_weight?.[0]).toBeCloseTo(-1, 12);
    expect(s0.grad_bias).toEqual([1]);
    expect(s0.state.running_mean).toEqual([2]);
    expect(s0.state.running_var).toEqual([2]);
    expect(s0.state.num_batches_tracked).toBe(1);
    expect(Number.isNaN(s1.output[0])).toBe(true);
    expect(s1.grad_input).toBeNull();
  });
});
