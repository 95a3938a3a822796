import { it } from 'vitest';
import { createContext } from '../src/index.js';
it('micro', async () => {
  const ctx = await createContext({ backend: 'webgpu' });
  const dev = ctx.device!;
  const n = 32*64*56*56; const n4 = n/4; const cols = 784, rows = 2048, C = 64;
  const mk = (usage: number) => dev.createBuffer({size: n*4, usage});
  const a = mk(GPUBufferUsage.STORAGE|GPUBufferUsage.COPY_DST), b = mk(GPUBufferUsage.STORAGE);
  const cs = dev.createBuffer({size: 64*16*16, usage: GPUBufferUsage.STORAGE});
  const u = dev.createBuffer({size: 32, usage: GPUBufferUsage.UNIFORM|GPUBufferUsage.COPY_DST});
  const lanes = 64; // multiple of C
  dev.queue.writeBuffer(u, 0, new Uint32Array([n4, rows, cols, lanes, C, 0, 0, 0]));
  const head = `struct P { total: u32, rows: u32, cols: u32, lanes: u32, channels: u32, a: u32, b: u32, c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(3) var<storage, read> cs: array<vec4f>;
`;
  const kernels: Record<string, [string, number]> = {
    copy: [`@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let threads = nw.x * 64u; for (var j = g.x; j < p.total; j += threads) { y[j] = x[j]; } }`, 1024],
    copyfma: [`@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let threads = nw.x * 64u; let k = cs[g.x % 64u]; for (var j = g.x; j < p.total; j += threads) { y[j] = fma(x[j] - vec4f(k.x), vec4f(k.y), vec4f(k.z)); } }`, 1024],
    rowlane: [`@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; if (i >= p.lanes * p.cols) { return; } let col = i % p.cols; var row = i / p.cols; let k = cs[row % p.channels];
  for (; row < p.rows; row += p.lanes) { let j = row * p.cols + col; y[j] = fma(x[j] - vec4f(k.x), vec4f(k.y), vec4f(k.z)); } }`, Math.ceil(lanes*cols/64)],
    rowlane_inc: [`@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; if (i >= p.lanes * p.cols) { return; } let col = i % p.cols; var row = i / p.cols; let k = cs[row % p.channels];
  let step = p.lanes * p.cols; for (var j = row * p.cols + col; j < p.total; j += step) { y[j] = fma(x[j] - vec4f(k.x), vec4f(k.y), vec4f(k.z)); } }`, Math.ceil(lanes*cols/64)],
    rowlane_unroll: [`@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; if (i >= p.lanes * p.cols) { return; } let col = i % p.cols; var row = i / p.cols; let k = cs[row % p.channels];
  let step = p.lanes * p.cols; var j = row * p.cols + col;
  for (; j + step < p.total; j += 2u * step) { let a = x[j]; let b = x[j + step]; y[j] = fma(a - vec4f(k.x), vec4f(k.y), vec4f(k.z)); y[j + step] = fma(b - vec4f(k.x), vec4f(k.y), vec4f(k.z)); }
  if (j < p.total) { y[j] = fma(x[j] - vec4f(k.x), vec4f(k.y), vec4f(k.z)); } }`, Math.ceil(lanes*cols/64)],
  };
  const pipes: Record<string, [GPUComputePipeline, GPUBindGroup, number]> = {};
  for (const [name, [body, wg]] of Object.entries(kernels)) {
    const code = head + body;
    const pipe = dev.createComputePipeline({layout: 'auto', compute: {module: dev.createShaderModule({code}), entryPoint: 'main'}});
    const entries = [{binding:0, resource:{buffer:u}},{binding:1, resource:{buffer:a}},{binding:2, resource:{buffer:b}}, {binding:3, resource:{buffer:cs}}].filter((e) => !(name==='copy' && e.binding===3));
    pipes[name] = [pipe, dev.createBindGroup({layout: pipe.getBindGroupLayout(0), entries}), wg];
  }
  const names = Object.keys(pipes); const res: Record<string, number[]> = {};
  const run = (name: string) => { const [pipe, bg, wg] = pipes[name]!; const e = dev.createCommandEncoder(); const ps = e.beginComputePass(); ps.setPipeline(pipe); ps.setBindGroup(0, bg); ps.dispatchWorkgroups(wg); ps.end(); dev.queue.submit([e.finish()]); };
  for (const nm of names) run(nm); await dev.queue.onSubmittedWorkDone();
  for (let r = 0; r < 7; r++) for (const nm of names) { const t = performance.now(); run(nm); await dev.queue.onSubmittedWorkDone(); (res[nm] ??= []).push(performance.now() - t); }
  for (const nm of names) { const s = res[nm]!.sort((p,q)=>p-q); console.log('K', nm, s[3]!.toFixed(1)); }
});
