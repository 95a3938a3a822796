/**
 * The example CNN on the CPU backend: the same layers as cnn.wgsl in plain TypeScript (float32
 * storage, float64 sums) around the library's CPU BatchNorm2d (`bn.forward` on CPU tensors), or
 * with the batch norms folded into the convolutions by `foldBatchNormTensors`.
 */
import { BatchNorm2d, type BatchNormContext } from '../../src/index.js';
import { foldBatchNormTensors } from '../../src/fold/index.js';
import { loadBatchNorm, type ModelFile } from '../../src/io/index.js';
import type { CnnRunner, CnnVariant } from './runner.js';
import { cnnWeights } from './weights.js';

function conv2d(
  x: Float32Array,
  n: number,
  cin: number,
  h: number,
  w: number,
  weight: Float32Array,
  cout: number,
  k: number,
  bias: Float32Array | null,
): Float32Array {
  const out = new Float32Array(n * cout * h * w);
  const pad = k >> 1;
  for (let b = 0; b < n; b++)
    for (let o = 0; o < cout; o++)
      for (let y = 0; y < h; y++)
        for (let xo = 0; xo < w; xo++) {
          let acc = bias ? (bias[o] as number) : 0;
          for (let ci = 0; ci < cin; ci++) {
            const plane = (b * cin + ci) * h;
            const kernel = (o * cin + ci) * k;
            for (let ky = 0; ky < k; ky++) {
              const iy = y + ky - pad;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = xo + kx - pad;
                if (ix < 0 || ix >= w) continue;
                acc += (x[(plane + iy) * w + ix] as number) * (weight[(kernel + ky) * k + kx] as number);
              }
            }
          }
          out[((b * cout + o) * h + y) * w + xo] = acc;
        }
  return out;
}

const relu = (x: Float32Array): Float32Array => x.map((v) => Math.max(v, 0));

/** Creates the CPU network for `images` (N × 3 × H × W, NCHW). */
export async function createCpuCnn(
  ctx: BatchNormContext,
  file: ModelFile,
  variant: CnnVariant,
  images: Float32Array,
  shape: readonly number[],
): Promise<CnnRunner> {
  const w = cnnWeights(file);
  const [n = 0, , h = 0, wd = 0] = shape;
  const c = w.width;
  const bns = w.convs.map((cv) => {
    const bn = new BatchNorm2d(ctx, cv.bn.numFeatures).eval();
    loadBatchNorm(bn, file, cv.bn);
    return bn;
  });
  // Folding runs once, through the library (float64 on the CPU backend).
  const layers: Array<{ weight: Float32Array; bias: Float32Array | null }> = [];
  for (const [i, cv] of w.convs.entries()) {
    if (variant === 'bn-layers') {
      layers.push({ weight: cv.weight, bias: null });
      continue;
    }
    const weight = ctx.tensor(cv.weight, cv.shape);
    const folded = foldBatchNormTensors(bns[i] as BatchNorm2d, { weight });
    layers.push({ weight: await folded.weight.read(), bias: await folded.bias.read() });
    for (const t of [weight, folded.weight, folded.bias]) t.destroy();
  }

  const convBn = async (x: Float32Array, i: number): Promise<Float32Array> => {
    const cv = w.convs[i];
    const layer = layers[i];
    if (!cv || !layer) throw new Error('unreachable');
    const y = conv2d(x, n, cv.shape[1], h, wd, layer.weight, cv.shape[0], cv.shape[2], layer.bias);
    if (variant === 'folded') return y;
    const t = ctx.tensor(y, [n, cv.shape[0], h, wd]);
    const out = (bns[i] as BatchNorm2d).forward(t);
    const values = await out.read();
    t.destroy();
    out.destroy();
    return values;
  };

  const forward = async (): Promise<Float32Array> => {
    const stem = relu(await convBn(images, 0));
    const mid = relu(await convBn(stem, 1));
    const res = await convBn(mid, 2);
    const pooled = new Float32Array(n * c);
    const size = h * wd;
    for (let i = 0; i < n * c; i++) {
      let acc = 0;
      for (let j = 0; j < size; j++) acc += Math.max((res[i * size + j] as number) + (stem[i * size + j] as number), 0);
      pooled[i] = acc / size;
    }
    const logits = new Float32Array(n * w.classes);
    for (let b = 0; b < n; b++)
      for (let o = 0; o < w.classes; o++) {
        let acc = w.fcBias[o] as number;
        for (let j = 0; j < c; j++) acc += (pooled[b * c + j] as number) * (w.fcWeight[o * c + j] as number);
        logits[b * w.classes + o] = acc;
      }
    return logits;
  };

  return {
    logits: forward,
    async time(reps: number): Promise<number> {
      const start = performance.now();
      for (let r = 0; r < reps; r++) await forward();
      return (performance.now() - start) / 1000;
    },
    destroy(): void {
      for (const bn of bns) bn.destroy();
    },
  };
}
