import type { ResolvedActivation } from './epilogue.js';

// The fused epilogue's activations and derivatives on the CPU, in float64 (rounded once where the
// caller stores): the same formulas as shaders/common/epilogue.wgsl.

/** act(t) in float64. */
export function cpuActivate(a: ResolvedActivation, t: number): number {
  switch (a.kind) {
    case 'relu':
      return t > 0 ? t : 0;
    case 'clamp':
      return t < a.min ? a.min : t > a.max ? a.max : t;
    case 'leakyRelu':
      return t > 0 ? t : t * a.slope;
    case 'silu':
      return t / (1 + Math.exp(-t));
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

/** dL/dt of SiLU from dL/dy = g and the pre-activation t. */
export function cpuSiluGrad(g: number, t: number): number {
  const s = 1 / (1 + Math.exp(-t));
  return g * s * (1 + t * (1 - s));
}
