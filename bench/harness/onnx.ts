/**
 * A one-node ONNX model, `Y = BatchNormalization(X, scale, B, input_mean, input_var)`, written as
 * protobuf bytes by a minimal encoder (varints, length-delimited fields, fixed32 floats), so the
 * benchmark needs neither a model file nor the onnx package. Field numbers are those of
 * onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
 * ValueInfoProto, TypeProto, TensorShapeProto, OperatorSetIdProto).
 */

/** Protobuf writer: fields are appended in call order. */
class Writer {
  readonly #bytes: number[] = [];

  #varint(value: number): void {
    let v = value;
    while (v >= 0x80) {
      this.#bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.#bytes.push(v);
  }

  #tag(field: number, wireType: 0 | 2 | 5): void {
    this.#varint(field * 8 + wireType);
  }

  /** int32/int64/enum (non-negative values only, which is all a model needs here). */
  int(field: number, value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`protobuf: unsupported varint ${value}`);
    this.#tag(field, 0);
    this.#varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.#tag(field, 5);
    const b = new Uint8Array(new Float32Array([value]).buffer);
    this.#bytes.push(...b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.#tag(field, 2);
    this.#varint(value.length);
    for (const b of value) this.#bytes.push(b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTRIBUTE_FLOAT = 1; // AttributeProto.AttributeType.FLOAT

function valueInfo(w: Writer, name: string, dims: readonly number[]): void {
  w.string(1, name).message(2, (type) =>
    type.message(1, (tensor) =>
      tensor.int(1, FLOAT).message(2, (shape) => {
        for (const d of dims) shape.message(1, (dim) => dim.int(1, d));
      }),
    ),
  );
}

function initializer(w: Writer, name: string, values: Float32Array): void {
  w.int(1, values.length)
    .int(2, FLOAT)
    .string(8, name)
    .bytes(9, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}

export interface BatchNormModelSpec {
  /** Input dims: (N, C, ...) with the channel at axis 1, as ONNX requires. */
  readonly dims: readonly number[];
  readonly scale: Float32Array;
  readonly bias: Float32Array;
  readonly mean: Float32Array;
  readonly variance: Float32Array;
  readonly epsilon: number;
}

/** Inference-mode BatchNormalization (opset 15), input `X`, output `Y`, parameters as initializers. */
export function batchNormModel(spec: BatchNormModelSpec): Uint8Array {
  const m = new Writer();
  m.int(1, 8); // ir_version
  m.string(2, 'webgpu-batchnorm-bench'); // producer_name
  m.message(7, (graph) => {
    graph.message(1, (node) => {
      for (const input of ['X', 'scale', 'B', 'input_mean', 'input_var']) node.string(1, input);
      node.string(2, 'Y').string(3, 'bn').string(4, 'BatchNormalization');
      node.message(5, (attr) => attr.string(1, 'epsilon').float(2, spec.epsilon).int(20, ATTRIBUTE_FLOAT));
    });
    graph.string(2, 'batchnorm');
    graph.message(5, (t) => initializer(t, 'scale', spec.scale));
    graph.message(5, (t) => initializer(t, 'B', spec.bias));
    graph.message(5, (t) => initializer(t, 'input_mean', spec.mean));
    graph.message(5, (t) => initializer(t, 'input_var', spec.variance));
    graph.message(11, (v) => valueInfo(v, 'X', spec.dims));
    graph.message(12, (v) => valueInfo(v, 'Y', spec.dims));
  });
  m.message(8, (opset) => opset.string(1, '').int(2, 15)); // opset_import
  return m.finish();
}
