/**
 * The seed example: BatchNorm3d(100) training forward on (20, 100, 35, 45, 55), 693 MB of float32,
 * on both backends. Statistics and sampled outputs are checked against PyTorch (float64, same
 * float32 input, via a raw file) when torch is importable, and GPU against the float64 CPU path
 * always. Prints each backend's time.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BatchNorm3d } from '../src/index.js';
import { BACKENDS, caseCounter, checkClose, contextFor, rng } from './helpers/backends.js';
import { REPO_ROOT, TORCH_PYTHON, torchAvailable } from './helpers/torch-reference.js';

const SHAPE = [20, 100, 35, 45, 55];
const [N = 0, C = 0, D = 0, H = 0, W = 0] = SHAPE;
const S = D * H * W;
const SIZE = N * C * S;
const SAMPLES = 4096;

/** Channels with very different offsets and spreads, including a hard one (mean 1e4, std ~0.1). */
function makeInput(): Float32Array {
  const data = new Float32Array(SIZE);
  const next = rng(7);
  const offset = Float64Array.from({ length: C }, (_, c) => (c === 7 ? 1e4 : (c - 50) * 3 + next()));
  const spread = Float64Array.from({ length: C }, (_, c) => (c === 7 ? 0.35 : 0.1 + 4 * next()));
  // xorshift per element: fast enough for 173M values, uniform in [-0.5, 0.5)
  let state = 0x9e3779b9;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const base = (n * C + c) * S;
      const o = offset[c] as number;
      const w = spread[c] as number;
      for (let k = 0; k < S; k++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        data[base + k] = o + w * ((state >>> 0) / 4294967296 - 0.5);
      }
    }
  }
  return data;
}

interface TorchSeedStats {
  mean: number[];
  biased_var: number[];
  running_mean: number[];
  running_var: number[];
  sample_indices: number[];
  sample_output: number[];
}

const count = caseCounter('seed example (693 MB)');
const input = makeInput();
const indices = Uint32Array.from({ length: SAMPLES }, (_, i) => Math.floor((((i * 2654435761) % 4294967296) / 4294967296) * SIZE));
let torchStats: TorchSeedStats | null = null;
const results: Record<string, { runningMean: Float32Array; runningVar: Float32Array; samples: Float64Array; ms: number }> = {};

function torchReference(): TorchSeedStats {
  if (torchStats) return torchStats;
  const dir = mkdtempSync(join(tmpdir(), 'bn-seed-'));
  try {
    writeFileSync(join(dir, 'x.f32'), new Uint8Array(input.buffer));
    writeFileSync(join(dir, 'idx.u32'), new Uint8Array(indices.buffer));
    const run = spawnSync(
      TORCH_PYTHON,
      [join(REPO_ROOT, 'test/torch/seed_stats.py'), join(dir, 'x.f32'), SHAPE.join(','), join(dir, 'out.json'), join(dir, 'idx.u32')],
      { encoding: 'utf8', timeout: 600_000 },
    );
    if (run.status !== 0) throw new Error(`seed_stats.py failed: ${run.stderr}`);
    torchStats = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as TorchSeedStats;
    return torchStats;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

afterAll(() => {
  const times = Object.entries(results)
    .map(([b, r]) => `${b}=${r.ms.toFixed(0)} ms`)
    .join(' ');
  console.log(`[seed example] BatchNorm3d(100) on [${SHAPE.join(', ')}] (${((SIZE * 4) / 1e6).toFixed(0)} MB) training forward: ${times}`);
});

describe.each(BACKENDS)('seed example on %s', (backend) => {
  it('runs and produces statistics that match', async () => {
    const ctx = await contextFor(backend);
    try {
      const x = ctx.tensor(input, SHAPE, { label: 'seed.input' });
      const bn = new BatchNorm3d(ctx, C);
      await ctx.sync();
      const t0 = performance.now();
      const y = bn.forward(x);
      await ctx.sync();
      const ms = performance.now() - t0;
      const out = await y.read();
      const samples = Float64Array.from(indices, (i) => out[i] as number);
      const runningMean = await (bn.runningMean ?? x).read();
      const runningVar = await (bn.runningVar ?? x).read();
      results[backend] = { runningMean, runningVar, samples, ms };
      expect(bn.numBatchesTracked).toBe(1);
      expect(out.every(Number.isFinite)).toBe(true);
      y.destroy();
      x.destroy();
      bn.destroy();
      count(backend);
    } finally {
      ctx.destroy();
    }
  });
});

describe('seed example agreement', () => {
  it('WebGPU matches the float64 CPU path', () => {
    const gpu = results['webgpu'];
    const cpu = results['cpu'];
    if (!gpu || !cpu) throw new Error('both backends must have run');
    // running stats: 0.9 * init + 0.1 * batch stat, float32 storage
    expect(
      checkClose('running_mean', gpu.runningMean, cpu.runningMean, (i) => 1e-6 + 2e-6 * Math.abs(cpu.runningMean[i] ?? 0)).failure,
    ).toBeNull();
    expect(
      checkClose('running_var', gpu.runningVar, cpu.runningVar, (i) => 1e-6 + 1e-5 * Math.abs(cpu.runningVar[i] ?? 0)).failure,
    ).toBeNull();
    expect(checkClose('output', gpu.samples, cpu.samples, (i) => 2e-5 + 2e-5 * Math.abs(cpu.samples[i] ?? 0)).failure).toBeNull();
  });

  it.runIf(torchAvailable())('both backends match PyTorch float64 statistics and outputs', () => {
    const ref = torchReference();
    for (const [backend, r] of Object.entries(results)) {
      const rm = checkClose(
        `${backend} running_mean`,
        r.runningMean,
        ref.running_mean,
        (i) => 1e-6 + 2e-6 * Math.abs(ref.running_mean[i] ?? 0),
      );
      expect(rm.failure).toBeNull();
      const rv = checkClose(
        `${backend} running_var`,
        r.runningVar,
        ref.running_var,
        (i) => 1e-6 + 1e-5 * Math.abs(ref.running_var[i] ?? 0),
      );
      expect(rv.failure).toBeNull();
      // Same output tolerance as every other forward test (test/helpers/run-case.ts).
      const y = checkClose(`${backend} output`, r.samples, ref.sample_output, (i) => 1e-5 + 1e-5 * Math.abs(ref.sample_output[i] ?? 0));
      expect(y.failure).toBeNull();
      console.log(
        `[seed example] ${backend}: max |y - torch| = ${y.maxErr.toExponential(2)} over ${SAMPLES} samples, running stats max err ${Math.max(rm.maxErr, rv.maxErr).toExponential(2)}`,
      );
    }
  });
});
