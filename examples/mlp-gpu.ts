/**
 * The example's WebGPU trainer: linear layers, ReLU, loss and SGD from ./mlp.wgsl, batch norm from
 * the library. Everything is allocated once; a step records every dispatch (forward, loss,
 * backward, optimizer) into one command encoder and submits it once, reading nothing back.
 */
import { BatchNorm1d, type BatchNormContext, type Tensor } from '../src/index.js';
import mlpSource from './mlp.wgsl?raw';
import type { Dataset, InitialParams, LossEntry, ModelSpec, Trainer } from './model.js';

const WORKGROUP = 64;

/** One recorded dispatch: a pipeline, its bind group and the workgroup count. */
interface Dispatch {
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly workgroups: number;
}

interface Hidden {
  readonly z: Tensor; // linear output
  readonly h: Tensor; // batch-norm output (z itself without batch norm)
  readonly a: Tensor; // ReLU output
  readonly da: Tensor;
  readonly dh: Tensor;
  readonly dz: Tensor; // dh itself without batch norm
  readonly bn: BatchNorm1d | null;
  readonly gradWeight: Tensor | null;
  readonly gradBias: Tensor | null;
}

/** Creates the WebGPU trainer; `ctx` must run on 'webgpu'. */
export function createGpuTrainer(ctx: BatchNormContext, spec: ModelSpec, data: Dataset, init: InitialParams): Trainer {
  const device = ctx.device;
  if (!device) throw new Error('createGpuTrainer needs a WebGPU context');
  const { sizes, batchSize: B, batches } = spec;
  const layers = sizes.length - 1;
  const owned: Tensor[] = [];
  const tensor = (values: Float32Array, shape: number[], label: string): Tensor => {
    const t = ctx.tensor(values, shape, { label: `example.${label}` });
    owned.push(t);
    return t;
  };
  const zeros = (shape: number[], label: string): Tensor => tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, label);

  const module = device.createShaderModule({ label: 'example.mlp.module', code: mlpSource });
  const pipelines = new Map<string, GPUComputePipeline>();
  const pipeline = (entry: string, constants: Record<string, number>): GPUComputePipeline => {
    const key = `${entry}|${JSON.stringify(constants)}`;
    let p = pipelines.get(key);
    if (!p) {
      p = device.createComputePipeline({
        label: `example.mlp.${entry}.pipeline`,
        layout: 'auto',
        compute: { module, entryPoint: entry, constants },
      });
      pipelines.set(key, p);
    }
    return p;
  };
  /** A dispatch of `invocations` threads binding `tensors` at bindings 0, 1, 2, ... */
  const dispatch = (entry: string, constants: Record<string, number>, tensors: readonly Tensor[], invocations: number): Dispatch => {
    const p = pipeline(entry, constants);
    const bindGroup = device.createBindGroup({
      label: `example.mlp.${entry}.bindGroup`,
      layout: p.getBindGroupLayout(0),
      entries: tensors.map((t, binding) => ({ binding, resource: { buffer: t.buffer, offset: t.byteOffset } })),
    });
    return { pipeline: p, bindGroup, workgroups: Math.ceil(invocations / WORKGROUP) };
  };

  // Data: fixed mini-batches, uploaded once.
  const xs: Tensor[] = [];
  const ys: Tensor[] = [];
  for (let b = 0; b < batches; b++) {
    xs.push(tensor(data.x.slice(b * B * 2, (b + 1) * B * 2), [B, 2], `x${b}`));
    ys.push(tensor(data.labels.slice(b * B, (b + 1) * B), [B], `labels${b}`));
  }

  // Parameters, gradients and momentum buffers of the linear layers.
  const weights = init.weights.map((w, l) => tensor(w, [sizes[l + 1] as number, sizes[l] as number], `w${l}`));
  const biases = init.biases.map((b, l) => tensor(b, [sizes[l + 1] as number], `b${l}`));
  const gradWeights = weights.map((w, l) => zeros([...w.shape], `gw${l}`));
  const gradBiases = biases.map((b, l) => zeros([...b.shape], `gb${l}`));

  const hidden: Hidden[] = [];
  for (let l = 0; l + 1 < layers; l++) {
    const width = sizes[l + 1] as number;
    const z = zeros([B, width], `z${l}`);
    const dh = zeros([B, width], `dh${l}`);
    const bn = spec.useBatchNorm ? new BatchNorm1d(ctx, width) : null;
    hidden.push({
      z,
      h: bn ? zeros([B, width], `h${l}`) : z,
      a: zeros([B, width], `a${l}`),
      da: zeros([B, width], `da${l}`),
      dh,
      dz: bn ? zeros([B, width], `dz${l}`) : dh,
      bn,
      gradWeight: bn ? zeros([width], `bn${l}.gw`) : null,
      gradBias: bn ? zeros([width], `bn${l}.gb`) : null,
    });
  }
  const classes = sizes[layers] as number;
  const logits = zeros([B, classes], 'logits');
  const dlogits = zeros([B, classes], 'dlogits');
  const perSample = zeros([B, 2], 'perSample');
  const lossStats = zeros([2], 'lossStats');
  const evalStats = zeros([2 * batches], 'evalStats');

  // Every parameter with its gradient, and a momentum buffer each.
  const params: Array<[Tensor, Tensor]> = [];
  for (let l = 0; l < layers; l++)
    params.push([weights[l] as Tensor, gradWeights[l] as Tensor], [biases[l] as Tensor, gradBiases[l] as Tensor]);
  for (const hl of hidden) {
    if (hl.bn?.weight && hl.bn.bias && hl.gradWeight && hl.gradBias) params.push([hl.bn.weight, hl.gradWeight], [hl.bn.bias, hl.gradBias]);
  }
  const sgd = params.map(([p, g], i) =>
    dispatch(
      'sgd_momentum',
      { SIZE: p.size, LR: spec.learningRate, MOMENTUM: spec.momentum },
      [p, g, zeros([p.size], `velocity${i}`)],
      p.size,
    ),
  );

  // Dispatches, built once. Layer l reads the input of the batch (l = 0) or the previous ReLU.
  const dims = (l: number): Record<string, number> => ({ BATCH: B, IN: sizes[l] as number, OUT: sizes[l + 1] as number });
  const inputOf = (l: number, b: number): Tensor => (l === 0 ? (xs[b] as Tensor) : (hidden[l - 1] as Hidden).a);
  const outputOf = (l: number): Tensor => (l === layers - 1 ? logits : (hidden[l] as Hidden).z);
  const gradOutputOf = (l: number): Tensor => (l === layers - 1 ? dlogits : (hidden[l] as Hidden).dz);
  const perBatch = (fn: (b: number) => Dispatch): Dispatch[] => Array.from({ length: batches }, (_, b) => fn(b));

  const linearForward = Array.from({ length: layers }, (_, l) =>
    perBatch((b) =>
      dispatch(
        'linear_forward',
        dims(l),
        [inputOf(l, b), weights[l] as Tensor, biases[l] as Tensor, outputOf(l)],
        B * (sizes[l + 1] as number),
      ),
    ),
  );
  const linearBackwardParams = Array.from({ length: layers }, (_, l) =>
    perBatch((b) =>
      dispatch(
        'linear_backward_params',
        dims(l),
        [gradOutputOf(l), inputOf(l, b), gradWeights[l] as Tensor, gradBiases[l] as Tensor],
        (sizes[l + 1] as number) * ((sizes[l] as number) + 1),
      ),
    ),
  );
  // dx of layer l (l ≥ 1) is dL/d(ReLU output) of hidden layer l − 1.
  const linearBackwardInput = Array.from({ length: layers }, (_, l) =>
    l === 0
      ? null
      : dispatch(
          'linear_backward_input',
          dims(l),
          [gradOutputOf(l), weights[l] as Tensor, (hidden[l - 1] as Hidden).da],
          B * (sizes[l] as number),
        ),
  );
  const reluForward = hidden.map((hl) => dispatch('relu_forward', { SIZE: hl.h.size }, [hl.h, hl.a], hl.h.size));
  const reluBackward = hidden.map((hl) => dispatch('relu_backward', { SIZE: hl.h.size }, [hl.h, hl.da, hl.dh], hl.h.size));
  const loss = perBatch((b) =>
    dispatch('softmax_cross_entropy', { BATCH: B, CLASSES: classes }, [logits, ys[b] as Tensor, dlogits, perSample], B),
  );
  const batchMean = dispatch('batch_mean', { BATCH: B }, [perSample, lossStats], 1);

  const runPass = (encoder: GPUCommandEncoder, list: ReadonlyArray<Dispatch | null>): void => {
    const pass = encoder.beginComputePass({ label: 'example.mlp.pass' });
    for (const d of list) {
      if (!d) continue;
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.workgroups);
    }
    pass.end();
  };

  /** Forward through the loss for batch `b`; batch norm in its current mode. */
  const recordForward = (encoder: GPUCommandEncoder, b: number): void => {
    for (let l = 0; l < layers; l++) {
      const lin = linearForward[l]?.[b] ?? null;
      if (l === layers - 1) {
        runPass(encoder, [lin, loss[b] ?? null, batchMean]);
        continue;
      }
      const hl = hidden[l] as Hidden;
      runPass(encoder, [lin]);
      hl.bn?.encodeForward(encoder, hl.z, hl.h);
      runPass(encoder, [reluForward[l] ?? null]);
    }
  };

  // GPU errors of our own submits: kept and thrown by the next readLoss/evaluate.
  let firstError: Error | null = null;
  const pending = new Set<Promise<void>>();
  const submit = (encoder: GPUCommandEncoder): void => {
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    device.queue.submit([encoder.finish({ label: 'example.step.commands' })]);
    const p: Promise<void> = Promise.all([device.popErrorScope(), device.popErrorScope()]).then((errors) => {
      const e = errors.find((x) => x !== null);
      if (e && !firstError) firstError = new Error(`example training step: WebGPU reported: ${e.message}`);
      pending.delete(p);
    });
    pending.add(p);
  };
  const check = async (): Promise<void> => {
    await Promise.all([...pending]);
    if (firstError) throw firstError;
  };

  let steps = 0;
  return {
    backend: 'webgpu',
    get steps() {
      return steps;
    },
    step(): void {
      const b = steps % batches;
      const encoder = device.createCommandEncoder({ label: 'example.step.encoder' });
      recordForward(encoder, b);
      for (let l = layers - 1; l >= 0; l--) {
        // Parameter gradients of layer l, then dL/d(ReLU output) below it.
        runPass(encoder, [
          linearBackwardParams[l]?.[b] ?? null,
          linearBackwardInput[l] ?? null,
          l > 0 ? (reluBackward[l - 1] ?? null) : null,
        ]);
        if (l === 0) break;
        const below = hidden[l - 1] as Hidden;
        below.bn?.encodeBackward(encoder, below.dh, { gradInput: below.dz, gradWeight: below.gradWeight, gradBias: below.gradBias });
      }
      runPass(encoder, sgd);
      submit(encoder);
      steps++;
    },
    async readLoss(): Promise<LossEntry> {
      await check();
      const [lossValue = NaN, accuracy = NaN] = await lossStats.read();
      return { step: steps, loss: lossValue, accuracy };
    },
    async evaluate(): Promise<{ loss: number; accuracy: number }> {
      for (const hl of hidden) hl.bn?.eval();
      const encoder = device.createCommandEncoder({ label: 'example.evaluate.encoder' });
      for (let b = 0; b < batches; b++) {
        recordForward(encoder, b);
        encoder.copyBufferToBuffer(lossStats.buffer, 0, evalStats.buffer, b * 8, 8);
      }
      submit(encoder);
      for (const hl of hidden) hl.bn?.train();
      await check();
      const values = await evalStats.read();
      let lossSum = 0;
      let accSum = 0;
      for (let b = 0; b < batches; b++) {
        lossSum += values[2 * b] as number;
        accSum += values[2 * b + 1] as number;
      }
      return { loss: lossSum / batches, accuracy: accSum / batches };
    },
    destroy(): void {
      for (const hl of hidden) hl.bn?.destroy();
      for (const t of owned) t.destroy();
    },
  };
}
