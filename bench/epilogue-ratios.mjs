#!/usr/bin/env node
/**
 * Focused benchmark of the fused epilogues: plain BN, fused BN+ReLU / BN+add+ReLU, and the same
 * work unfused (plain BN then the separate passes of bench/harness/unfused-epilogue.wgsl), for
 * training, evaluation and backward, on Dawn in Node against the built library (dist/).
 *
 * The harness rows (`npm run bench:node`) time each implementation in rounds seconds apart; on a
 * shared, noisy machine that blurs 10 % differences. Here the variants of one op run back to back
 * in short samples (K iterations, one submit, queue drained), in an order rotated every round, and
 * each fused/unfused time is divided by the plain BN time of the same round: the reported ratio is
 * the median of those per-round ratios, so load drift cancels.
 *
 *   npm run build && node bench/epilogue-ratios.mjs [--rounds 15] [--target-ms 120] [--case 8x256x28x28:cf ...]
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const o = { rounds: 15, targetMs: 120, cases: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--rounds') o.rounds = Number(next());
    else if (a === '--target-ms') o.targetMs = Number(next());
    else if (a === '--case') {
      const [dims, lay = 'cf'] = next().split(':');
      o.cases.push({ shape: dims.split('x').map(Number), layout: lay === 'cl' ? 'channels_last' : 'channels_first' });
    } else throw new Error(`unknown option ${a} (--rounds N, --target-ms MS, --case NxCx..:cf|cl)`);
  }
  if (o.cases.length === 0) {
    o.cases = [
      { shape: [8, 256, 28, 28], layout: 'channels_first' },
      { shape: [8, 256, 28, 28], layout: 'channels_last' },
    ];
  }
  return o;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const USAGE = { STORAGE: 0x80, COPY_SRC: 0x04, COPY_DST: 0x08, UNIFORM: 0x40 };

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  // As bench/node/main.ts: Dawn reads these when it creates its Vulkan instance (SwiftShader here).
  process.env.VK_ICD_FILENAMES ??= '/usr/lib/chromium/vk_swiftshader_icd.json';
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const lib = await import(pathToFileURL(join(ROOT, 'dist', 'index.js')).href);
  const dawnModule = await import('webgpu');
  const dawn = 'create' in dawnModule ? dawnModule : dawnModule.default;
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxBufferSize: adapter.limits.maxBufferSize,
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    },
  });
  const ctx = await lib.createContext({ backend: 'webgpu', device });
  const fallback = adapter.info?.isFallbackAdapter === true;
  console.log(
    `adapter: ${adapter.info?.description || adapter.info?.vendor || '?'}${fallback ? ' (fallback adapter)' : ''}; rounds ${opts.rounds}, ~${opts.targetMs} ms per sample`,
  );

  const source = readFileSync(join(ROOT, 'bench', 'harness', 'unfused-epilogue.wgsl'), 'utf8');
  const module = device.createShaderModule({ label: 'bench.ratios.unfused', code: source });
  const pipelines = {};
  for (const entry of ['relu', 'add', 'relu_backward']) {
    pipelines[entry] = device.createComputePipeline({
      label: `bench.ratios.${entry}`,
      layout: 'auto',
      compute: { module, entryPoint: entry, constants: { WORKGROUP: 64, ITEMS: 16, BLOCKED: fallback ? 1 : 0 } },
    });
  }

  for (const { shape, layout } of opts.cases) {
    const size = shape.reduce((a, b) => a * b, 1);
    const c = shape[1];
    const bytes = size * 4;
    const buffers = [];
    const buffer = (label, n = size, fill) => {
      const b = device.createBuffer({
        label: `bench.ratios.${label}`,
        size: n * 4,
        usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST,
      });
      if (fill) device.queue.writeBuffer(b, 0, fill);
      buffers.push(b);
      return b;
    };
    const wave = (k) => new Float32Array(size).map((_, i) => Math.sin(i * k) * 1.5 + 0.2);
    const tensor = (b, s = shape, l = layout) => ctx.tensorFromBuffer(b, s, { layout: l });
    const x = tensor(buffer('x', size, wave(0.37)));
    const dy = tensor(buffer('dy', size, wave(0.11)));
    const zBuffer = buffer('z', size, wave(0.23));
    const z = tensor(zBuffer);
    const len = size / 4;
    const groups = Math.ceil(len / (64 * 16));
    const gx = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
    const gy = Math.ceil(groups / gx);
    const uniform = device.createBuffer({ label: 'bench.ratios.params', size: 16, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    device.queue.writeBuffer(uniform, 0, new Uint32Array([len, gx * gy * 64, gx, 0]));
    const pass = (entry, a, b, dst) => {
      const entries = [
        { binding: 0, resource: { buffer: uniform } },
        { binding: 1, resource: { buffer: a, size: bytes } },
        { binding: 3, resource: { buffer: dst, size: bytes } },
      ];
      if (b) entries.push({ binding: 2, resource: { buffer: b, size: bytes } });
      const group = device.createBindGroup({ layout: pipelines[entry].getBindGroupLayout(0), entries });
      return (e) => {
        const p = e.beginComputePass();
        p.setPipeline(pipelines[entry]);
        p.setBindGroup(0, group);
        p.dispatchWorkgroups(gx, gy);
        p.end();
      };
    };
    const Module = shape.length === 5 ? lib.BatchNorm3d : shape.length === 4 ? lib.BatchNorm2d : lib.BatchNorm1d;
    const modules = [];
    const bnFor = (training) => {
      const bn = new Module(ctx, c).train(training);
      modules.push(bn);
      return bn;
    };

    // Variants per op: [name, record(encoder)]. Backward variants run their forward once first.
    const ops = {};
    for (const training of [true, false]) {
      const op = training ? 'train' : 'eval';
      const y = tensor(buffer(`${op}.y`));
      const sumBuffer = buffer(`${op}.sum`);
      const outBuffer = buffer(`${op}.out`);
      const yBuffer = y.buffer;
      const plain = bnFor(training);
      const relu = bnFor(training);
      const addRelu = bnFor(training);
      const reluPass = pass('relu', yBuffer, null, outBuffer);
      const reluAfterAdd = pass('relu', sumBuffer, null, outBuffer);
      const addPass = pass('add', yBuffer, zBuffer, sumBuffer);
      ops[op] = [
        ['plain', (e) => plain.encodeForward(e, x, y)],
        ['fused relu', (e) => relu.encodeForward(e, x, y, { epilogue: { activation: 'relu' } })],
        [
          'unfused relu',
          (e) => {
            plain.encodeForward(e, x, y);
            reluPass(e);
          },
        ],
        ['fused add+relu', (e) => addRelu.encodeForward(e, x, y, { epilogue: { activation: 'relu', residual: z } })],
        [
          'unfused add+relu',
          (e) => {
            plain.encodeForward(e, x, y);
            addPass(e);
            reluAfterAdd(e);
          },
        ],
      ];
    }
    {
      const mk = (label) => tensor(buffer(`backward.${label}`));
      const [yPlain, yRelu, yAdd, yUnfused, gi, gr, masked] = ['yPlain', 'yRelu', 'yAdd', 'yUnfused', 'gi', 'gr', 'masked'].map(mk);
      const gw = tensor(buffer('backward.gw', c), [c], 'channels_first');
      const gb = tensor(buffer('backward.gb', c), [c], 'channels_first');
      const plain = bnFor(true);
      const relu = bnFor(true);
      const addRelu = bnFor(true);
      const unfused = bnFor(true);
      const reluBackward = pass('relu_backward', dy.buffer, yUnfused.buffer, masked.buffer);
      const setup = device.createCommandEncoder();
      plain.encodeForward(setup, x, yPlain);
      relu.encodeForward(setup, x, yRelu, { epilogue: { activation: 'relu' } });
      addRelu.encodeForward(setup, x, yAdd, { epilogue: { activation: 'relu', residual: z } });
      unfused.encodeForward(setup, x, yUnfused, { epilogue: { activation: 'relu' } });
      device.queue.submit([setup.finish()]);
      const grads = { gradInput: gi, gradWeight: gw, gradBias: gb };
      ops.backward = [
        ['plain', (e) => plain.encodeBackward(e, dy, grads)],
        ['fused relu', (e) => relu.encodeBackward(e, dy, grads)],
        [
          'unfused relu',
          (e) => {
            reluBackward(e);
            unfused.encodeBackward(e, masked, grads);
          },
        ],
        ['fused add+relu', (e) => addRelu.encodeBackward(e, dy, { ...grads, gradResidual: gr })],
        // Unfused add: autograd hands ReLU's gradient to both branches, so it costs nothing more.
        [
          'unfused add+relu',
          (e) => {
            reluBackward(e);
            unfused.encodeBackward(e, masked, grads);
          },
        ],
      ];
    }

    const sample = async (record, k) => {
      const t0 = performance.now();
      const e = device.createCommandEncoder();
      for (let i = 0; i < k; i++) record(e);
      device.queue.submit([e.finish()]);
      await device.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / k;
    };
    console.log(`\n[${shape.join(', ')}] ${layout} (${(bytes / 2 ** 20).toFixed(1)} MiB per tensor)`);
    for (const [op, variants] of Object.entries(ops)) {
      // Calibrate K on the plain variant (warm-up compiles every pipeline first).
      for (const [, record] of variants) await sample(record, 1);
      const one = await sample(variants[0][1], 1);
      const k = Math.max(1, Math.min(64, Math.round(opts.targetMs / Math.max(one, 0.01))));
      const times = variants.map(() => []);
      const ratios = variants.map(() => []);
      for (let r = 0; r < opts.rounds; r++) {
        const order = variants.map((_, i) => (i + r) % variants.length);
        const t = [];
        for (const i of order) t[i] = await sample(variants[i][1], k);
        variants.forEach((_, i) => {
          times[i].push(t[i]);
          ratios[i].push(t[i] / t[0]);
        });
      }
      for (const [i, [name]] of variants.entries()) {
        const ratio = i === 0 ? '' : `  ${median(ratios[i]).toFixed(2)}x plain`;
        console.log(`  ${op.padEnd(8)} ${name.padEnd(17)} ${median(times[i]).toFixed(2).padStart(8)} ms${ratio}`);
      }
      const fusedVsUnfused = (f, u) => median(ratios[u].map((v, j) => v / ratios[f][j]));
      console.log(
        `  ${op.padEnd(8)} unfused / fused:  relu ${fusedVsUnfused(1, 2).toFixed(2)}x, add+relu ${fusedVsUnfused(3, 4).toFixed(2)}x  (K = ${k}, ${opts.rounds} rounds)`,
      );
    }
    await ctx.sync();
    for (const m of modules) m.destroy();
    for (const b of buffers) b.destroy();
    uniform.destroy();
  }
  ctx.destroy();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
