/**
 * Live differential against PyTorch: 64 random configurations (seeded), references computed by
 * test/torch/reference.py in float64 on the same float32 inputs, each run on both backends and,
 * for rank >= 3, in both layouts. Runs whenever `/usr/bin/python3 -c 'import torch'` works; CI
 * installs python3-torch, and .ci/run fails if this suite is skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchNormContext, Layout } from '../src/index.js';
import { BACKENDS, caseCounter, contextFor, gaussian, rng } from './helpers/backends.js';
import { runCase } from './helpers/run-case.js';
import { runTorchReference, torchAvailable, type TorchCase, type TorchModuleKind, type TorchStep } from './helpers/torch-reference.js';

const CONFIGS = 64;
const SEED = 20261122;

function randomCase(index: number): TorchCase {
  const next = rng(SEED + index * 7919);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
  const kinds: TorchModuleKind[] = ['BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d', 'functional'];
  const module = kinds[index % kinds.length] as TorchModuleKind;
  const C = pick([1, 2, 3, 4, 5, 8, 12, 16]);
  const spatialRank =
    module === 'BatchNorm1d' ? pick([0, 1]) : module === 'BatchNorm2d' ? 2 : module === 'BatchNorm3d' ? 3 : pick([0, 1, 2, 3]);
  const spatial = (): number[] => Array.from({ length: spatialRank }, () => pick([1, 2, 3, 4, 5, 7, 8]));
  const affine = next() < 0.7;
  const track = next() < 0.75;
  const momentum = module === 'functional' ? pick([0.1, 0, 1, 0.3]) : pick([0.1, null, 0, 1, 0.25]);
  const eps = pick([1e-5, 1e-3, 0.1]);
  const offset = next() < 0.25 ? pick([1e4, -3e3, 500]) : 0;
  const std = offset ? pick([0.1, 0.01, 1]) : pick([1, 3, 0.5]);
  const zeroVarChannel = next() < 0.2 ? Math.floor(next() * C) : -1;
  const steps: TorchStep[] = [];
  const trainSteps = 1 + Math.floor(next() * 3);
  const evalSteps = 1 + Math.floor(next() * 2);
  let shapeSpatial = spatial();
  for (let k = 0; k < trainSteps + evalSteps; k++) {
    const training = k < trainSteps || (!track && module === 'functional');
    if (next() < 0.3) shapeSpatial = spatial();
    let n = 1 + Math.floor(next() * 6);
    const perChannel = n * shapeSpatial.reduce((a, b) => a * b, 1);
    if (perChannel < 2) n = 2;
    const shape = [n, C, ...shapeSpatial];
    const size = shape.reduce((a, b) => a * b, 1);
    const per = size / (n * C);
    const input = Array.from({ length: size }, (_, i) => {
      const c = Math.floor(i / per) % C;
      if (c === zeroVarChannel) return Math.fround(offset + 0.75);
      return Math.fround(offset + c * 0.5 + std * gaussian(next));
    });
    steps.push({ training, shape, input, grad_output: null });
  }
  const init =
    next() < 0.4
      ? {
          ...(affine
            ? {
                weight: Array.from({ length: C }, () => Math.fround(0.5 + next())),
                bias: Array.from({ length: C }, () => Math.fround(next() - 0.5)),
              }
            : {}),
          ...(track && module !== 'functional'
            ? {
                running_mean: Array.from({ length: C }, () => Math.fround(offset + next())),
                running_var: Array.from({ length: C }, () => Math.fround(0.5 + next())),
                num_batches_tracked: Math.floor(next() * 6),
              }
            : {}),
        }
      : undefined;
  return {
    name: `diff${index}_${module}_C${C}_${steps.map((s) => s.shape.join('x')).join('-')}_mom${momentum}_${affine ? 'affine' : 'noaffine'}_${track ? 'track' : 'notrack'}_eps${eps}${offset ? `_offset${offset}` : ''}${zeroVarChannel >= 0 ? '_zerovar' : ''}`,
    module,
    num_features: C,
    eps,
    momentum,
    affine,
    track_running_stats: track,
    ...(init ? { init } : {}),
    steps,
  };
}

const available = torchAvailable();
const cases = Array.from({ length: CONFIGS }, (_, i) => randomCase(i));
const count = caseCounter('torch differential (forward)');
const maxErr: Record<string, number> = {};
afterAll(() => console.log(`[max error] torch differential output: ${JSON.stringify(maxErr)}`));

describe.runIf(available).each(BACKENDS)('live PyTorch differential on %s', (backend) => {
  let ctx: BatchNormContext;
  let results: ReturnType<typeof runTorchReference> = [];
  beforeAll(async () => {
    ctx = await contextFor(backend);
    results = runTorchReference(cases);
  });
  afterAll(() => ctx.destroy());

  it(`runs ${CONFIGS} random configurations`, async () => {
    let ran = 0;
    for (const [i, c] of cases.entries()) {
      const r = results[i];
      if (!r) throw new Error(`no reference for ${c.name}`);
      expect(r.error, `${c.name}: torch raised`).toBeNull();
      const layouts: Layout[] = c.steps.some((s) => s.shape.length >= 3) ? ['channels_first', 'channels_last'] : ['channels_first'];
      for (const layout of layouts) {
        const report = await runCase(ctx, c, r, layout);
        for (const s of report.steps) {
          const key = `${backend}${c.name.includes('offset') ? ' offset' : ''} ${s.usedRunning ? 'running-stats' : 'batch-stats'}`;
          maxErr[key] = Math.max(maxErr[key] ?? 0, s.outputErr);
        }
      }
      count(backend);
      ran++;
    }
    expect(ran).toBeGreaterThanOrEqual(50);
  });
});

it('has PyTorch available in CI', () => {
  if (process.env['CI']) expect(available, 'CI must install python3-torch for the live differential').toBe(true);
});
