import type { BatchNormContext } from '../context.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { ACTIVATION_CLAMP, ACTIVATION_LEAKY_RELU, ACTIVATION_NONE, ACTIVATION_RELU, ACTIVATION_SILU } from '../gpu/contracts.js';
import type { Tensor } from '../tensor.js';

// Fused epilogues: y = act(bn(x) + residual), applied where BN writes each value, and
// differentiated inside BN's own backward passes. The kernels' side is shaders/common/epilogue.wgsl,
// the CPU's cpu-epilogue.ts.

/**
 * The activation that ends a fused batch norm.
 * - `'relu'`: max(t, 0).
 * - `'relu6'`: min(max(t, 0), 6), i.e. `{ kind: 'clamp', min: 0, max: 6 }`.
 * - `{ kind: 'clamp', min, max }`: PyTorch's `F.hardtanh(t, min, max)` (min < max, both finite);
 *   its gradient is zero at and beyond the bounds, as hardtanh's.
 * - `{ kind: 'leakyRelu', slope }`: t > 0 ? t : slope·t, slope finite and ≥ 0 (default 0.01, as
 *   `F.leaky_relu`); the string `'leakyRelu'` is the default slope. A negative slope is rejected: the backward reads the mask from the saved output,
 *   as PyTorch's in-place leaky_relu does, which a negative slope makes ambiguous.
 * - `'silu'`: t·σ(t) (`F.silu`); its backward recomputes t from x and the saved statistics.
 */
export type Activation =
  | 'relu'
  | 'relu6'
  | 'silu'
  | 'leakyRelu'
  | { readonly kind: 'clamp'; readonly min: number; readonly max: number }
  | { readonly kind: 'leakyRelu'; readonly slope?: number };

/**
 * What follows the normalization in the same pass: y = activation(bn(x) + residual). Either part
 * may be left out; `{}` is plain batch norm.
 */
export interface Epilogue {
  /** Applied last. Default: none (identity). */
  readonly activation?: Activation | null;
  /**
   * Added to the normalized value before the activation (the ResNet block's skip connection):
   * same shape and layout as the input, this context's tensor, and never the output's memory.
   * Default: none.
   */
  readonly residual?: Tensor | null;
}

/** Activation kinds as the shaders number them: the `ACTIVATION` override's values (src/gpu/contracts.ts). */
export const ACTIVATION_CODE = {
  none: ACTIVATION_NONE,
  relu: ACTIVATION_RELU,
  clamp: ACTIVATION_CLAMP,
  leakyRelu: ACTIVATION_LEAKY_RELU,
  silu: ACTIVATION_SILU,
} as const;

/** A validated activation: its kind and the uniforms the kernels read. */
export interface ResolvedActivation {
  readonly kind: keyof typeof ACTIVATION_CODE;
  /** clamp bounds (relu6: 0, 6) rounded to float32, as the kernels and torch compare; unused otherwise. */
  readonly min: number;
  readonly max: number;
  /** leakyRelu's negative slope; unused otherwise. */
  readonly slope: number;
}

/** A validated epilogue. */
export interface ResolvedEpilogue {
  readonly activation: ResolvedActivation;
  readonly residual: Tensor | null;
}

const NONE: ResolvedActivation = { kind: 'none', min: 0, max: 0, slope: 0 };

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

// Only activations whose parameters all have defaults have a string form; clamp has no default
// bounds, so it is an object only.
const EXPECTED = "'relu', 'relu6', 'silu', 'leakyRelu', { kind: 'clamp', min, max } or { kind: 'leakyRelu', slope? }";

/** torch.nn.functional.leaky_relu's default negative_slope. */
const LEAKY_RELU_DEFAULT_SLOPE = 0.01;

/** Validates an activation spec; `undefined` / `null` mean none. */
export function checkActivation(spec: unknown, who: string): ResolvedActivation {
  if (spec === undefined || spec === null) return NONE;
  if (spec === 'relu') return { ...NONE, kind: 'relu' };
  if (spec === 'relu6') return { ...NONE, kind: 'clamp', min: 0, max: 6 };
  if (spec === 'silu') return { ...NONE, kind: 'silu' };
  if (spec === 'leakyRelu') return { ...NONE, kind: 'leakyRelu', slope: LEAKY_RELU_DEFAULT_SLOPE };
  if (typeof spec === 'object' && !Array.isArray(spec)) {
    const o = spec as Record<string, unknown>;
    if (o['kind'] === 'clamp') {
      const { min, max } = o;
      if (typeof min !== 'number' || typeof max !== 'number' || !Number.isFinite(min) || !Number.isFinite(max) || !(min < max)) {
        throw new ArgumentError(
          `${who}: epilogue.activation clamp needs finite numbers min < max, got min = ${describe(min)}, max = ${describe(max)}`,
        );
      }
      // The kernels get the bounds as f32 uniforms, and torch's hardtanh on a float32 tensor
      // converts them to float too; the CPU path must clamp and mask against the same float32
      // numbers, or an output saturated at fround(0.7) < 0.7 would look unsaturated to it.
      return { ...NONE, kind: 'clamp', min: Math.fround(min), max: Math.fround(max) };
    }
    if (o['kind'] === 'leakyRelu') {
      const slope = o['slope'] === undefined ? LEAKY_RELU_DEFAULT_SLOPE : o['slope'];
      if (typeof slope !== 'number' || !Number.isFinite(slope) || slope < 0) {
        throw new ArgumentError(`${who}: epilogue.activation leakyRelu needs a finite slope ≥ 0, got ${describe(slope)}`);
      }
      return { ...NONE, kind: 'leakyRelu', slope };
    }
  }
  throw new ArgumentError(`${who}: epilogue.activation must be ${EXPECTED}, got ${describe(spec)}`);
}

/**
 * Validates an epilogue against the input `x`: the residual is a live tensor of this context with
 * x's shape and layout (whether it shares memory with an output is checkNoAliasing's job, with the
 * call's other tensors). Returns null for a missing or empty epilogue, so plain batch norm stays on
 * its own path.
 */
export function checkEpilogue(ctx: BatchNormContext, spec: unknown, x: Tensor, who: string): ResolvedEpilogue | null {
  if (spec === undefined || spec === null) return null;
  if (typeof spec !== 'object' || Array.isArray(spec)) {
    throw new ArgumentError(`${who}: epilogue must be an object { activation?, residual? }, got ${describe(spec)}`);
  }
  const o = spec as Record<string, unknown>;
  const unknownKeys = Object.keys(o).filter((k) => k !== 'activation' && k !== 'residual');
  if (unknownKeys.length > 0) {
    throw new ArgumentError(`${who}: epilogue has unknown keys ${unknownKeys.join(', ')} (expected activation, residual)`);
  }
  const activation = checkActivation(o['activation'], who);
  const residual = (o['residual'] ?? null) as Tensor | null;
  if (residual !== null) {
    ctx.assertOwnTensor(residual, 'epilogue.residual');
    if (residual.shape.length !== x.shape.length || residual.shape.some((d, i) => d !== x.shape[i]) || residual.layout !== x.layout) {
      throw new ShapeError(
        `${who}: epilogue.residual must match the input's shape [${x.shape.join(', ')}] and layout '${x.layout}', got [${residual.shape.join(', ')}] '${residual.layout}'`,
      );
    }
  }
  if (activation.kind === 'none' && residual === null) return null;
  return { activation, residual };
}

/** True when the backward reads the mask from the saved output (ReLU family). */
export function masksFromOutput(a: ResolvedActivation): boolean {
  return a.kind === 'relu' || a.kind === 'clamp' || a.kind === 'leakyRelu';
}

/** Override constants of a kernel that applies `e` (empty for plain BN: the pipeline stays shared). */
export function epilogueConstants(e: ResolvedEpilogue | null): Record<string, number> {
  if (!e) return {};
  const constants: Record<string, number> = {};
  if (e.activation.kind !== 'none') constants['ACTIVATION'] = ACTIVATION_CODE[e.activation.kind];
  if (e.residual) constants['RESIDUAL'] = 1;
  return constants;
}

/** The activation's uniforms, by WGSL member name. */
export function activationUniforms(e: ResolvedEpilogue | null): Record<string, number> {
  const a = e?.activation ?? NONE;
  return { activationMin: a.min, activationMax: a.max, activationSlope: a.slope };
}
