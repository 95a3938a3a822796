/**
 * ctx.isFallbackAdapter tells a software adapter (SwiftShader here) from a GPU, so apps and the
 * benchmark can say their WebGPU numbers are CPU emulation. Both backends.
 */
import { describe, expect, it } from 'vitest';
import { createContext } from '../src/index.js';
import { caseCounter, contextFor } from './helpers/backends.js';

const count = caseCounter('context adapter');

describe('ctx.isFallbackAdapter', () => {
  it('follows GPUAdapterInfo.isFallbackAdapter on webgpu (SwiftShader: true), false on cpu', async () => {
    const gpu = await contextFor('webgpu');
    const info = gpu.adapterInfo as (GPUAdapterInfo & { isFallbackAdapter?: boolean }) | null;
    expect(info).not.toBeNull();
    expect(gpu.isFallbackAdapter).toBe(info?.isFallbackAdapter === true);
    // This machine has no GPU: Dawn's only adapter is SwiftShader, a fallback adapter.
    expect(gpu.isFallbackAdapter).toBe(true);
    // A caller's device: the library reads the device's own adapterInfo where it has one.
    const device = gpu.device as GPUDevice & { adapterInfo?: GPUAdapterInfo };
    const wrapped = await createContext({ backend: 'webgpu', device });
    expect(wrapped.isFallbackAdapter).toBe(device.adapterInfo?.isFallbackAdapter === true);
    wrapped.destroy();
    gpu.destroy();
    count('webgpu');
    const cpu = await contextFor('cpu');
    expect(cpu.isFallbackAdapter).toBe(false);
    cpu.destroy();
    count('cpu');
  });

  it("'auto' takes the CPU on a fallback adapter, and says why", async () => {
    const ctx = await createContext({ backend: 'auto' });
    // This machine's only adapter is SwiftShader (see above).
    expect(ctx.backend).toBe('cpu');
    expect(ctx.fallbackReason).toMatch(/fallback .*adapter.*backend: 'webgpu'/);
    ctx.destroy();
    // Asking for WebGPU still gets it.
    const gpu = await createContext({ backend: 'webgpu' });
    expect(gpu.backend).toBe('webgpu');
    gpu.destroy();
    count('cpu');
  });
});
