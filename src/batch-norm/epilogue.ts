import type { BatchNormContext } from '../context.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { BUFFER_COPY_SRC } from '../gpu/constants.js';
import {
  ACTIVATION_CLAMP,
  ACTIVATION_ELU,
  ACTIVATION_GELU,
  ACTIVATION_GELU_TANH,
  ACTIVATION_HARDSWISH,
  ACTIVATION_LEAKY_RELU,
  ACTIVATION_NONE,
  ACTIVATION_PRELU,
  ACTIVATION_RELU,
  ACTIVATION_SIGMOID,
  ACTIVATION_SILU,
  ACTIVATION_TANH,
} from '../gpu/contracts.js';
import { Tensor } from '../tensor.js';
import { checkShapeAndLayout } from './geometry.js';
import { checkFloat32 } from '../dtype.js';

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
 * - `'silu'`: t·σ(t) (`F.silu`).
 * - `'gelu'`: t·Φ(t), the erf form (`F.gelu(t)`, approximate='none'); `{ kind: 'gelu', approximate: 'tanh' }`
 *   is `F.gelu(t, approximate='tanh')` (`{ kind: 'gelu' }` or `approximate: 'none'` is the erf form).
 * - `'hardswish'`: t·relu6(t + 3)/6 (`F.hardswish`).
 * - `'sigmoid'`: σ(t) (`torch.sigmoid`); `'tanh'`: tanh(t) (`torch.tanh`).
 * - `'elu'` or `{ kind: 'elu', alpha }`: t > 0 ? t : alpha·(exp(t) − 1), alpha finite (default 1.0, as `F.elu`).
 * - `{ kind: 'prelu', weight }`: t > 0 ? t : weight[c]·t (`nn.PReLU(num_parameters=C)`), `weight` a
 *   tensor of this context of shape [C] (one slope per channel) or [1] (one slope for all, as
 *   `nn.PReLU()`); the slope is read when the forward runs. The backward also returns its
 *   gradient, `gradPreluWeight`.
 * The ReLU family's backward masks with the saved output; every other activation's backward
 * recomputes t from x and the saved statistics (and the residual), so the output may be released.
 */
export type Activation =
  | 'relu'
  | 'relu6'
  | 'silu'
  | 'leakyRelu'
  | 'gelu'
  | 'hardswish'
  | 'sigmoid'
  | 'tanh'
  | 'elu'
  | { readonly kind: 'clamp'; readonly min: number; readonly max: number }
  | { readonly kind: 'leakyRelu'; readonly slope?: number }
  | { readonly kind: 'gelu'; readonly approximate?: 'none' | 'tanh' }
  | { readonly kind: 'elu'; readonly alpha?: number }
  | { readonly kind: 'prelu'; readonly weight: Tensor };

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
  gelu: ACTIVATION_GELU,
  geluTanh: ACTIVATION_GELU_TANH,
  hardswish: ACTIVATION_HARDSWISH,
  sigmoid: ACTIVATION_SIGMOID,
  tanh: ACTIVATION_TANH,
  elu: ACTIVATION_ELU,
  prelu: ACTIVATION_PRELU,
} as const;

/** A validated activation: its kind and the uniforms the kernels read. */
export interface ResolvedActivation {
  readonly kind: keyof typeof ACTIVATION_CODE;
  /** clamp bounds (relu6: 0, 6) rounded to float32, as the kernels and torch compare; unused otherwise. */
  readonly min: number;
  readonly max: number;
  /** leakyRelu's negative slope, ELU's alpha; unused otherwise. */
  readonly slope: number;
  /** PReLU's slope tensor, shape [C] or [1] (checked against the input by checkEpilogue); null otherwise. */
  readonly weight: Tensor | null;
}

/** A validated epilogue. */
export interface ResolvedEpilogue {
  readonly activation: ResolvedActivation;
  readonly residual: Tensor | null;
}

const NONE: ResolvedActivation = { kind: 'none', min: 0, max: 0, slope: 0, weight: null };

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
const EXPECTED =
  "'relu', 'relu6', 'silu', 'leakyRelu', 'gelu', 'hardswish', 'sigmoid', 'tanh', 'elu', { kind: 'clamp', min, max }, { kind: 'leakyRelu', slope? }, { kind: 'gelu', approximate? }, { kind: 'elu', alpha? } or { kind: 'prelu', weight }";

/** torch.nn.functional.leaky_relu's default negative_slope. */
const LEAKY_RELU_DEFAULT_SLOPE = 0.01;
/** torch.nn.functional.elu's default alpha. */
const ELU_DEFAULT_ALPHA = 1.0;

/** Activations whose string form is the whole spec (no parameters). */
const PLAIN: Readonly<Record<string, ResolvedActivation['kind']>> = {
  relu: 'relu',
  silu: 'silu',
  gelu: 'gelu',
  hardswish: 'hardswish',
  sigmoid: 'sigmoid',
  tanh: 'tanh',
};

/** Validates an activation spec; `undefined` / `null` mean none. */
export function checkActivation(spec: unknown, who: string): ResolvedActivation {
  if (spec === undefined || spec === null) return NONE;
  if (typeof spec === 'string' && Object.hasOwn(PLAIN, spec)) return { ...NONE, kind: PLAIN[spec] as ResolvedActivation['kind'] };
  if (spec === 'relu6') return { ...NONE, kind: 'clamp', min: 0, max: 6 };
  if (spec === 'leakyRelu') return { ...NONE, kind: 'leakyRelu', slope: LEAKY_RELU_DEFAULT_SLOPE };
  if (spec === 'elu') return { ...NONE, kind: 'elu', slope: ELU_DEFAULT_ALPHA };
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
    if (o['kind'] === 'gelu') {
      checkKeys(o, ['kind', 'approximate'], who);
      const approximate = o['approximate'] ?? 'none';
      if (approximate !== 'none' && approximate !== 'tanh') {
        throw new ArgumentError(
          `${who}: epilogue.activation gelu's approximate must be 'none' or 'tanh' (as F.gelu), got ${describe(approximate)}`,
        );
      }
      return { ...NONE, kind: approximate === 'tanh' ? 'geluTanh' : 'gelu' };
    }
    if (o['kind'] === 'elu') {
      checkKeys(o, ['kind', 'alpha'], who);
      const alpha = o['alpha'] === undefined ? ELU_DEFAULT_ALPHA : o['alpha'];
      if (typeof alpha !== 'number' || !Number.isFinite(alpha)) {
        throw new ArgumentError(`${who}: epilogue.activation elu needs a finite number alpha (default 1.0), got ${describe(alpha)}`);
      }
      return { ...NONE, kind: 'elu', slope: alpha };
    }
    if (o['kind'] === 'prelu') {
      checkKeys(o, ['kind', 'weight'], who);
      const weight = o['weight'];
      if (!(weight instanceof Tensor)) {
        throw new ArgumentError(
          `${who}: epilogue.activation prelu needs { kind: 'prelu', weight } with weight a Tensor of shape [C] or [1], got weight = ${describe(weight)}`,
        );
      }
      return { ...NONE, kind: 'prelu', weight };
    }
  }
  throw new ArgumentError(`${who}: epilogue.activation must be ${EXPECTED}, got ${describe(spec)}`);
}

/** Rejects keys of an activation object other than `allowed` (a misspelt parameter would silently take its default). */
function checkKeys(o: Record<string, unknown>, allowed: readonly string[], who: string): void {
  const extra = Object.keys(o).filter((k) => !allowed.includes(k));
  if (extra.length > 0) {
    throw new ArgumentError(
      `${who}: epilogue.activation ${String(o['kind'])} has unknown keys ${extra.join(', ')} (expected ${allowed.join(', ')})`,
    );
  }
}

/**
 * A PReLU weight: this context's live tensor of shape [C] or [1]; on WebGPU its buffer must allow
 * COPY_SRC, since the slope reaches the kernels by a buffer copy (no storage binding is free).
 */
function checkPreluWeight(ctx: BatchNormContext, w: Tensor, channels: number, who: string): void {
  ctx.assertOwnTensor(w, 'epilogue.activation.weight');
  checkFloat32(w, 'epilogue.activation.weight', who);
  if (w.shape.length !== 1 || (w.shape[0] !== channels && w.shape[0] !== 1)) {
    throw new ShapeError(`${who}: epilogue.activation prelu weight must have shape [${channels}] or [1], got [${w.shape.join(', ')}]`);
  }
  const s = w.storage;
  if (s.kind === 'gpu' && (s.buffer.usage & BUFFER_COPY_SRC) === 0) {
    throw new ArgumentError(`${who}: epilogue.activation prelu weight '${w.label}' must be in a buffer with COPY_SRC usage`);
  }
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
  if (activation.weight) checkPreluWeight(ctx, activation.weight, x.shape[1] ?? 1, who);
  const residual = (o['residual'] ?? null) as Tensor | null;
  if (residual !== null) {
    checkShapeAndLayout(ctx, residual, x, 'epilogue.residual', "the input's", who);
  }
  if (activation.kind === 'none' && residual === null) return null;
  return { activation, residual };
}

/** True when the backward reads the mask from the saved output (ReLU family). */
export function masksFromOutput(a: ResolvedActivation): boolean {
  return a.kind === 'relu' || a.kind === 'clamp' || a.kind === 'leakyRelu';
}

/**
 * True when the backward recomputes the pre-activation t = x·scale + shift (+ residual) from the
 * forward's constants: every activation but the ReLU family (SiLU, GELU, ..., PReLU, whose slope
 * may be negative, so the output's sign does not decide the branch).
 */
export function usesPreActivation(a: ResolvedActivation): boolean {
  return a.kind !== 'none' && !masksFromOutput(a);
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
