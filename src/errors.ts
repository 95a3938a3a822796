/**
 * Error classes thrown by webgpu-batchnorm. Every one is thrown synchronously, before any GPU work
 * is encoded or any state is touched, unless its doc says otherwise (device loss and GPU validation
 * errors can only be observed after the fact).
 *
 * All extend {@link BatchNormError}, so `catch (e) { if (e instanceof BatchNormError) ... }` catches
 * everything this library throws on purpose.
 */

/** Base class of every error this library throws on purpose. */
export class BatchNormError extends Error {
  /** A stable machine-readable code, e.g. `'INVALID_SHAPE'`. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Wrong rank, channel count mismatch, empty tensor, or a data length that does not match the shape. */
export class ShapeError extends BatchNormError {
  constructor(message: string) {
    super('INVALID_SHAPE', message);
  }
}

/**
 * Training-mode batch norm over a single value per channel (N × spatial == 1). PyTorch raises
 * `ValueError: Expected more than 1 value per channel when training`.
 */
export class InsufficientValuesError extends BatchNormError {
  constructor(message: string) {
    super('INSUFFICIENT_VALUES', message);
  }
}

/** An option or argument outside its allowed range or of the wrong kind (eps, momentum, layout, ...). */
export class ArgumentError extends BatchNormError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** A tensor or buffer that belongs to another context (or another GPUDevice) was passed in. */
export class ContextMismatchError extends BatchNormError {
  constructor(message: string) {
    super('CONTEXT_MISMATCH', message);
  }
}

/** A tensor, module or context was used after `destroy()`. */
export class DestroyedError extends BatchNormError {
  constructor(message: string) {
    super('DESTROYED', message);
  }
}

/** `loadStateDict` got missing or unexpected keys, or values of the wrong length or type. */
export class StateDictError extends BatchNormError {
  constructor(message: string) {
    super('INVALID_STATE_DICT', message);
  }
}

/** A tensor larger than the device can hold in one buffer or one storage binding. */
export class DeviceLimitError extends BatchNormError {
  constructor(message: string) {
    super('DEVICE_LIMIT', message);
  }
}

/** `backend: 'webgpu'` was asked for but no WebGPU adapter or device could be obtained. */
export class WebGPUUnavailableError extends BatchNormError {
  constructor(message: string) {
    super('WEBGPU_UNAVAILABLE', message);
  }
}

/** The GPUDevice was lost; every later call on its context throws this. */
export class DeviceLostError extends BatchNormError {
  constructor(message: string) {
    super('DEVICE_LOST', message);
  }
}

/**
 * WebGPU reported a validation or out-of-memory error for work this library submitted. Surfaces
 * from the next `await` on that work (`tensor.read()`, `ctx.sync()`, `stateDict()`).
 */
export class GPUOperationError extends BatchNormError {
  constructor(message: string) {
    super('GPU_ERROR', message);
  }
}

/** `backward` without a matching forward, or after the module changed since that forward. */
export class BackwardStateError extends BatchNormError {
  constructor(message: string) {
    super('BACKWARD_STATE', message);
  }
}

/** Why a model file was refused; stable, for `switch` statements. See {@link ModelFileError}. */
export type ModelFileErrorReason =
  /** The bytes end before the format says they do (truncated download, cut-off zip). */
  | 'TRUNCATED'
  /** Not the format asked for (no zip signature, no safetensors header, not an ONNX protobuf). */
  | 'BAD_MAGIC'
  /** Structurally invalid: corrupt zip, malformed JSON header, inconsistent pickle, bad protobuf. */
  | 'CORRUPT'
  /** PyTorch's pre-1.6 (non-zip) serialization, which this library does not read. */
  | 'LEGACY_FORMAT'
  /** A pickle names a Python global outside the allowlist (e.g. `os.system`, `builtins.eval`). */
  | 'FORBIDDEN_GLOBAL'
  /** A pickle opcode outside the subset that `torch.save` state dicts use. */
  | 'UNSUPPORTED_OPCODE'
  /** A tensor of a dtype that cannot become float32 or an exact integer (uint8, complex, strings...). */
  | 'UNSUPPORTED_DTYPE'
  /** ONNX tensors stored outside the model file (external data). */
  | 'EXTERNAL_DATA'
  /** The named layer, node or tensor is not in the file. */
  | 'NOT_FOUND'
  /**
   * A read limit was reached (bytes to inflate or allocate, pickle size, number of tensors or
   * pickle values); the message names the limit and the read option that raises it (`maxBytes`,
   * `maxPickleBytes`, `maxEntries`). Checked before the allocation, so a small hostile file costs
   * no memory.
   */
  | 'LIMIT'
  /** Containers nested deeper than a state dict can be (1000 levels, Python's recursion limit). */
  | 'TOO_DEEP'
  /** A pickled dict that contains itself (directly or through its children). */
  | 'CYCLE'
  /** A tensor shape, stride or storage offset that is negative, not an integer or reaches outside its storage. */
  | 'BAD_SHAPE'
  /** Two safetensors entries share bytes (overlapping `data_offsets`), which the reference reader refuses. */
  | 'OVERLAP';

/**
 * A model file (.pt, .safetensors, .onnx) was refused. Nothing from it was loaded or run, and no
 * module state changed. `reason` says why in a stable form; the message names the file part.
 */
export class ModelFileError extends BatchNormError {
  /** Why the file was refused. */
  readonly reason: ModelFileErrorReason;
  constructor(reason: ModelFileErrorReason, message: string) {
    super('INVALID_MODEL_FILE', message);
    this.reason = reason;
  }
}
