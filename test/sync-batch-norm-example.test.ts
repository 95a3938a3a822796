/**
 * The SyncBatchNorm example and its transport notes, run as a user would:
 * - examples/sync-bn/main.mjs: three worker_threads (WebGPU, CPU, WebGPU: each WebGPU worker on
 *   its own GPUDevice) train one BatchNorm2d layer on uneven shards, exchanging partials by
 *   message passing, and must match one ordinary BatchNorm2d on the concatenated batch (the script
 *   checks every worker's outputs, grad_input, running stats and SGD-updated parameters).
 * - examples/sync-bn/merge.py: a Python peer's merge must give the JS merges' bits exactly.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { mergeGradSums, mergeMoments, type ChannelMoments, type GradSums } from '../src/sync/index.js';
import { REPO_ROOT, ensureDist } from './browser/dist.js';
import { caseCounter, gaussian, rng } from './helpers/backends.js';
import { TORCH_PYTHON } from './helpers/torch-reference.js';

const count = caseCounter('sync batch norm example');

describe('examples/sync-bn', () => {
  beforeAll(() => ensureDist());

  it('worker_threads with separate devices and a CPU worker match one BatchNorm2d on the whole batch', () => {
    const r = spawnSync(
      process.execPath,
      [join(REPO_ROOT, 'examples', 'sync-bn', 'main.mjs'), '--backend', 'mixed', '--workers', '3', '--steps', '2'],
      {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        timeout: 240_000,
      },
    );
    console.log(r.stdout);
    expect(r.error).toBeUndefined();
    expect(r.stderr).not.toMatch(/Promise not resolved|Aborted/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 workers \(webgpu, cpu, webgpu\)/);
    expect(r.stdout).toMatch(/OK: every worker matches the single-process batch norm/);
    count('webgpu');
    count('cpu');
  });

  it('merge.py (a Python peer) reaches the same bits as mergeMoments / mergeGradSums', () => {
    const next = rng(5);
    const C = 6;
    const shards = 7;
    const moments: ChannelMoments[] = Array.from({ length: shards }, (_, s) => ({
      count: Float64Array.from({ length: C }, (_, c) => (s === 3 && c === 0 ? 0 : 1 + Math.floor(next() * 50))),
      mean: Float64Array.from({ length: C }, (_, c) => (c === 1 ? 1e4 : 0) + gaussian(next) * (c === 2 ? 1e-3 : 1)),
      m2: Float64Array.from({ length: C }, () => Math.abs(gaussian(next)) * 10),
    }));
    const grads: GradSums[] = Array.from({ length: shards }, (_, s) => ({
      sumDy: Float64Array.from({ length: C }, (_, c) => (c === 0 && s < 2 ? (s === 0 ? -0 : 0) : gaussian(next) * 1e3)),
      sumDyXhat: Float64Array.from({ length: C }, () => gaussian(next) * 1e-2),
    }));
    const hex = (v: number): string => {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(v);
      return b.toString('hex');
    };
    const request = {
      channels: C,
      moments: moments.map((m) => [...m.count, ...m.mean, ...m.m2].map(hex)),
      grads: grads.map((g) => [...g.sumDy, ...g.sumDyXhat].map(hex)),
    };
    const r = spawnSync(TORCH_PYTHON, [join(REPO_ROOT, 'examples', 'sync-bn', 'merge.py')], {
      input: JSON.stringify(request),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const py = JSON.parse(r.stdout) as { moments: string[]; grads: string[] };
    const m = mergeMoments(moments);
    const g = mergeGradSums(grads);
    expect(py.moments).toEqual([...m.count, ...m.mean, ...m.m2].map(hex));
    expect(py.grads).toEqual([...g.sumDy, ...g.sumDyXhat].map(hex));
    count('cpu');
  });
});
