/**
 * The "bring your model" CNN example (examples/cnn) on the benchmark page: the model files are
 * fetched like a user would fetch them (Vite emits them as assets), loaded from the Responses,
 * run on WebGPU with BN as layers and folded, and summarised with images/s.
 */
import { createContext } from '../../src/index.js';
import { runCnnExample } from '../../examples/cnn/inference.js';
import ptUrl from '../../examples/cnn/model.pt?url';
import safetensorsUrl from '../../examples/cnn/model.safetensors?url';
import onnxUrl from '../../examples/cnn/model.onnx?url';
import referenceUrl from '../../examples/cnn/reference.safetensors?url';

/** Runs the example and returns its summary lines; `log` gets each row as it is done. */
export async function cnnSummary(log: (line: string) => void): Promise<string> {
  const ctx = await createContext({ backend: 'webgpu' });
  try {
    const header = 'CNN example (examples/cnn, PyTorch-trained small ResNet, 32 images 3x16x16, WebGPU), logits vs PyTorch float64:';
    log(header);
    const lines = [header];
    const files = {
      pt: await fetch(ptUrl),
      safetensors: await fetch(safetensorsUrl),
      onnx: await fetch(onnxUrl),
      reference: await fetch(referenceUrl),
    };
    const r = await runCnnExample(ctx, files, {
      timingReps: 2,
      onRow: (row) => {
        const line = `  ${row.format.padEnd(11)} ${row.variant.padEnd(9)}: max |Δlogit| ${row.maxAbsError.toExponential(2)}, accuracy ${(100 * row.accuracy).toFixed(1)} %, ${row.imagesPerSecond.toFixed(1)} images/s`;
        log(line);
        lines.push(line);
      },
    });
    const footer = `  (largest |logit| ${r.maxAbsLogit.toFixed(2)}; PyTorch's own float32 error ${r.torchFloat32Error.toExponential(2)})`;
    log(footer);
    lines.push(footer);
    return lines.join('\n');
  } finally {
    ctx.destroy();
  }
}
