import type { ResolvedActivation } from '../epilogue.js';

// The fused epilogue's activations and derivatives on the CPU, in float64 (rounded once where the
// caller stores): the same functions as shaders/common/epilogue.wgsl, with float64's own exp and
// tanh, and an erfc accurate to ~1e-13 relative, so the CPU is limited only by its one rounding.

/**
 * erfc(x) in float64: 1 − erf from the Maclaurin series below |x| = 2 (no term cancels enough to
 * matter there), the continued fraction erfc(z) = e^(−z²)/√π · 1/(z + ½/(z + 1/(z + 3/2/(z + …))))
 * from 2 on, which keeps erfc's relative precision in the far tail. Measured against Python's
 * math.erfc on [−6, 26]: relative error < 2e-13.
 */
export function erfc(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 2) {
    let term = z;
    let sum = z;
    const z2 = z * z;
    for (let n = 1; n < 80; n++) {
      term *= -z2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    r = 1 - (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let k = z;
    for (let n = 120; n >= 1; n--) k = z + n / 2 / k;
    r = Math.exp(-z * z) / Math.sqrt(Math.PI) / k;
  }
  return x >= 0 ? r : 2 - r;
}

/** Φ(t), the standard normal CDF. */
function normalCdf(t: number): number {
  return 0.5 * erfc(-t / Math.SQRT2);
}

/** φ(t), the standard normal density. */
function normalPdf(t: number): number {
  return Math.exp(-0.5 * t * t) / Math.sqrt(2 * Math.PI);
}

/** σ(t) without overflow for any t. */
function sigmoid(t: number): number {
  const e = Math.exp(-Math.abs(t));
  return t >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** GELU-tanh's √(2/π) and cubic coefficient (torch's kBeta, kKappa). */
const GELU_BETA = Math.sqrt(2 / Math.PI);
const GELU_KAPPA = 0.044715;

/** act(t) in float64; `w` is the PReLU slope of t's channel (unused otherwise). */
export function cpuActivate(a: ResolvedActivation, t: number, w = 0): number {
  switch (a.kind) {
    case 'relu':
      return t > 0 ? t : 0;
    case 'clamp':
      return t < a.min ? a.min : t > a.max ? a.max : t;
    case 'leakyRelu':
      return t > 0 ? t : t * a.slope;
    case 'silu':
      return t * sigmoid(t);
    case 'gelu':
      return t * normalCdf(t);
    case 'geluTanh':
      // ½(1 + tanh v) = σ(2v): no cancellation for negative v.
      return t * sigmoid(2 * GELU_BETA * (t + GELU_KAPPA * t * t * t));
    case 'hardswish':
      return (t * Math.min(Math.max(t + 3, 0), 6)) / 6;
    case 'sigmoid':
      return sigmoid(t);
    case 'tanh':
      return Math.tanh(t);
    case 'elu':
      return t > 0 ? t : a.slope * Math.expm1(t);
    case 'prelu':
      return t > 0 ? t : w * t;
    default:
      return t;
  }
}

/** dL/dt from dL/dy = g, for the ReLU family from the saved output y (see epilogue.wgsl). */
export function cpuGradFromOutput(a: ResolvedActivation, g: number, y: number): number {
  switch (a.kind) {
    case 'relu':
      return y > 0 ? g : 0;
    case 'clamp':
      // a.min / a.max are float32 numbers (checkActivation), as the saved y is: an exact compare.
      return y > a.min && y < a.max ? g : 0;
    case 'leakyRelu':
      return y > 0 ? g : g * a.slope;
    default:
      return g;
  }
}

/**
 * dL/dt from dL/dy = g and the pre-activation t, for the activations whose backward recomputes t
 * (usesPreActivation); `w` is the PReLU slope of t's channel. torch 1.13's derivatives.
 */
export function cpuGradFromPreActivation(a: ResolvedActivation, g: number, t: number, w = 0): number {
  switch (a.kind) {
    case 'silu': {
      const s = sigmoid(t);
      return g * s * (1 + t * sigmoid(-t));
    }
    case 'gelu':
      return g * (normalCdf(t) + t * normalPdf(t));
    case 'geluTanh': {
      const v2 = 2 * GELU_BETA * (t + GELU_KAPPA * t * t * t);
      // ½(1 + tanh v) = σ(2v) and ½(1 − tanh² v) = 2σ(2v)σ(−2v), neither formed by cancellation.
      return g * (sigmoid(v2) + 2 * t * sigmoid(v2) * sigmoid(-v2) * GELU_BETA * (1 + 3 * GELU_KAPPA * t * t));
    }
    case 'hardswish':
      return t < -3 ? 0 : t <= 3 ? g * (t / 3 + 0.5) : g;
    case 'sigmoid': {
      const s = sigmoid(t);
      return g * s * sigmoid(-t);
    }
    case 'tanh': {
      const h = Math.tanh(t);
      return g * (1 - h * h);
    }
    case 'elu':
      return t > 0 ? g : g * a.slope * Math.exp(t);
    case 'prelu':
      return t > 0 ? g : g * w;
    default:
      return g;
  }
}
