/**
 * What both trainers of the example share: the data set (two interleaved spirals), the network's
 * shape and its seeded initial parameters. No WebGPU, no Node: importable anywhere.
 */

/** A labelled 2-D point set, split into equal fixed mini-batches. */
export interface Dataset {
  /** (n, 2) row-major coordinates. */
  readonly x: Float32Array;
  /** One class index (0 or 1) per point, as f32 so it uploads like any tensor. */
  readonly labels: Float32Array;
  readonly n: number;
  readonly classes: number;
}

/** Hyperparameters of one run, every field resolved. */
export interface ModelSpec {
  /** Layer widths, input to output, e.g. [2, 32, 32, 2]. */
  readonly sizes: readonly number[];
  /** BatchNorm1d after every hidden linear layer (before its ReLU). */
  readonly useBatchNorm: boolean;
  readonly batchSize: number;
  /** Fixed mini-batches the data set is split into; step t trains on batch t mod batches. */
  readonly batches: number;
  readonly learningRate: number;
  readonly momentum: number;
}

/** Initial weights (OUT, IN) and biases (OUT) of each linear layer, as torch.nn.Linear draws them. */
export interface InitialParams {
  readonly weights: readonly Float32Array[];
  readonly biases: readonly Float32Array[];
}

/** A small seeded PRNG (mulberry32), so both backends start from the same weights and data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(next: () => number): number {
  return Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next());
}

/**
 * Two interleaved spirals of `n / 2` points each, 1.5 turns, radius 0.1 → 1, Gaussian noise of
 * `noise`; shuffled, so each mini-batch holds both classes. Not linearly separable: a network
 * must bend its decision boundary around both arms.
 */
export function twoSpirals(n: number, seed: number, noise = 0.04): Dataset {
  const next = seededRandom(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const x = new Float32Array(n * 2);
  const labels = new Float32Array(n);
  const half = n / 2;
  for (let i = 0; i < n; i++) {
    const cls = i < half ? 0 : 1;
    const t = (i % half) / half;
    const angle = t * 3 * Math.PI + cls * Math.PI;
    const radius = 0.1 + 0.9 * t;
    const slot = order[i] as number;
    x[slot * 2] = radius * Math.cos(angle) + noise * normal(next);
    x[slot * 2 + 1] = radius * Math.sin(angle) + noise * normal(next);
    labels[slot] = cls;
  }
  return { x, labels, n, classes: 2 };
}

/** torch.nn.Linear's default initialisation: weight and bias ~ U(−1/√in, 1/√in). */
export function initialParams(sizes: readonly number[], seed: number): InitialParams {
  const next = seededRandom(seed ^ 0x5eed);
  const weights: Float32Array[] = [];
  const biases: Float32Array[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const fanIn = sizes[l] as number;
    const fanOut = sizes[l + 1] as number;
    const bound = 1 / Math.sqrt(fanIn);
    weights.push(Float32Array.from({ length: fanOut * fanIn }, () => (2 * next() - 1) * bound));
    biases.push(Float32Array.from({ length: fanOut }, () => (2 * next() - 1) * bound));
  }
  return { weights, biases };
}

/** One logged point of a run. */
export interface LossEntry {
  /** Steps completed when this was measured (the loss is that of the last step's batch). */
  readonly step: number;
  /** Mean cross-entropy of the batch. */
  readonly loss: number;
  /** Fraction of the batch classified correctly. */
  readonly accuracy: number;
}

/** A trainer: create once, `step()` many times, `destroy()`. Implemented per backend. */
export interface Trainer {
  readonly backend: 'webgpu' | 'cpu';
  /** Training steps done so far. */
  readonly steps: number;
  /** One SGD step on the next mini-batch. On WebGPU: one encoder, one submit, no readback. */
  step(): void;
  /** Loss and accuracy of the last step's batch (reads back on WebGPU). */
  readLoss(): Promise<LossEntry>;
  /** Loss and accuracy over the whole data set, batch norm in eval mode (running statistics). */
  evaluate(): Promise<{ loss: number; accuracy: number }>;
  destroy(): void;
}
