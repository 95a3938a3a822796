// WebGPU's flag values, spelled out: in Node the GPUBufferUsage/GPUMapMode/GPUShaderStage globals
// exist only after Dawn's `globals` are installed, and a caller-supplied device may come without them.
export const BUFFER_MAP_READ = 0x0001;
export const BUFFER_COPY_SRC = 0x0004;
export const BUFFER_COPY_DST = 0x0008;
export const BUFFER_UNIFORM = 0x0040;
export const BUFFER_STORAGE = 0x0080;
export const BUFFER_INDIRECT = 0x0100;
export const MAP_MODE_READ = 0x0001;
export const SHADER_STAGE_COMPUTE = 0x4;

/** Usage of every tensor buffer the library allocates. */
export const TENSOR_USAGE = BUFFER_STORAGE | BUFFER_COPY_SRC | BUFFER_COPY_DST;
