/**
 * The "bring your model" example end to end (examples/cnn): a PyTorch-trained ResNet-style CNN
 * loaded from .pt, .safetensors and .onnx, run with the example's WGSL convolutions around the
 * library's BatchNorm2d (as layers, and folded into the convolutions), on both backends.
 *
 * Tolerance on the logits, against PyTorch's float64 forward of the same float32 weights and images:
 * |Δ| ≤ 2e-6 · (1 + max|logit|) (≈ 1.6e-5 here; float32 storage and sums through three 144-term
 * convolutions, pooling and the linear layer; PyTorch's own float32 forward is off by ~1e-6).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readModelFile } from '../src/io/index.js';
import { type BatchNormContext } from '../src/index.js';
import { runCnnExample, type CnnExampleFiles } from '../examples/cnn/inference.js';
import { BACKENDS, caseCounter, contextFor } from './helpers/backends.js';

const count = caseCounter('cnn-example');
const file = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(`../examples/cnn/${name}`, import.meta.url)));
const files: CnnExampleFiles = {
  pt: file('model.pt'),
  safetensors: file('model.safetensors'),
  onnx: file('model.onnx'),
  reference: file('reference.safetensors'),
};

describe('example model files', () => {
  it('are small and hold the same three batch norms in every format', async () => {
    for (const [name, bytes] of Object.entries(files)) expect(bytes.byteLength, name).toBeLessThan(1 << 20);
    const pt = await readModelFile(files.pt);
    const st = await readModelFile(files.safetensors);
    const onnx = await readModelFile(files.onnx);
    expect(pt.batchNorms.map((l) => l.name)).toEqual(['bn1', 'layer1.0.bn1', 'layer1.0.bn2']);
    expect(st.batchNorms.map((l) => l.name)).toEqual(['bn1', 'layer1.0.bn1', 'layer1.0.bn2']);
    expect(onnx.batchNorms).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      const a = pt.batchNorms[i]?.stateDict;
      for (const other of [st.batchNorms[i]?.stateDict, onnx.batchNorms[i]?.stateDict]) {
        for (const key of ['weight', 'bias', 'running_mean', 'running_var'] as const) {
          expect(Array.from(other?.[key] ?? []), `${i} ${key}`).toEqual(Array.from(a?.[key] ?? []));
        }
      }
    }
    // PyTorch's momentum 0.1 is exported as ONNX momentum 0.9 and converted back.
    expect(onnx.batchNorms.map((l) => [l.eps, l.momentum])).toEqual([
      [1e-5, 0.1],
      [1e-5, 0.1],
      [1e-5, 0.1],
    ]);
  });
});

describe.each(BACKENDS)('CNN example on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it('matches PyTorch from every file format, with BN as layers and folded', async () => {
    // No timing here (tests never depend on time): timingReps 0.
    const result = await runCnnExample(ctx, files, { timingReps: 0 });
    expect(result.backend).toBe(backend);
    expect(result.images).toBe(32);
    const tol = 2e-6 * (1 + result.maxAbsLogit);
    expect(result.rows.map((r) => `${r.format}/${r.variant}`)).toEqual([
      'pytorch/bn-layers',
      'pytorch/folded',
      'safetensors/bn-layers',
      'safetensors/folded',
      'onnx/bn-layers',
      'onnx/folded',
    ]);
    for (const row of result.rows) {
      expect(row.maxAbsError, `${row.format}/${row.variant}`).toBeLessThanOrEqual(tol);
      expect(row.accuracy).toBe(1);
      count(backend);
    }
    console.log(
      `[cnn-example] ${backend}: max |Δlogit| ${Math.max(...result.rows.map((r) => r.maxAbsError)).toExponential(2)} (tol ${tol.toExponential(2)}, PyTorch float32 ${result.torchFloat32Error.toExponential(2)})`,
    );
  });
});
