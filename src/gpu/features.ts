// Optional WebGPU features the library uses when a device has them. Pure functions of a feature
// set, so the selection is unit-tested with a fake set (test/half-precision.test.ts): the
// adapters this project's CI runs on (SwiftShader) have none of them.

/** The feature that allows `enable f16;` shaders (native float16 arithmetic and storage). */
export const SHADER_F16 = 'shader-f16';

/** What the selection reads of a `GPUSupportedFeatures` (a `ReadonlySet<string>` in practice). */
export interface FeatureSet {
  has(feature: string): boolean;
}

/**
 * Optional features to request for the library's own device: the adapter's `timestamp-query`
 * (GPU timing) and `shader-f16` (native float16 kernels), when it has them.
 */
export function optionalFeatures(adapter: FeatureSet): GPUFeatureName[] {
  const wanted: GPUFeatureName[] = ['timestamp-query', SHADER_F16];
  return wanted.filter((f) => adapter.has(f));
}

/**
 * True when float16 kernels with native `f16` storage may run: the device was created with
 * `shader-f16`. Without it they use the packed path (two float16 values per u32 word, core WGSL,
 * every adapter), which is also the native path's oracle. bfloat16 always takes the packed path:
 * WGSL has no bfloat16 type.
 */
export function useNativeF16(device: FeatureSet, dtype: string): boolean {
  return dtype === 'float16' && device.has(SHADER_F16);
}
