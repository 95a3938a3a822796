/**
 * `js-loop`: what a JavaScript user would write without a library: a statistics pass (Σx, Σx² per
 * channel in float64) and a normalize pass over a Float32Array; eval is the normalize pass alone;
 * backward is a Σdy, Σdy·(x − mean) pass and an elementwise pass. Running statistics are updated
 * like PyTorch's so the work matches the library's.
 */
import { relativeError, worstError, type CaseData } from './data.js';
import type { CaseContext, ImplSet } from './impl.js';

/** Per-channel Σx and Σx² in float64 (pass one of the training forward). */
function sums(d: CaseData, x: Float32Array, sum: Float64Array, sq: Float64Array): void {
  const { n, c, s, channelInner } = d.geometry;
  sum.fill(0);
  sq.fill(0);
  if (channelInner) {
    const rows = x.length / c;
    for (let r = 0; r < rows; r++) {
      const base = r * c;
      for (let k = 0; k < c; k++) {
        const v = x[base + k] as number;
        sum[k] = (sum[k] as number) + v;
        sq[k] = (sq[k] as number) + v * v;
      }
    }
  } else {
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < c; k++) {
        const base = (i * c + k) * s;
        let a = 0;
        let b = 0;
        for (let j = 0; j < s; j++) {
          const v = x[base + j] as number;
          a += v;
          b += v * v;
        }
        sum[k] = (sum[k] as number) + a;
        sq[k] = (sq[k] as number) + b;
      }
    }
  }
}

/** y = x · scale[c] + shift[c]. */
function affine(d: CaseData, x: Float32Array, y: Float32Array, scale: Float64Array, shift: Float64Array): void {
  const { n, c, s, channelInner } = d.geometry;
  if (channelInner) {
    const rows = x.length / c;
    for (let r = 0; r < rows; r++) {
      const base = r * c;
      for (let k = 0; k < c; k++) y[base + k] = (x[base + k] as number) * (scale[k] as number) + (shift[k] as number);
    }
  } else {
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < c; k++) {
        const base = (i * c + k) * s;
        const a = scale[k] as number;
        const b = shift[k] as number;
        for (let j = 0; j < s; j++) y[base + j] = (x[base + j] as number) * a + b;
      }
    }
  }
}

export function createJsLoop(cc: CaseContext): ImplSet {
  const d = cc.data;
  const { c, size } = d.geometry;
  const count = size / c;
  const x = d.x;
  const y = new Float32Array(size);
  const dx = new Float32Array(size);
  const dw = new Float32Array(c);
  const db = new Float32Array(c);
  const runningMean = Float32Array.from(d.runningMean);
  const runningVar = Float32Array.from(d.runningVar);
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  const mean = new Float64Array(c);
  const invstd = new Float64Array(c);

  const train = (): void => {
    sums(d, x, sum, sq);
    for (let k = 0; k < c; k++) {
      const m = (sum[k] as number) / count;
      const v = Math.max(0, (sq[k] as number) / count - m * m);
      const is = 1 / Math.sqrt(v + d.eps);
      mean[k] = m;
      invstd[k] = is;
      scale[k] = is * (d.weight[k] as number);
      shift[k] = (d.bias[k] as number) - m * (scale[k] as number);
      runningMean[k] = (1 - d.momentum) * (runningMean[k] as number) + d.momentum * m;
      runningVar[k] = (1 - d.momentum) * (runningVar[k] as number) + (d.momentum * v * count) / (count - 1);
    }
    affine(d, x, y, scale, shift);
  };

  const evalForward = (): void => {
    for (let k = 0; k < c; k++) {
      const a = (d.weight[k] as number) / Math.sqrt((d.runningVar[k] as number) + d.eps);
      scale[k] = a;
      shift[k] = (d.bias[k] as number) - (d.runningMean[k] as number) * a;
    }
    affine(d, x, y, scale, shift);
  };

  // Backward uses the statistics of one training forward, as autograd would.
  const backward = (): void => {
    const { n, s, channelInner } = d.geometry;
    const dy = d.dy;
    const sDy = sum;
    const sDyXmu = sq;
    sDy.fill(0);
    sDyXmu.fill(0);
    if (channelInner) {
      const rows = size / c;
      for (let r = 0; r < rows; r++) {
        const base = r * c;
        for (let k = 0; k < c; k++) {
          const g = dy[base + k] as number;
          sDy[k] = (sDy[k] as number) + g;
          sDyXmu[k] = (sDyXmu[k] as number) + g * ((x[base + k] as number) - (mean[k] as number));
        }
      }
    } else {
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < c; k++) {
          const base = (i * c + k) * s;
          const m = mean[k] as number;
          let a = 0;
          let b = 0;
          for (let j = 0; j < s; j++) {
            const g = dy[base + j] as number;
            a += g;
            b += g * ((x[base + j] as number) - m);
          }
          sDy[k] = (sDy[k] as number) + a;
          sDyXmu[k] = (sDyXmu[k] as number) + b;
        }
      }
    }
    // dx = w·is·dy − w·is·mean(dy) − (x − mean)·w·is³·mean(dy·(x − mean))
    const k1 = scale;
    const k2 = shift;
    const k3 = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      const is = invstd[k] as number;
      const w = d.weight[k] as number;
      k1[k] = w * is;
      k2[k] = (w * is * (sDy[k] as number)) / count;
      k3[k] = (w * is * is * is * (sDyXmu[k] as number)) / count;
      dw[k] = (sDyXmu[k] as number) * is;
      db[k] = sDy[k] as number;
    }
    if (channelInner) {
      const rows = size / c;
      for (let r = 0; r < rows; r++) {
        const base = r * c;
        for (let k = 0; k < c; k++) {
          const i = base + k;
          dx[i] = (dy[i] as number) * (k1[k] as number) - (k2[k] as number) - ((x[i] as number) - (mean[k] as number)) * (k3[k] as number);
        }
      }
    } else {
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < c; k++) {
          const base = (i * c + k) * s;
          const a = k1[k] as number;
          const b = k2[k] as number;
          const e = k3[k] as number;
          const m = mean[k] as number;
          for (let j = 0; j < s; j++) dx[base + j] = (dy[base + j] as number) * a - b - ((x[base + j] as number) - m) * e;
        }
      }
    }
  };

  const loop =
    (f: () => void) =>
    async (k: number): Promise<null> => {
      for (let i = 0; i < k; i++) f();
      return null;
    };
  const note = 'plain two-pass loop over Float32Array, float64 accumulators';
  return {
    items: [
      {
        impl: 'js-loop',
        op: 'train',
        kind: 'cpu',
        note,
        async verify() {
          y.fill(Number.NaN);
          train();
          return relativeError(y, d.refTrain);
        },
        run: loop(train),
        dispose() {},
      },
      {
        impl: 'js-loop',
        op: 'eval',
        kind: 'cpu',
        note,
        async verify() {
          y.fill(Number.NaN);
          evalForward();
          return relativeError(y, d.refEval);
        },
        run: loop(evalForward),
        dispose() {},
      },
      {
        impl: 'js-loop',
        op: 'backward',
        kind: 'cpu',
        note: `${note}; statistics from one training forward`,
        async verify() {
          train();
          dx.fill(Number.NaN);
          backward();
          return worstError(relativeError(dx, d.refGradInput), relativeError(dw, d.refGradWeight), relativeError(db, d.refGradBias));
        },
        run: loop(backward),
        dispose() {},
      },
    ],
    dispose() {},
  };
}
