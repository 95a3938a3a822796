/**
 * "Bring your model" example: a small ResNet-style CNN trained in PyTorch (train_cnn.py), loaded
 * from each of its three files (.pt, .safetensors, .onnx), run with the example's own WGSL
 * convolutions around this library's BatchNorm2d (once with BN as layers, once folded into the
 * convolutions), its logits compared with PyTorch's float64 logits, and timed in images/s.
 *
 * Environment-agnostic (no Node or DOM imports): the benchmark page passes fetch Responses, Node
 * (`node examples/cnn/infer-node.mjs`) passes file bytes.
 *
 * @example
 * const ctx = await createContext();
 * const r = await runCnnExample(ctx, { pt: await fetch(ptUrl), safetensors: ..., onnx: ..., reference: ... });
 * for (const row of r.rows) console.log(row.format, row.variant, row.maxAbsError, row.imagesPerSecond);
 */
import { readModelFile, type ModelFormat, type ModelSource } from '../../src/io/index.js';
import { type BatchNormContext } from '../../src/index.js';
import { createCpuCnn } from './cnn-cpu.js';
import { createGpuCnn } from './cnn-gpu.js';
import type { CnnVariant } from './runner.js';

export type { CnnVariant } from './runner.js';

/** The example's files, as bytes, Blobs or fetch Responses. */
export interface CnnExampleFiles {
  readonly pt: ModelSource;
  readonly safetensors: ModelSource;
  readonly onnx: ModelSource;
  /** reference.safetensors: images, labels, float64 logits (and PyTorch's float32 logits). */
  readonly reference: ModelSource;
}

/** Options of {@link runCnnExample}. */
export interface CnnExampleOptions {
  /** Timed repetitions of the 32-image batch per row. Default 5 (0: no timing). */
  timingReps?: number;
  /** Called with each row as it is done. */
  onRow?: (row: CnnExampleRow) => void;
}

/** One (file format, variant) run. */
export interface CnnExampleRow {
  readonly format: ModelFormat;
  readonly variant: CnnVariant;
  /** Largest |logit − PyTorch float64 logit| over the batch. */
  readonly maxAbsError: number;
  /** Fraction of images whose argmax matches the label. */
  readonly accuracy: number;
  /** Images per second over `timingReps` batches (NaN without timing). */
  readonly imagesPerSecond: number;
}

/** What {@link runCnnExample} reports. */
export interface CnnExampleResult {
  readonly backend: 'webgpu' | 'cpu';
  readonly images: number;
  /** Largest |logit| of the reference, to read errors against. */
  readonly maxAbsLogit: number;
  /** PyTorch's own float32 result against its float64 one, for comparison. */
  readonly torchFloat32Error: number;
  readonly rows: readonly CnnExampleRow[];
}

/**
 * Loads every file, runs both variants on `ctx`'s backend and compares with PyTorch.
 */
export async function runCnnExample(
  ctx: BatchNormContext,
  files: CnnExampleFiles,
  options: CnnExampleOptions = {},
): Promise<CnnExampleResult> {
  const reps = options.timingReps ?? 5;
  const reference = await readModelFile(files.reference, { format: 'safetensors' });
  const images = reference.tensors.get('images');
  const labels = reference.tensors.get('labels');
  const logitsRef = reference.tensors.get('logits');
  const logitsF32 = reference.tensors.get('logits_f32');
  if (!images || !(images.data instanceof Float32Array) || !labels || !(labels.data instanceof BigInt64Array) || !logitsRef || !logitsF32) {
    throw new Error('reference.safetensors must hold images, labels, logits and logits_f32');
  }
  // The float64 logits arrive rounded to float32 (the readers load floats as float32): a relative
  // 6e-8 change, far below the errors measured here.
  const ref = logitsRef.data as Float32Array;
  const classes = logitsRef.shape[1] ?? 1;
  const n = images.shape[0] ?? 0;
  const maxAbsLogit = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const torchFloat32Error = maxDiff(logitsF32.data as Float32Array, ref);

  const rows: CnnExampleRow[] = [];
  for (const [format, source] of [
    ['pytorch', files.pt],
    ['safetensors', files.safetensors],
    ['onnx', files.onnx],
  ] as const) {
    const file = await readModelFile(source);
    if (file.format !== format) throw new Error(`expected a ${format} file, got ${file.format}`);
    for (const variant of ['bn-layers', 'folded'] as const) {
      const runner =
        ctx.backend === 'cpu'
          ? await createCpuCnn(ctx, file, variant, images.data, images.shape)
          : createGpuCnn(ctx, file, variant, images.data, images.shape);
      try {
        const logits = await runner.logits();
        let correct = 0;
        for (let b = 0; b < n; b++) {
          let best = 0;
          for (let k = 1; k < classes; k++) if ((logits[b * classes + k] ?? 0) > (logits[b * classes + best] ?? 0)) best = k;
          if (BigInt(best) === labels.data[b]) correct++;
        }
        const seconds = reps > 0 ? await runner.time(reps) : Number.NaN;
        const row: CnnExampleRow = {
          format,
          variant,
          maxAbsError: maxDiff(logits, ref),
          accuracy: correct / n,
          imagesPerSecond: (reps * n) / seconds,
        };
        rows.push(row);
        options.onRow?.(row);
      } finally {
        runner.destroy();
      }
    }
  }
  return { backend: ctx.backend, images: n, maxAbsLogit, torchFloat32Error, rows };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(m, d);
  }
  return m;
}
