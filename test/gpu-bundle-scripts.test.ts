/**
 * bench/gpu-bundle: the scripts parse (POSIX sh for run.sh, which runs on hosts without bash; bash
 * for make.sh), and run.sh stops with a clear message before unpacking anything when the Vulkan
 * ICD it is pointed at does not exist. Building and running the bundle itself takes minutes and
 * the npm registry, so it is a documented manual step (bench/gpu-bundle/README.md), not a test.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './browser/dist.js';

const DIR = join(REPO_ROOT, 'bench', 'gpu-bundle');

describe('bench/gpu-bundle scripts', () => {
  it('run.sh is POSIX sh and make.sh is bash, both syntactically valid', () => {
    for (const [shell, file] of [
      ['sh', 'run.sh'],
      ['bash', 'make.sh'],
    ] as const) {
      const r = spawnSync(shell, ['-n', join(DIR, file)], { encoding: 'utf8' });
      expect(r.status, `${shell} -n ${file}: ${r.stderr}`).toBe(0);
    }
  });

  it('run.sh --help documents the ICD switch and the benchmark options', () => {
    const r = spawnSync('sh', [join(DIR, 'run.sh'), '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--swiftshader/);
    expect(r.stdout).toMatch(/--icd FILE\.json/);
    expect(r.stdout).toMatch(/--cases/);
  });

  it('run.sh refuses a missing ICD manifest before unpacking anything', () => {
    const r = spawnSync('sh', [join(DIR, 'run.sh'), '--icd', '/nonexistent/icd.json'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ICD manifest \/nonexistent\/icd\.json does not exist/);
    expect(r.stdout).not.toMatch(/unpacking/);
  });
});
