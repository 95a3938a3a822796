/**
 * The example's CPU trainer: the same network as mlp-gpu.ts with plain TypeScript linear layers,
 * ReLU, loss and SGD, and the library's batch norm on the 'cpu' backend (bn.forward / bn.backward).
 */
import { BatchNorm1d, type BatchNormContext, type Tensor } from '../src/index.js';
import type { Dataset, InitialParams, LossEntry, ModelSpec, Trainer } from './model.js';

/** The values of a CPU tensor, to read and update in place (the CPU counterpart of `t.buffer`). */
function cpuValues(t: Tensor): Float32Array {
  const s = t.storage;
  if (s.kind !== 'cpu') throw new Error(`tensor '${t.label}' is not on the CPU backend`);
  return s.data;
}

interface Hidden {
  z: Float32Array;
  h: Float32Array;
  a: Float32Array;
  readonly bn: BatchNorm1d | null;
}

/** Creates the CPU trainer; `ctx` must run on 'cpu'. */
export function createCpuTrainer(ctx: BatchNormContext, spec: ModelSpec, data: Dataset, init: InitialParams): Trainer {
  if (ctx.backend !== 'cpu') throw new Error('createCpuTrainer needs a CPU context');
  const { sizes, batchSize: B, batches } = spec;
  const layers = sizes.length - 1;
  const weights = init.weights.map((w) => w.slice());
  const biases = init.biases.map((b) => b.slice());
  const hidden: Hidden[] = [];
  for (let l = 0; l + 1 < layers; l++) {
    const width = sizes[l + 1] as number;
    hidden.push({
      z: new Float32Array(B * width),
      h: new Float32Array(B * width),
      a: new Float32Array(B * width),
      bn: spec.useBatchNorm ? new BatchNorm1d(ctx, width) : null,
    });
  }
  const params: Float32Array[] = [];
  for (let l = 0; l < layers; l++) params.push(weights[l] as Float32Array, biases[l] as Float32Array);
  for (const hl of hidden) if (hl.bn?.weight && hl.bn.bias) params.push(cpuValues(hl.bn.weight), cpuValues(hl.bn.bias));
  const velocities = params.map((p) => new Float32Array(p.length));
  const classes = sizes[layers] as number;
  let last: LossEntry = { step: 0, loss: NaN, accuracy: NaN };
  let steps = 0;

  const linear = (x: Float32Array, l: number): Float32Array => {
    const IN = sizes[l] as number;
    const OUT = sizes[l + 1] as number;
    const w = weights[l] as Float32Array;
    const bias = biases[l] as Float32Array;
    const y = new Float32Array(B * OUT);
    for (let n = 0; n < B; n++)
      for (let o = 0; o < OUT; o++) {
        let acc = bias[o] as number;
        for (let i = 0; i < IN; i++) acc += (x[n * IN + i] as number) * (w[o * IN + i] as number);
        y[n * OUT + o] = acc;
      }
    return y;
  };

  /** Forward for batch `b`; returns per-sample loss/correctness and dL/dlogits. Keeps the BN inputs alive for backward. */
  const forward = (b: number, inputs: Tensor[]): { loss: number; accuracy: number; dlogits: Float32Array; x: Float32Array } => {
    const x = data.x.subarray(b * B * 2, (b + 1) * B * 2);
    let act: Float32Array = x;
    for (let l = 0; l < layers - 1; l++) {
      const hl = hidden[l] as Hidden;
      hl.z = linear(act, l);
      if (hl.bn) {
        const zt = ctx.tensor(hl.z, [B, sizes[l + 1] as number], { label: `z${l}` });
        inputs.push(zt);
        const ht = hl.bn.forward(zt);
        hl.h = cpuValues(ht).slice();
        ht.destroy();
      } else hl.h = hl.z;
      hl.a = hl.h.map((v) => Math.max(v, 0));
      act = hl.a;
    }
    const logits = linear(act, layers - 1);
    const labels = data.labels.subarray(b * B, (b + 1) * B);
    const dlogits = new Float32Array(B * classes);
    let lossSum = 0;
    let correct = 0;
    for (let n = 0; n < B; n++) {
      const row = logits.subarray(n * classes, (n + 1) * classes);
      let best = 0;
      for (let c = 1; c < classes; c++) if ((row[c] as number) > (row[best] as number)) best = c;
      const top = row[best] as number;
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp((row[c] as number) - top);
      const label = labels[n] as number;
      for (let c = 0; c < classes; c++) dlogits[n * classes + c] = (Math.exp((row[c] as number) - top) / sum - (c === label ? 1 : 0)) / B;
      lossSum += Math.log(sum) + top - (row[label] as number);
      if (best === label) correct++;
    }
    return { loss: lossSum / B, accuracy: correct / B, dlogits, x };
  };

  const sgdStep = (param: Float32Array, grad: ArrayLike<number>, velocity: Float32Array): void => {
    for (let k = 0; k < param.length; k++) {
      const v = spec.momentum * (velocity[k] as number) + (grad[k] as number);
      velocity[k] = v;
      param[k] = (param[k] as number) - spec.learningRate * v;
    }
  };

  return {
    backend: 'cpu',
    get steps() {
      return steps;
    },
    step(): void {
      const b = steps % batches;
      const inputs: Tensor[] = [];
      const f = forward(b, inputs);
      const grads: Float32Array[] = [];
      const bnGrads: Float32Array[] = [];
      let dy = f.dlogits;
      for (let l = layers - 1; l >= 0; l--) {
        const IN = sizes[l] as number;
        const OUT = sizes[l + 1] as number;
        const x = l === 0 ? f.x : (hidden[l - 1] as Hidden).a;
        const w = weights[l] as Float32Array;
        const gw = new Float32Array(OUT * IN);
        const gb = new Float32Array(OUT);
        for (let n = 0; n < B; n++)
          for (let o = 0; o < OUT; o++) {
            const d = dy[n * OUT + o] as number;
            gb[o] = (gb[o] as number) + d;
            for (let i = 0; i < IN; i++) gw[o * IN + i] = (gw[o * IN + i] as number) + d * (x[n * IN + i] as number);
          }
        grads[2 * l] = gw;
        grads[2 * l + 1] = gb;
        if (l === 0) break;
        const below = hidden[l - 1] as Hidden;
        const dh = new Float32Array(B * IN);
        for (let n = 0; n < B; n++)
          for (let i = 0; i < IN; i++) {
            if (!((below.h[n * IN + i] as number) > 0)) continue;
            let acc = 0;
            for (let o = 0; o < OUT; o++) acc += (dy[n * OUT + o] as number) * (w[o * IN + i] as number);
            dh[n * IN + i] = acc;
          }
        if (below.bn) {
          const dht = ctx.tensor(dh, [B, IN], { label: `dh${l - 1}` });
          const g = below.bn.backward(dht);
          dht.destroy();
          if (!g.gradInput || !g.gradWeight || !g.gradBias) throw new Error('batch norm returned no gradient');
          dy = cpuValues(g.gradInput).slice();
          bnGrads.unshift(cpuValues(g.gradWeight).slice(), cpuValues(g.gradBias).slice());
          for (const t of [g.gradInput, g.gradWeight, g.gradBias]) t.destroy();
        } else dy = dh;
      }
      for (const t of inputs) t.destroy();
      [...grads, ...bnGrads].forEach((g, i) => {
        sgdStep(params[i] as Float32Array, g, velocities[i] as Float32Array);
      });
      steps++;
      last = { step: steps, loss: f.loss, accuracy: f.accuracy };
    },
    readLoss(): Promise<LossEntry> {
      return Promise.resolve(last);
    },
    evaluate(): Promise<{ loss: number; accuracy: number }> {
      for (const hl of hidden) hl.bn?.eval();
      let loss = 0;
      let accuracy = 0;
      for (let b = 0; b < batches; b++) {
        const inputs: Tensor[] = [];
        const f = forward(b, inputs);
        for (const t of inputs) t.destroy();
        loss += f.loss / batches;
        accuracy += f.accuracy / batches;
      }
      for (const hl of hidden) hl.bn?.train();
      return Promise.resolve({ loss, accuracy });
    },
    destroy(): void {
      for (const hl of hidden) hl.bn?.destroy();
    },
  };
}
