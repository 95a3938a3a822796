/**
 * The sweep's timing core: candidates that each record K passes into one encoder are timed side
 * by side with the WGSL vec4 copy floor (bench/harness/copy-floor.wgsl, both access patterns) on
 * the same device and buffers, in interleaved, rotated rounds; a candidate's ratio in a round is
 * its time over the faster copy of that round, and rows report the median ratio and its spread.
 */
import { CopyFloorKernel, USAGE } from '../harness/gpu.js';
import { summarize, type Summary } from '../harness/stats.js';

/** One thing to time: records `k` iterations into `encoder`. */
export interface Candidate {
  readonly name: string;
  /** Launch details shown in the table (workgroup size, items per invocation, ...). */
  readonly detail: string;
  /** Max |out − ref| / max(1, max |ref|) of one iteration's output. */
  verify(): Promise<number>;
  encode(encoder: GPUCommandEncoder, k: number): void;
}

export interface SweepRow {
  readonly name: string;
  readonly detail: string;
  readonly error: number;
  /** Ratio to the faster copy of the same round. */
  readonly ratio: Summary;
  readonly ms: Summary;
  readonly ratios: number[];
}

export interface SweepResult {
  readonly iterations: number;
  readonly copyMs: Summary;
  /** The copy pattern that won the race and was used as the floor. */
  readonly copyVariant: string;
  readonly rows: SweepRow[];
}

async function timeOnce(device: GPUDevice, encode: (e: GPUCommandEncoder) => void): Promise<number> {
  const t0 = performance.now();
  const encoder = device.createCommandEncoder({ label: 'bench.sweep.encoder' });
  encode(encoder);
  device.queue.submit([encoder.finish({ label: 'bench.sweep.commands' })]);
  await device.queue.onSubmittedWorkDone();
  return performance.now() - t0;
}

/**
 * Times `candidates` against the copy floor of `floats` floats from `src` (into a scratch buffer).
 * K is calibrated on the copy so one sample takes about `targetMs`.
 */
export async function sweep(
  device: GPUDevice,
  src: GPUBuffer,
  floats: number,
  candidates: readonly Candidate[],
  rounds: number,
  targetMs: number,
): Promise<SweepResult> {
  const dst = device.createBuffer({ label: 'bench.sweep.copyDst', size: floats * 4, usage: USAGE.STORAGE | USAGE.COPY_SRC });
  const copies = [new CopyFloorKernel(device, src, dst, floats, 'strided'), new CopyFloorKernel(device, src, dst, floats, 'blocked')];
  try {
    const errors: number[] = [];
    for (const c of candidates) errors.push(await c.verify());
    // Calibrate K on the copy (after a warm-up of every pipeline).
    for (const c of candidates) await timeOnce(device, (e) => c.encode(e, 1));
    for (const c of copies) await timeOnce(device, (e) => c.encode(e, 1));
    let k = 1;
    for (;;) {
      const t = await timeOnce(device, (e) => (copies[1] as CopyFloorKernel).encode(e, k));
      if (t >= targetMs / 2 || k >= 64) {
        k = Math.max(1, Math.min(64, Math.round((k * targetMs) / Math.max(t, 1e-3))));
        break;
      }
      k *= 2;
    }
    // The floor is the faster of the two copy patterns in a short race (as the harness does).
    const race = [0, 0];
    for (let r = 0; r < 3; r++) {
      for (const [i, c] of copies.entries()) race[i] = (race[i] ?? 0) + (await timeOnce(device, (e) => c.encode(e, k)));
    }
    const copy = copies[(race[1] ?? 0) < (race[0] ?? 0) ? 1 : 0] as CopyFloorKernel;
    const ms: number[][] = candidates.map(() => []);
    const ratios: number[][] = candidates.map(() => []);
    const copyMs: number[] = [];
    // Copy, candidate, copy, candidate, ..., copy: each candidate's ratio is to the mean of the
    // copies just before and after it, so load that drifts during a round (a shared machine)
    // cancels; the order rotates each round.
    for (let round = 0; round < rounds; round++) {
      let before = (await timeOnce(device, (e) => copy.encode(e, k))) / k;
      copyMs.push(before);
      for (let j = 0; j < candidates.length; j++) {
        const i = (j + round) % candidates.length;
        const c = candidates[i] as Candidate;
        const t = (await timeOnce(device, (e) => c.encode(e, k))) / k;
        const after = (await timeOnce(device, (e) => copy.encode(e, k))) / k;
        copyMs.push(after);
        ms[i]?.push(t);
        ratios[i]?.push(t / ((before + after) / 2));
        before = after;
      }
    }
    return {
      iterations: k,
      copyMs: summarize(copyMs),
      copyVariant: copy.variant,
      rows: candidates.map((c, i) => ({
        name: c.name,
        detail: c.detail,
        error: errors[i] ?? Number.NaN,
        ratio: summarize(ratios[i] ?? []),
        ms: summarize(ms[i] ?? []),
        ratios: ratios[i] ?? [],
      })),
    };
  } finally {
    for (const c of copies) c.destroy();
    dst.destroy();
  }
}

/** A markdown table of one case's sweep, fastest first. */
export function formatSweep(title: string, r: SweepResult): string {
  const lines = [
    `### ${title}`,
    `copy floor (${r.copyVariant}) ${r.copyMs.median.toFixed(2)} ms (median; ${r.iterations} iterations per sample)`,
    '',
    '| candidate | launch | × copy (median) | min–max | ms | max err |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const row of [...r.rows].sort((a, b) => a.ratio.median - b.ratio.median)) {
    lines.push(
      `| ${row.name} | ${row.detail} | ${row.ratio.median.toFixed(2)} | ${row.ratio.min.toFixed(2)}–${row.ratio.max.toFixed(2)} | ${row.ms.median.toFixed(2)} | ${row.error.toExponential(1)} |`,
    );
  }
  return lines.join('\n');
}
