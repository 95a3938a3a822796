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

/** True on a little-endian host, where a typed-array view reads the files' byte order as is. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Decodes the first `count` little-endian elements of `dtype` in `bytes`. Floats become float32
 * (bfloat16 and float16 exactly, float64 rounded to nearest), int64 stays exact. The result is a
 * new array, never a view of the file.
 * @throws ModelFileError TRUNCATED when `bytes` holds fewer than `count` elements.
 */
export function decodeElements(bytes: Uint8Array, dtype: FileDtype, count: number): FileTensor['data'] {
  const size = DTYPE_BYTES[dtype];
  if (count * size > bytes.byteLength) {
    throw new ModelFileError('TRUNCATED', `tensor data has ${bytes.byteLength} bytes; ${count} elements of ${dtype} need ${count * size}`);
  }
  // float32 / int32 / int64 in the file's (little-endian) order at an aligned offset: one copy.
  const aligned = LITTLE_ENDIAN && bytes.byteOffset % size === 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'I64': {
      if (aligned) return new BigInt64Array(bytes.buffer, bytes.byteOffset, count).slice();
      const out = new BigInt64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getBigInt64(i * 8, true);
      return out;
    }
    case 'I32': {
      if (aligned) return new Int32Array(bytes.buffer, bytes.byteOffset, count).slice();
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    }
    default: {
      if (dtype === 'F32' && aligned) return new Float32Array(bytes.buffer, bytes.byteOffset, count).slice();
      const out = new Float32Array(count);
      if (dtype === 'F32') for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      else if (dtype === 'F64') for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      else if (dtype === 'F16') for (let i = 0; i < count; i++) out[i] = float16Value(view.getUint16(i * 2, true));
      else for (let i = 0; i < count; i++) out[i] = bfloat16Value(view.getUint16(i * 2, true));
      return out;
    }
  }
}
