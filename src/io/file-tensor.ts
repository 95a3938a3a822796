/**
 * The tensors a model file holds, after loading: floating-point values of every width become
 * float32, integers stay exact. Shared by the .pt, .safetensors and .onnx readers.
 */
import { ModelFileError } from '../errors.js';
import { bfloat16Value, float16Value } from '../dtype.js';

/** Element types this library reads from model files, named as safetensors names them. */
export type FileDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32';

/**
 * One tensor read from a model file, row-major (C order) in its stored shape.
 * Floating-point dtypes (F64, F16, BF16, F32) arrive as a Float32Array, int64 as a BigInt64Array
 * (exact), int32 as an Int32Array. `dtype` keeps what the file stored.
 */
export interface FileTensor {
  /** The dtype stored in the file (before conversion to float32). */
  readonly dtype: FileDtype;
  /** Shape as stored; `[]` for a scalar such as `num_batches_tracked`. */
  readonly shape: readonly number[];
  readonly data: Float32Array | BigInt64Array | Int32Array;
}

/** Tensors by name, in file order. */
export type TensorMap = ReadonlyMap<string, FileTensor>;

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<FileDtype, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };

/** Bytes per element once decoded: floats become float32 (4), int64 stays 8, int32 4. */
export function decodedBytes(dtype: FileDtype): number {
  return dtype === 'I64' ? 8 : 4;
}

/** Number of elements of a shape. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Decodes `count` little-endian elements of `dtype` from `bytes` at element positions
 * `offset + index(i)` (index defaults to i: contiguous). Floats become float32 (bfloat16 and
 * float16 exactly, float64 rounded to nearest), int64 stays exact.
 */
export function decodeElements(
  bytes: Uint8Array,
  dtype: FileDtype,
  count: number,
  index: (i: number) => number = (i) => i,
): FileTensor['data'] {
  const size = DTYPE_BYTES[dtype];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = (i: number): number => {
    const byte = index(i) * size;
    if (byte < 0 || byte + size > bytes.byteLength) {
      throw new ModelFileError('TRUNCATED', `tensor data has ${bytes.byteLength} bytes; element ${i} (${dtype}) lies at byte ${byte}`);
    }
    return byte;
  };
  switch (dtype) {
    case 'I64': {
      const out = new BigInt64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getBigInt64(at(i), true);
      return out;
    }
    case 'I32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(at(i), true);
      return out;
    }
    default: {
      const out = new Float32Array(count);
      if (dtype === 'F32') for (let i = 0; i < count; i++) out[i] = view.getFloat32(at(i), true);
      else if (dtype === 'F64') for (let i = 0; i < count; i++) out[i] = view.getFloat64(at(i), true);
      else if (dtype === 'F16') for (let i = 0; i < count; i++) out[i] = float16Value(view.getUint16(at(i), true));
      else for (let i = 0; i < count; i++) out[i] = bfloat16Value(view.getUint16(at(i), true));
      return out;
    }
  }
}
