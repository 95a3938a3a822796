/**
 * `node bench/sweep/run.mjs [--single-pass] [--rounds N] [--target MS] [--cases i,j] [--only prefix,...]`: the sweeps of
 * issue #10 in Node on Dawn (SwiftShader here). Prints one markdown table per case and writes
 * bench/results/sweep-latest.json. Benchmarks never fail on time.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupElementwise, type ElementwiseCase } from './elementwise.js';
import { setupSinglePass, type SinglePassCase } from './single-pass.js';
import { formatSweep, sweep, type SweepResult } from './sweep-core.js';

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

const CASES: readonly ElementwiseCase[] = [
  { shape: [32, 64, 56, 56], layout: 'channels_first' },
  { shape: [32, 64, 56, 56], layout: 'channels_last' },
  { shape: [8, 256, 28, 28], layout: 'channels_first' },
  { shape: [8, 256, 28, 28], layout: 'channels_last' },
  { shape: [256, 1024], layout: 'channels_first' },
  { shape: [16, 32, 16, 32, 32], layout: 'channels_first' },
  { shape: [16, 32, 16, 32, 32], layout: 'channels_last' },
];

// Single-pass experiment: channels-first channels of 3 KB to 400 KB, channels-last columns of 4 KB
// to 100 KB (the adapter's workgroup memory here is 32 KB).
const SINGLE_PASS_CASES: readonly SinglePassCase[] = [
  { shape: [1, 256, 28, 28], layout: 'channels_first' },
  { shape: [2, 256, 28, 28], layout: 'channels_first' },
  { shape: [4, 256, 28, 28], layout: 'channels_first' },
  { shape: [8, 256, 28, 28], layout: 'channels_first' },
  { shape: [16, 256, 28, 28], layout: 'channels_first' },
  { shape: [32, 64, 56, 56], layout: 'channels_first' },
  { shape: [256, 1024], layout: 'channels_first' },
  { shape: [1024, 1024], layout: 'channels_first' },
  { shape: [8, 256, 28, 28], layout: 'channels_last' },
];

export async function main(root: string, argv: readonly string[]): Promise<number> {
  let rounds = 5;
  let target = 150;
  let picked: number[] | null = null;
  let only: string[] | null = null;
  let singlePass = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') rounds = Number(argv[++i]);
    else if (a === '--target') target = Number(argv[++i]);
    else if (a === '--cases') picked = (argv[++i] ?? '').split(',').map(Number);
    else if (a === '--single-pass') singlePass = true;
    else if (a === '--only') only = (argv[++i] ?? '').split(',').filter(Boolean);
  }
  process.env['VK_ICD_FILENAMES'] ??= '/usr/lib/chromium/vk_swiftshader_icd.json';
  process.env['XDG_RUNTIME_DIR'] ??= '/tmp';
  const imported = (await import('webgpu')) as unknown as Record<string, unknown>;
  const dawn = ('create' in imported ? imported : imported['default']) as DawnModule;
  const gpu = dawn.create([]);
  // Dawn tears its instance down when this object is collected: keep it for the whole run.
  (globalThis as { benchSweepGpu?: GPU }).benchSweepGpu = gpu;
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no adapter');
  const device = await adapter.requestDevice({
    label: 'bench.sweep.device',
    requiredLimits: {
      maxBufferSize: adapter.limits.maxBufferSize,
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
    },
  });
  device.addEventListener('uncapturederror', (e) => console.error(`[sweep] ${(e as GPUUncapturedErrorEvent).error.message}`));
  const info = adapter.info;
  console.log(`[sweep] adapter: ${info.vendor} ${info.architecture} ${info.description} (rounds ${rounds}, target ${target} ms)`);
  const results: Array<{ case: ElementwiseCase | SinglePassCase; result: SweepResult }> = [];
  for (const [index, kase] of (singlePass ? [] : CASES).entries()) {
    if (picked && !picked.includes(index)) continue;
    const setup = setupElementwise(device, kase);
    try {
      const candidates = only ? setup.candidates.filter((c) => only.some((prefix) => c.name.startsWith(prefix))) : setup.candidates;
      const result = await sweep(device, setup.x, setup.floats, candidates, rounds, target);
      results.push({ case: kase, result });
      console.log(`\n${formatSweep(`normalize [${kase.shape.join(', ')}] ${kase.layout}`, result)}`);
    } finally {
      setup.destroy();
    }
  }
  for (const [index, kase] of (singlePass ? SINGLE_PASS_CASES : []).entries()) {
    if (picked && !picked.includes(index)) continue;
    const setup = await setupSinglePass(device, kase);
    try {
      const result = await sweep(device, setup.x, setup.floats, setup.candidates, rounds, target);
      results.push({ case: kase, result });
      console.log(
        `\n${formatSweep(`single pass [${kase.shape.join(', ')}] ${kase.layout}, ${(setup.stageBytes / 1024).toFixed(1)} KB per workgroup`, result)}`,
      );
    } finally {
      setup.destroy();
    }
  }
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, singlePass ? 'single-pass-latest.json' : 'sweep-latest.json'),
    `${JSON.stringify({ adapter: info, rounds, target, results }, null, 2)}\n`,
  );
  device.destroy();
  return 0;
}
