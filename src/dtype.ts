import { ArgumentError } from './errors.js';

// Storage dtypes of tensors and the exact conversions between them. Half-precision values (float16,
// bfloat16) are held as their raw 16-bit patterns (Uint16Array on the CPU, two per u32 word on the
// GPU); arithmetic is always float32 (GPU) or float64 (CPU), and results are rounded once, to
// nearest with ties to even, when stored — torch's c10::Half / c10::BFloat16 rounding.

/**
 * Element type of a tensor's storage. `'float32'` (the default) for everything; `'float16'`
 * (IEEE 754 binary16) and `'bfloat16'` (the upper half of a float32) for activations, halving
 * their memory traffic. Statistics, parameters and running buffers are always float32.
 */
export type DType = 'float32' | 'float16' | 'bfloat16';

/** The dtypes a tensor may have, in a stable order. */
export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];

/** A dtype stored as 16-bit patterns. */
export type HalfDType = Exclude<DType, 'float32'>;

/** True for float16 and bfloat16. */
export function isHalf(dtype: DType): dtype is HalfDType {
  return dtype !== 'float32';
}

/** Bytes per element of `dtype`. */
export function bytesPerElement(dtype: DType): number {
  return dtype === 'float32' ? 4 : 2;
}

/** Bytes of `size` elements of `dtype`, padded to whole 4-byte words (a GPU copy's granularity). */
export function storageBytes(size: number, dtype: DType): number {
  return Math.ceil((size * bytesPerElement(dtype)) / 4) * 4;
}

// Float64 bits for exact exponent extraction (Math.log2 is not exact near powers of two).
const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);
const HIGH = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/** Rounds a non-negative value to an integer, ties to even (exact for values below 2^53). */
function roundHalfEven(q: number): number {
  const f = Math.floor(q);
  const d = q - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The bits of `value` rounded (once, to nearest, ties to even) to a binary format with
 * `expBits` exponent and `mantBits` fraction bits: overflow to ±Inf, gradual underflow to
 * subnormals and ±0, NaN to the positive quiet NaN torch writes.
 */
function roundToBits(value: number, expBits: number, mantBits: number, nanBits: number): number {
  if (Number.isNaN(value)) return nanBits;
  const signBit = 1 << (expBits + mantBits);
  const sign = value < 0 || Object.is(value, -0) ? signBit : 0;
  const a = Math.abs(value);
  const bias = (1 << (expBits - 1)) - 1;
  const infBits = ((1 << expBits) - 1) << mantBits;
  if (a === Number.POSITIVE_INFINITY) return sign | infBits;
  const minNormalExp = 1 - bias;
  f64[0] = a;
  const e = ((f64Words[HIGH] as number) >>> 20) - 1023;
  if (a === 0) return sign;
  if (e < minNormalExp) {
    // Subnormal (or rounds up to the smallest normal, which the bit pattern expresses by itself).
    const q = a * 2 ** (mantBits - minNormalExp);
    return sign | roundHalfEven(q);
  }
  // q in [2^mantBits, 2^(mantBits+1)): the significand with its implicit bit, scaled exactly.
  const q = roundHalfEven(a * 2 ** (mantBits - e));
  let exp = e + bias;
  let mant = q - 2 ** mantBits;
  if (mant === 2 ** mantBits) {
    exp += 1;
    mant = 0;
  }
  if (exp >= (1 << expBits) - 1) return sign | infBits;
  return sign | (exp << mantBits) | mant;
}

/** `value` rounded to the nearest float16 (ties to even), as its 16-bit pattern. */
export function float16Bits(value: number): number {
  return roundToBits(value, 5, 10, 0x7e00);
}

/** `value` rounded to the nearest bfloat16 (ties to even), as its 16-bit pattern. */
export function bfloat16Bits(value: number): number {
  return roundToBits(value, 8, 7, 0x7fc0);
}

/** The value of a float16 bit pattern (exact in float32 and float64). */
export function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

const bf16Scratch = new Uint32Array(1);
const bf16Float = new Float32Array(bf16Scratch.buffer);

/** The value of a bfloat16 bit pattern (exact in float32 and float64). */
export function bfloat16Value(bits: number): number {
  bf16Scratch[0] = (bits & 0xffff) << 16;
  return bf16Float[0] as number;
}

/** The bit pattern of `value` rounded to `dtype` (ties to even). */
export function halfBits(dtype: HalfDType, value: number): number {
  return dtype === 'float16' ? float16Bits(value) : bfloat16Bits(value);
}

/** The value of a `dtype` bit pattern. */
export function halfValue(dtype: HalfDType, bits: number): number {
  return dtype === 'float16' ? float16Value(bits) : bfloat16Value(bits);
}

/** `values` rounded to `dtype`, as bit patterns (into `out` when given). */
export function encodeHalf(dtype: HalfDType, values: ArrayLike<number>, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  const round = dtype === 'float16' ? float16Bits : bfloat16Bits;
  for (let i = 0; i < values.length; i++) out[i] = round(values[i] as number);
  return out;
}

/** The values of `dtype` bit patterns as float32 (exact: both formats are subsets of float32). */
export function decodeHalf(dtype: HalfDType, bits: ArrayLike<number>, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  if (dtype === 'bfloat16') {
    const words = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < bits.length; i++) words[i] = ((bits[i] as number) & 0xffff) << 16;
    return out;
  }
  for (let i = 0; i < bits.length; i++) out[i] = float16Value(bits[i] as number);
  return out;
}

/** True for a runtime's native `Float16Array` (ES2025; Node ≥ 24, recent browsers), by its tag. */
export function isFloat16Array(data: unknown): data is ArrayLike<number> & ArrayBufferView {
  return ArrayBuffer.isView(data) && Object.prototype.toString.call(data) === '[object Float16Array]';
}

/** What the dtype checks read of a tensor (kept structural: this file does not import tensor.ts). */
export interface DTypedTensor {
  readonly dtype: DType;
  readonly label: string;
}

/**
 * Rejects a float16 / bfloat16 tensor where only float32 is taken: per-channel parameters,
 * statistics and running buffers (float32 always, as torch keeps them for half activations), and
 * the inputs of the float32-only operations.
 */
export function checkFloat32(t: DTypedTensor, argument: string, who: string): void {
  if (t.dtype !== 'float32') {
    throw new ArgumentError(
      `${who}: ${argument} (tensor '${t.label}') must have dtype 'float32', got '${t.dtype}' (half precision is for the activations x, y, the gradients and the residual)`,
    );
  }
}

/** Rejects a tensor whose dtype differs from the input's (outputs, gradients and the residual follow x). */
export function checkSameDType(t: DTypedTensor, x: DTypedTensor, argument: string, who: string): void {
  if (t.dtype !== x.dtype) {
    throw new ArgumentError(`${who}: ${argument} (tensor '${t.label}') must have the input's dtype '${x.dtype}', got '${t.dtype}'`);
  }
}
