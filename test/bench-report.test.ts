/**
 * The benchmark page's report logic, without a browser or a GPU: the one-line reason every missed
 * target carries (bench/harness/explain.ts through checkTargets), the checklist text, and the
 * fused-epilogue charts (bench/app/charts.ts `chartsFor`, pure data; the page draws it on a
 * canvas). Rows here are made up to steer each explanation's branch; no timing is asserted.
 */
import { describe, expect, it } from 'vitest';
import { chartsFor } from '../bench/app/charts.js';
import { tensorPasses } from '../bench/harness/explain.js';
import { addRatios, formatTargets } from '../bench/harness/report.js';
import { checkTargets } from '../bench/harness/targets.js';
import type { ImplName, LayoutName, OpName, Row, TargetCheck } from '../bench/harness/types.js';

const SHAPE = [8, 256, 28, 28];

/** A row timed at `median` ms with quartiles ±`spread` (relative). */
function row(impl: ImplName, op: OpName, median: number, spread = 0.02, layout: LayoutName = 'channels_first'): Row {
  return {
    impl,
    op,
    shape: SHAPE,
    layout,
    status: 'ok',
    median_ms: median,
    ratio_to_floor: null,
    min_ms: median * (1 - 2 * spread),
    max_ms: median * (1 + 2 * spread),
    q1_ms: median * (1 - spread),
    q3_ms: median * (1 + spread),
    samples: 5,
    iterations: 8,
    gpu_ms: null,
    gpu_ratio_to_floor: null,
    max_err: 1e-7,
    tolerance: 1e-3,
    tensor_bytes: 8 * 256 * 28 * 28 * 4,
  };
}

function checks(rows: Row[], fallback: string | null = 'SwiftShader'): TargetCheck[] {
  addRatios(rows);
  return checkTargets(rows, undefined, fallback);
}

const find = (all: readonly TargetCheck[], target: string): TargetCheck => {
  const t = all.find((c) => c.target === target);
  if (!t) throw new Error(`no target ${target}`);
  return t;
};

describe('reasons next to missed targets', () => {
  const base = (): Row[] => [
    row('copy-floor', 'copy', 5),
    row('webgpu-batchnorm', 'train', 10), // 2.0x floor: misses 1.8x
    row('webgpu-batchnorm', 'eval', 5), // 1.0x: passes 1.1x
    row('webgpu-batchnorm', 'backward', 15),
  ];

  it('a passing target has no reason; a missing row says which', () => {
    const all = checks(base());
    expect(find(all, 'eval <= 1.1x floor').pass).toBe(true);
    expect(find(all, 'eval <= 1.1x floor').reason).toBeUndefined();
    const na = find(all, '>= 8x faster than ORT-web eval');
    expect(na.pass).toBeNull();
    expect(na.reason).toMatch(/no ort-webgpu eval row/);
  });

  it('a row that is not ok is named with its status and reason', () => {
    const rows = [...base(), { ...row('ort-webgpu', 'eval', 9), status: 'unavailable' as const, reason: 'onnxruntime-web did not load' }];
    expect(find(checks(rows), '>= 8x faster than ORT-web eval').reason).toBe(
      'ort-webgpu eval is unavailable: onnxruntime-web did not load',
    );
  });

  it('train over the floor: bytes floor 1.5x, the rest is the statistics, on a fallback adapter', () => {
    const t = find(checks(base()), 'train <= 1.8x floor');
    expect(t.pass).toBe(false);
    expect(t.reason).toMatch(
      /^train moves 3 tensors to copy's 2: bytes floor 1\.50×; the other 0\.50× is the statistics' shifted block sums/,
    );
    expect(t.reason).toMatch(/fallback adapter \(SwiftShader\): kernels are CPU loops/);
    expect(find(checks(base(), null), 'train <= 1.8x floor').reason).not.toMatch(/fallback/);
  });

  it('an epilogue that adds a read: the bytes floor is above 1.1x, unreachable by design', () => {
    const rows = [...base(), row('webgpu-batchnorm', 'eval+add+relu', 8), row('webgpu-batchnorm', 'backward+relu', 20)];
    const add = find(checks(rows), 'eval+add+relu <= 1.1x plain eval');
    expect(add.pass).toBe(false);
    expect(add.reason).toMatch(
      /^eval\+add\+relu moves 3 tensors to eval's 2: bytes floor 1\.50×, above the 1\.10× target \(unreachable by design\)/,
    );
    expect(find(checks(rows), 'backward+relu <= 1.1x plain backward').reason).toMatch(
      /moves 7 tensors to backward's 5: bytes floor 1\.40×, above/,
    );
    // Far above even that floor: what the rest is, and how much the samples scattered.
    const far = [...base(), row('webgpu-batchnorm', 'train+add+relu', 40)];
    expect(find(checks(far), 'train+add+relu <= 1.1x plain train').reason).toMatch(
      /bytes floor 1\.33×, above the 1\.10× target \(unreachable by design\); the other 2\.67× is an add and a max per element \(samples spread 1\.08× and 1\.08×, max\/min\); fallback adapter/,
    );
  });

  it('an epilogue at the same bytes: noise when the quartiles overlap, else the activation work', () => {
    const noisy = [...base(), row('webgpu-batchnorm', 'train+relu', 11.5, 0.12)];
    expect(find(checks(noisy), 'train+relu <= 1.1x plain train').reason).toMatch(/bytes floor 1\.00×; within noise: the quartiles overlap/);
    const apart = [...base(), row('webgpu-batchnorm', 'train+gelu', 14)];
    expect(find(checks(apart), 'train+gelu <= 1.1x plain train').reason).toMatch(
      /the other 0\.40× is an erf per element; fallback adapter/,
    );
  });

  it('fused slower than unfused: the bytes it saves, and why it did not show', () => {
    const rows = [...base(), row('webgpu-batchnorm', 'backward+relu', 22), row('webgpu-batchnorm-unfused', 'backward+relu', 20)];
    expect(find(checks(rows), 'backward+relu fused faster than unfused').reason).toMatch(
      /^unfused moves 8 tensors to fused's 7 \(at most 1\.14× to gain\); fused does the mask from the saved output per element inside BN's passes, which costs more/,
    );
  });

  it('a peer already near the floor: the speedup needs ours below our own bytes floor', () => {
    const rows = [...base(), row('ort-webgpu', 'eval', 15), row('tfjs-webgpu', 'train', 150)];
    const ort = find(checks(rows), '>= 8x faster than ORT-web eval');
    expect(ort.pass).toBe(false);
    expect(ort.reason).toMatch(
      /^ort-webgpu eval runs at 3\.00× the copy floor, so 8\.00× faster needs ours at 0\.38×: below our bytes floor of 1\.00× \(2 tensor passes, unreachable\)/,
    );
    const tfjs = find(checks(rows), '>= 20x faster than tfjs-webgpu train');
    expect(tfjs.reason).toMatch(
      /^tfjs-webgpu train runs at 30\.0× the copy floor, so 20\.0× faster needs ours at 1\.50×, ours is at 2\.00× \(the statistics'/,
    );
  });

  it('the Keras preset: same kernels, so noise or drift', () => {
    const rows = [...base(), row('webgpu-batchnorm-keras', 'train', 12)];
    expect(find(checks(rows), 'keras preset train within 10% of pytorch').reason).toMatch(
      /^same kernels and dispatches as the PyTorch preset \(only uniform values differ\); so the gap is load drift between samples: samples spread 1\.08× and 1\.08×/,
    );
  });

  it('CPU: tfjs-cpu close to the bare loop bounds the speedup', () => {
    const rows = [...base(), row('webgpu-batchnorm-cpu', 'eval', 2), row('js-loop', 'eval', 1.8), row('tfjs-cpu', 'eval', 9)];
    const all = checks(rows);
    expect(find(all, 'cpu eval >= 30x faster than tfjs-cpu').reason).toBe(
      'even the bare js-loop is only 5.00× faster than tfjs-cpu eval here: 30.0× would mean beating a plain loop by 6.00×',
    );
    expect(find(all, 'cpu eval no slower than js-loop').reason).toMatch(/^same 2 tensor passes; the library's loops are generic/);
  });

  it('the checklist text puts each reason after its line; the page asks for lines without them', () => {
    const all = checks(base());
    const text = formatTargets(all);
    const miss = text.split('\n').find((l) => l.startsWith('MISS') && l.includes('train <= 1.8x'));
    expect(miss).toMatch(/ -- train moves 3 tensors/);
    expect(formatTargets(all, false)).not.toMatch(/ -- /);
  });
});

describe('fused-epilogue charts', () => {
  it('one group per op and case with a fused row, bars as × plain BN, the 1.1× target and the bytes floor', () => {
    const rows = [
      row('copy-floor', 'copy', 5),
      row('webgpu-batchnorm', 'train', 10),
      row('webgpu-batchnorm', 'eval', 5),
      row('webgpu-batchnorm', 'backward', 15),
      row('webgpu-batchnorm', 'train+relu', 11),
      row('webgpu-batchnorm-unfused', 'train+relu', 16),
      row('webgpu-batchnorm', 'eval+add+relu', 8),
      row('webgpu-batchnorm', 'backward+relu', 21),
      row('webgpu-batchnorm', 'train', 12, 0.02, 'channels_last'),
      row('webgpu-batchnorm', 'train+relu', 12, 0.02, 'channels_last'),
    ];
    const charts = chartsFor(rows);
    const forward = charts.find((c) => c.title.startsWith('Fused epilogues, forward'));
    const backward = charts.find((c) => c.title.startsWith('Fused epilogues, backward'));
    expect(forward?.groups).toEqual(['train+relu\n8×256×28×28 CF', 'eval+add+relu\n8×256×28×28 CF', 'train+relu\n8×256×28×28 CL']);
    expect(forward?.scale).toBe('linear');
    expect(forward?.wide).toBe(true);
    expect(forward?.max).toBe(3);
    const [fused, unfused] = forward?.series ?? [];
    expect(fused?.values).toEqual([1.1, 1.6, 1]);
    expect(unfused?.values).toEqual([1.6, null, null]);
    expect(forward?.targets).toEqual([1.1, 1.1, 1.1]);
    expect(forward?.floors).toEqual([1, 1.5, 1]);
    expect(backward?.groups).toEqual(['backward+relu\n8×256×28×28 CF']);
    expect(backward?.floors).toEqual([7 / 5]);
    expect(backward?.series[0]?.values).toEqual([1.4]);
  });

  it('the bytes model covers every op the harness runs for our GPU variants', () => {
    const ops: OpName[] = [
      'train',
      'eval',
      'backward',
      'train+relu',
      'eval+relu',
      'backward+relu',
      'train+add+relu',
      'eval+add+relu',
      'backward+add+relu',
      'train+gelu',
      'backward+gelu',
      'train+sigmoid',
      'backward+sigmoid',
    ];
    for (const op of ops) expect(tensorPasses('webgpu-batchnorm', op), op).toBeGreaterThan(0);
    // Fusing never moves more than the unfused passes.
    for (const op of ops.slice(3, 9))
      expect(tensorPasses('webgpu-batchnorm-unfused', op) ?? 0, op).toBeGreaterThanOrEqual(tensorPasses('webgpu-batchnorm', op) ?? 99);
  });
});
