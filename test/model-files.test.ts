/**
 * Model files: .pt (torch.save zip + allowlist unpickler), .safetensors (read and write) and .onnx
 * (nodes, BatchNormalization initializers and attributes), against values PyTorch wrote
 * (test/torch/generate_model_files.py → test/fixtures/models/), and every kind of bad file, built
 * on purpose, refused with a typed error that loads nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchNorm1d,
  BatchNorm2d,
  ModelFileError,
  ShapeError,
  StateDictError,
  type BatchNormContext,
  type ModelFileErrorReason,
} from '../src/index.js';
import {
  detectModelFormat,
  findBatchNorm,
  loadBatchNorm,
  parseModelFile,
  readModelFile,
  stateDictTensors,
  writeSafetensors,
  type FileTensor,
} from '../src/io/index.js';
import { momentumFromOnnx } from '../src/io/model-file.js';
import { readModelFileFromPath } from '../src/node/index.js';
import { BACKENDS, caseCounter, contextFor, rng } from './helpers/backends.js';
import { torchAvailable } from './helpers/torch-reference.js';

const count = caseCounter('model-files');
const DIR = new URL('./fixtures/models/', import.meta.url);
const bytesOf = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, DIR)));

interface ExpectedFloat {
  shape: number[];
  values: number[];
  dtype?: string;
}
interface ExpectedInt {
  shape: number[];
  int: string;
  dtype?: string;
}
type ExpectedTensor = ExpectedFloat | ExpectedInt;
interface ExpectedOnnxBn {
  weight: number[];
  bias: number[];
  running_mean: number[];
  running_var: number[];
  eps: number;
  momentum: number;
}
const expected = JSON.parse(readFileSync(new URL('expected.json', DIR), 'utf8')) as {
  pt: Record<string, Record<string, ExpectedTensor>>;
  safetensors: Record<string, ExpectedTensor>;
  onnx: Record<string, ExpectedOnnxBn>;
};

/** Every float dtype converts to float32 exactly as Math.fround does (f16/bf16 exactly, f64 rounded). */
function expectTensor(actual: FileTensor | undefined, want: ExpectedTensor, name: string): void {
  expect(actual, name).toBeDefined();
  if (!actual) return;
  expect([...actual.shape], `${name} shape`).toEqual(want.shape);
  if ('int' in want) {
    expect(actual.data, `${name} dtype`).toBeInstanceOf(BigInt64Array);
    expect(actual.data[0], `${name} exact int64`).toBe(BigInt(want.int));
    return;
  }
  expect(actual.data, `${name} is float32`).toBeInstanceOf(Float32Array);
  // Equality, not a tolerance: each stored value has exactly one float32 image.
  expect(Array.from(actual.data as Float32Array), name).toEqual(want.values.map((v) => Math.fround(v)));
}

function refused(run: () => unknown, reason: ModelFileErrorReason, message?: RegExp): ModelFileError {
  let caught: unknown = null;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ModelFileError);
  const e = caught as ModelFileError;
  expect(e.code).toBe('INVALID_MODEL_FILE');
  expect(e.reason, e.message).toBe(reason);
  if (message) expect(e.message).toMatch(message);
  return e;
}

describe('.pt (torch.save zip) reader', () => {
  it.each(['f32', 'f16', 'bf16', 'f64'])('reads every tensor of state_%s.pt exactly, strided views and int64 included', (tag) => {
    const file = parseModelFile(bytesOf(`state_${tag}.pt`));
    expect(file.format).toBe('pytorch');
    const want = expected.pt[tag] ?? {};
    expect([...file.tensors.keys()]).toEqual(Object.keys(want));
    for (const [name, w] of Object.entries(want)) expectTensor(file.tensors.get(name), w, name);
    expect(file.tensors.get('head.norm.num_batches_tracked')?.data[0]).toBe(2n ** 40n + 3n);
    expect(file.batchNorms.map((l) => [l.name, l.numFeatures, l.affine])).toEqual([
      ['bn1', 4, true],
      ['layer1.0.bn1', 4, true],
      ['head.norm', 4, false],
    ]);
  });

  it('refuses a pickle that would call os.system, naming the global, and returns nothing', () => {
    refused(() => parseModelFile(bytesOf('evil_os_system.pt')), 'FORBIDDEN_GLOBAL', /'posix\.system'.*not allowed/);
  });

  it('refuses a pickle that would call builtins.eval', () => {
    refused(() => parseModelFile(bytesOf('evil_eval.pt')), 'FORBIDDEN_GLOBAL', /'(__builtin__|builtins)\.eval'/);
  });

  it('refuses opcodes outside the state-dict subset (INST, a hand-built pickle)', () => {
    // PROTO 2, then INST 'os\nsystem\n' (protocol-0 object construction), MARK..., STOP.
    const pickle = new Uint8Array([0x80, 0x02, 0x28, ...strToU8('S'), 0x2e]);
    const zip = zipSync({ 'archive/data.pkl': pickle, 'archive/version': strToU8('3\n') }, { level: 0 });
    refused(() => parseModelFile(zip), 'UNSUPPORTED_OPCODE', /opcode 0x53/);
    const inst = new Uint8Array([0x80, 0x02, 0x28, ...strToU8('ios\nsystem\n'), 0x2e]);
    refused(() => parseModelFile(zipSync({ 'archive/data.pkl': inst }, { level: 0 })), 'UNSUPPORTED_OPCODE', /0x69/);
  });

  it('refuses unsupported dtypes, the legacy format, truncated archives and wrong magic', () => {
    refused(() => parseModelFile(bytesOf('uint8.pt')), 'UNSUPPORTED_DTYPE', /ByteStorage/);
    refused(() => parseModelFile(bytesOf('legacy.pt')), 'LEGACY_FORMAT', /legacy \(pre-1\.6, non-zip\)/);
    const good = bytesOf('state_f32.pt');
    for (const keep of [0.5, 0.95]) refused(() => parseModelFile(good.subarray(0, Math.floor(good.length * keep))), 'TRUNCATED');
    refused(() => parseModelFile(strToU8('GIF89a not a checkpoint'), { format: 'pytorch' }), 'BAD_MAGIC', /47 49 46 38/);
    refused(() => parseModelFile(zipSync({ 'readme.txt': strToU8('hi') })), 'CORRUPT', /data\.pkl/);
  });
});

describe('.safetensors', () => {
  it('reads the hand-written file: F16, BF16, F64 → float32 exactly, I64 exact', () => {
    const file = parseModelFile(bytesOf('state.safetensors'));
    expect(file.format).toBe('safetensors');
    for (const [name, w] of Object.entries(expected.safetensors)) {
      expectTensor(file.tensors.get(name), w, name);
      expect(file.tensors.get(name)?.dtype).toBe(w.dtype);
    }
    expect(file.batchNorms.map((l) => l.name)).toEqual(['bn1', 'layer1.0.bn1', 'head.norm']);
  });

  it('writes files it reads back bit for bit, with metadata, 8-byte aligned data', () => {
    const tensors = new Map([
      ['a.weight', { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 1e-30, 0, -0]) }],
      ['a.double', { shape: [2], data: Float64Array.from([Math.PI, -1e300]) }],
      ['a.count', { shape: [], data: BigInt64Array.from([2n ** 62n + 1n]) }],
      ['a.i32', { shape: [1], data: Int32Array.from([-7]) }],
    ]);
    const bytes = writeSafetensors(tensors, { metadata: { format: 'pt' } });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    const back = parseModelFile(bytes).tensors;
    expect(Array.from((back.get('a.weight')?.data ?? []) as Float32Array)).toEqual([1, -2, 3.5, Math.fround(1e-30), 0, -0]);
    expect(Array.from((back.get('a.double')?.data ?? []) as Float32Array)).toEqual([Math.fround(Math.PI), -Infinity]);
    expect(back.get('a.count')?.data[0]).toBe(2n ** 62n + 1n);
    expect(back.get('a.i32')?.data[0]).toBe(-7);
  });

  it('refuses unsupported dtypes, truncation and non-safetensors bytes', () => {
    const header = (h: object, dataBytes: number): Uint8Array => {
      const json = strToU8(JSON.stringify(h));
      const out = new Uint8Array(8 + json.length + dataBytes);
      new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
      out.set(json, 8);
      return out;
    };
    refused(() => parseModelFile(header({ x: { dtype: 'U8', shape: [4], data_offsets: [0, 4] } }, 4)), 'UNSUPPORTED_DTYPE', /U8/);
    refused(() => parseModelFile(header({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8)), 'TRUNCATED');
    refused(() => parseModelFile(header({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, 16)), 'CORRUPT', /needs 12/);
    const good = bytesOf('state.safetensors');
    refused(() => parseModelFile(good.subarray(0, 100), { format: 'safetensors' }), 'TRUNCATED');
    refused(() => parseModelFile(strToU8('not a safetensors file at all'), { format: 'safetensors' }), 'BAD_MAGIC');
  });

  it.runIf(torchAvailable())('round-trips a trained BatchNorm2d through Python (hand-written reader) into torch', async () => {
    const ctx = await contextFor('cpu');
    const bn = new BatchNorm2d(ctx, 3, { momentum: 0.3 });
    bn.forward(
      ctx.tensor(
        Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => Math.sin(i * 1.7) * 3 + i * 0.1),
        [2, 3, 2, 2],
      ),
    ).destroy();
    const sd = await bn.stateDict();
    const dir = mkdtempSync(join(tmpdir(), 'bn-st-'));
    try {
      const path = join(dir, 'bn.safetensors');
      writeFileSync(path, writeSafetensors(stateDictTensors(sd, 'features.1.')));
      const script = `
import json, struct, sys, torch
TY = {'F32': torch.float32, 'I64': torch.int64}
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
sd = {}
for name, e in header.items():
    b, e2 = e['data_offsets']
    sd[name[len('features.1.'):]] = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + e2]), dtype=TY[e['dtype']]).reshape(e['shape'])
m = torch.nn.BatchNorm2d(3)
m.load_state_dict(sd, strict=True)
print(json.dumps({k: (v.double().tolist() if v.is_floating_point() else int(v)) for k, v in m.state_dict().items()}))
`;
      const run = spawnSync('/usr/bin/python3', ['-c', script, path], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      const back = JSON.parse(run.stdout) as Record<string, number[] | number>;
      expect(back['weight']).toEqual(Array.from(sd.weight ?? []));
      expect(back['running_mean']).toEqual(Array.from(sd.running_mean ?? []));
      expect(back['running_var']).toEqual(Array.from(sd.running_var ?? []));
      expect(back['num_batches_tracked']).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      ctx.destroy();
    }
  });
});

/** A tiny ONNX ModelProto written field by field, for encodings torch.onnx.export does not produce. */
function onnxModel(nodes: Uint8Array[], initializers: Uint8Array[]): Uint8Array {
  const graph = new BinaryWriter();
  for (const n of nodes) graph.tag(1, 2).bytes(n);
  for (const t of initializers) graph.tag(5, 2).bytes(t);
  return new BinaryWriter().tag(1, 0).int64(8).tag(7, 2).bytes(graph.finish()).finish();
}
function onnxNode(name: string, op: string, inputs: string[], outputs: string[], attrs: Uint8Array[] = []): Uint8Array {
  const w = new BinaryWriter();
  for (const i of inputs) w.tag(1, 2).string(i);
  for (const o of outputs) w.tag(2, 2).string(o);
  w.tag(3, 2).string(name).tag(4, 2).string(op);
  for (const a of attrs) w.tag(5, 2).bytes(a);
  return w.finish();
}
function onnxTensor(name: string, dims: number[], fill: (w: BinaryWriter) => void, dataType: number): Uint8Array {
  const w = new BinaryWriter();
  for (const d of dims) w.tag(1, 0).int64(d);
  w.tag(2, 0).int32(dataType).tag(8, 2).string(name);
  fill(w);
  return w.finish();
}
const floatAttr = (name: string, v: number): Uint8Array =>
  new BinaryWriter().tag(1, 2).string(name).tag(20, 0).int32(1).tag(2, 5).float(v).finish();
const halfBits = (v: number): number => {
  // Exact for the small dyadic values used below.
  const f = new DataView(new ArrayBuffer(4));
  f.setFloat32(0, v);
  const bits = f.getUint32(0);
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  return v === 0 ? 0 : sign | (exp << 10) | ((bits >>> 13) & 0x3ff);
};

describe('.onnx', () => {
  it('lists the nodes of an exported model and reads both BatchNormalization nodes with their attributes', () => {
    const file = parseModelFile(bytesOf('bn.onnx'));
    expect(file.format).toBe('onnx');
    expect(file.nodes.map((n) => n.opType)).toEqual(['Conv', 'BatchNormalization', 'Relu', 'Conv', 'BatchNormalization']);
    for (const n of file.nodes) {
      expect(n.name.length).toBeGreaterThan(0);
      expect(n.outputs.length).toBeGreaterThan(0);
    }
    expect(file.nodes[0]?.inputs[0]).toBe('image');
    expect(file.nodes.at(-1)?.outputs[0]).toBe('out');
    expect(file.batchNorms).toHaveLength(2);
    for (const [layer, want] of [
      [file.batchNorms[0], expected.onnx['1']],
      [file.batchNorms[1], expected.onnx['4']],
    ] as const) {
      if (!layer || !want) throw new Error('missing');
      expect(Array.from(layer.stateDict.weight ?? [])).toEqual(want.weight.map(Math.fround));
      expect(Array.from(layer.stateDict.bias ?? [])).toEqual(want.bias.map(Math.fround));
      expect(Array.from(layer.stateDict.running_mean ?? [])).toEqual(want.running_mean.map(Math.fround));
      expect(Array.from(layer.stateDict.running_var ?? [])).toEqual(want.running_var.map(Math.fround));
      expect(layer.eps).toBe(want.eps);
      expect(layer.momentum).toBe(want.momentum);
      expect(layer.onnx?.momentum).toBe(Math.fround(1 - want.momentum));
    }
  });

  it('converts float16 (raw and int32_data), bfloat16, float64 initializers and Constant-node parameters to float32', () => {
    const raw16 = new Uint8Array(4);
    new DataView(raw16.buffer).setUint16(0, halfBits(0.5), true);
    new DataView(raw16.buffer).setUint16(2, halfBits(-1.25), true);
    const model = onnxModel(
      [
        onnxNode('bnA', 'BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'], [floatAttr('epsilon', 1e-3), floatAttr('momentum', 0.99)]),
        onnxNode(
          'cst',
          'Constant',
          [],
          ['vConst'],
          [
            new BinaryWriter()
              .tag(1, 2)
              .string('value')
              .tag(20, 0)
              .int32(4)
              .tag(5, 2)
              .bytes(onnxTensor('', [2], (w) => w.tag(4, 2).fork().float(4).float(9).join(), 1))
              .finish(),
          ],
        ),
        onnxNode('bnB', 'BatchNormalization', ['y', 's', 'b', 'm', 'vConst'], ['z']),
      ],
      [
        onnxTensor('s', [2], (w) => w.tag(9, 2).bytes(raw16), 10),
        onnxTensor('b', [2], (w) => w.tag(5, 2).fork().int32(0x3f80).int32(0xc000).join(), 16),
        onnxTensor('m', [2], (w) => w.tag(10, 2).fork().double(0.1).double(-3).join(), 11),
        onnxTensor('v', [2], (w) => w.tag(5, 2).fork().int32(halfBits(2)).int32(halfBits(0.25)).join(), 10),
      ],
    );
    const file = parseModelFile(model);
    expect(file.nodes.map((n) => n.name)).toEqual(['bnA', 'cst', 'bnB']);
    const [a, b] = file.batchNorms;
    expect(Array.from(a?.stateDict.weight ?? [])).toEqual([0.5, -1.25]);
    expect(Array.from(a?.stateDict.bias ?? [])).toEqual([1, -2]);
    expect(Array.from(a?.stateDict.running_mean ?? [])).toEqual([Math.fround(0.1), -3]);
    expect(Array.from(a?.stateDict.running_var ?? [])).toEqual([2, 0.25]);
    expect([a?.eps, a?.momentum]).toEqual([0.001, 0.01]);
    expect(Array.from(b?.stateDict.running_var ?? [])).toEqual([4, 9]);
    expect([b?.eps, b?.momentum]).toEqual([1e-5, 0.1]);
  });

  it('refuses a missing node, a non-BN node, truncation, external data and unsupported dtypes', () => {
    const file = parseModelFile(bytesOf('bn.onnx'));
    refused(() => findBatchNorm(file, 'missing'), 'NOT_FOUND', /no batch-norm layer 'missing'.*holds: '/);
    refused(() => findBatchNorm(file, file.nodes[0]?.name ?? ''), 'NOT_FOUND', /is a Conv, not a BatchNormalization/);
    const good = bytesOf('bn.onnx');
    refused(() => parseModelFile(good.subarray(0, good.length - 40)), 'TRUNCATED');
    const external = onnxModel([], [onnxTensor('s', [2], (w) => w.tag(14, 0).int32(1), 1)]);
    refused(() => parseModelFile(external, { format: 'onnx' }), 'EXTERNAL_DATA');
    const strings = onnxModel([], [onnxTensor('s', [1], (w) => w.tag(6, 2).bytes(strToU8('x')), 8)]);
    refused(() => parseModelFile(strings, { format: 'onnx' }), 'UNSUPPORTED_DTYPE', /data type 8/);
    refused(() => parseModelFile(strToU8('{"not": "onnx"}'), { format: 'onnx' }), 'BAD_MAGIC');
  });
});

describe.each(BACKENDS)('loading layers into modules on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it('loads a nested .pt layer and an ONNX node (eps and momentum converted) from every source kind', async () => {
    const pt = bytesOf('state_f32.pt');
    const sources = [pt, pt.slice().buffer, new DataView(pt.slice().buffer), new Blob([pt.slice()]), new Response(pt.slice())];
    for (const source of sources) {
      const file = await readModelFile(source);
      const bn = new BatchNorm2d(ctx, 4).eval();
      loadBatchNorm(bn, file, 'layer1.0.bn1.');
      const sd = await bn.stateDict();
      const want = expected.pt['f32'] ?? {};
      for (const key of ['weight', 'bias', 'running_mean', 'running_var'] as const) {
        const w = want[`layer1.0.bn1.${key}`];
        expect(Array.from(sd[key] ?? []), key).toEqual(w && 'values' in w ? w.values.map(Math.fround) : []);
      }
      expect(sd.num_batches_tracked).toBe(3);
      expect([bn.eps, bn.momentum]).toEqual([1e-5, 0.1]);
      bn.destroy();
      count(backend);
    }
    const onnx = await readModelFile(new Blob([bytesOf('bn.onnx').slice()]));
    const bn = new BatchNorm2d(ctx, 5);
    loadBatchNorm(bn, onnx, onnx.batchNorms[0]?.name ?? '');
    expect([bn.eps, bn.momentum]).toEqual([1e-3, 0.2]);
    const tensorsOnly = new BatchNorm2d(ctx, 5, { eps: 1e-4, momentum: 0.5 });
    loadBatchNorm(tensorsOnly, onnx, onnx.batchNorms[0]?.name ?? '', { conventions: false });
    expect([tensorsOnly.eps, tensorsOnly.momentum]).toEqual([1e-4, 0.5]);
    tensorsOnly.destroy();
    // a module with ONNX's own convention takes the node's momentum as written (0.8 here)
    const onnxConvention = new BatchNorm2d(ctx, 5, { convention: 'onnx' });
    loadBatchNorm(onnxConvention, onnx, onnx.batchNorms[0]?.name ?? '');
    expect([onnxConvention.eps, onnxConvention.momentum]).toEqual([1e-3, 0.8]);
    onnxConvention.destroy();
    expect(Array.from((await bn.stateDict()).running_var ?? [])).toEqual((expected.onnx['1']?.running_var ?? []).map(Math.fround));
    bn.destroy();
    count(backend);
  });

  it('a refused load (shape, affine, int64 out of range) changes nothing', async () => {
    const file = parseModelFile(bytesOf('state_f32.pt'));
    const bn = new BatchNorm2d(ctx, 5, { momentum: 0.3 });
    const before = JSON.stringify(await bn.stateDict(), (_k, v: unknown) => (v instanceof Float32Array ? Array.from(v) : v));
    expect(() => loadBatchNorm(bn, file, 'bn1')).toThrow(ShapeError);
    expect(() => loadBatchNorm(bn, file, 'bn1')).toThrow(/has 4 channels.*expected \[5\]/);
    const after = JSON.stringify(await bn.stateDict(), (_k, v: unknown) => (v instanceof Float32Array ? Array.from(v) : v));
    expect(after).toBe(before);
    expect(bn.momentum).toBe(0.3);
    bn.destroy();
    const plain = new BatchNorm1d(ctx, 4);
    // head.norm has no weight/bias (affine=False) and num_batches_tracked = 2^40 + 3.
    expect(() => loadBatchNorm(plain, file, 'head.norm')).toThrow(StateDictError);
    const noAffine = new BatchNorm1d(ctx, 4, { affine: false });
    expect(() => loadBatchNorm(noAffine, file, 'head.norm')).toThrow(/num_batches_tracked.*1099511627779/);
    expect(noAffine.numBatchesTracked).toBe(0);
    plain.destroy();
    noAffine.destroy();
    count(backend);
  });
});

describe('readModelFileFromPath (Node)', () => {
  it('reads by path and rejects a non-string', async () => {
    const file = await readModelFileFromPath(new URL('state_f32.pt', DIR).pathname);
    expect(file.batchNorms.map((l) => l.name)).toEqual(['bn1', 'layer1.0.bn1', 'head.norm']);
    await expect(readModelFileFromPath('' as string)).rejects.toThrow(/non-empty string/);
  });
});

describe('.pt training checkpoints', () => {
  it('reads nested dicts and an optimizer state (int keys, lists, tuples, floats) as dotted tensor names', () => {
    const file = parseModelFile(bytesOf('checkpoint.pt'));
    const want = (expected as unknown as { checkpoint: Record<string, number[]> }).checkpoint;
    expect(Array.from((file.tensors.get('model.bn1.running_mean')?.data ?? []) as Float32Array)).toEqual(
      (want['bn1.running_mean'] ?? []).map(Math.fround),
    );
    expect(Array.from((file.tensors.get('optimizer.state.0.exp_avg')?.data ?? []) as Float32Array)).toEqual(
      (want['exp_avg_0'] ?? []).map(Math.fround),
    );
    expect(file.batchNorms.map((l) => l.name)).toEqual(['model.bn1', 'model.layer1.0.bn1', 'model.head.norm']);
    // Non-tensor values (epoch, note, lr, param_groups) are not tensors and are skipped.
    expect([...file.tensors.keys()].some((k) => k.startsWith('epoch') || k.startsWith('optimizer.param_groups'))).toBe(false);
  });
});

describe('damaged files never crash the readers', () => {
  /** Every failure must be a ModelFileError: no TypeError, RangeError or hang from a hostile file. */
  function onlyTypedErrors(bytes: Uint8Array, format: 'pytorch' | 'safetensors' | 'onnx'): void {
    try {
      parseModelFile(bytes, { format });
    } catch (err) {
      if (!(err instanceof ModelFileError)) throw new Error(`${format}: ${String(err)} is not a ModelFileError`);
    }
  }
  const pickleOf = (pt: Uint8Array): Uint8Array => {
    const files = unzipSync(pt);
    const name = Object.keys(files).find((n) => n.endsWith('/data.pkl')) ?? '';
    return files[name] ?? new Uint8Array();
  };

  it('every truncation of a .pt pickle, .safetensors and .onnx file, and 300 random byte flips each', () => {
    const pt = bytesOf('state_f32.pt');
    const pickle = pickleOf(pt);
    const withPickle = (p: Uint8Array): Uint8Array => {
      const files = unzipSync(pt);
      const name = Object.keys(files).find((n) => n.endsWith('/data.pkl')) ?? '';
      return zipSync({ ...files, [name]: p }, { level: 0 });
    };
    for (let n = 0; n < pickle.length; n += 7) expect(() => parseModelFile(withPickle(pickle.subarray(0, n)))).toThrow(ModelFileError);
    const st = bytesOf('state.safetensors');
    for (let n = 0; n < st.length; n += 13)
      expect(() => parseModelFile(st.subarray(0, n), { format: 'safetensors' })).toThrow(ModelFileError);
    const onnx = bytesOf('bn.onnx');
    for (let n = 0; n < onnx.length; n += 11) onlyTypedErrors(onnx.subarray(0, n), 'onnx');
    const next = rng(9);
    for (let k = 0; k < 300; k++) {
      const flip = (b: Uint8Array): Uint8Array => {
        const c = b.slice();
        for (let j = 0; j < 3; j++) c[Math.floor(next() * c.length)] = Math.floor(next() * 256);
        return c;
      };
      const p = flip(pickle);
      try {
        parseModelFile(withPickle(p));
      } catch (err) {
        if (!(err instanceof ModelFileError)) throw new Error(`pickle flip ${k}: ${String(err)}`);
      }
      onlyTypedErrors(flip(st), 'safetensors');
      onlyTypedErrors(flip(onnx), 'onnx');
    }
  });
});

/** A state dict whose safetensors header is exactly `length` bytes (a name padded to fit). */
function safetensorsWithHeader(length: number): Uint8Array {
  for (let pad = 0; pad < 8192; pad++) {
    const tensors = new Map([
      [`bn.${'x'.repeat(pad)}.running_mean`, { shape: [3], data: Float32Array.from([1.5, -2, 1e-30]) }],
      ['bn.num_batches_tracked', { shape: [], data: BigInt64Array.from([7n]) }],
    ]);
    const bytes = writeSafetensors(tensors);
    if (Number(new DataView(bytes.buffer).getBigUint64(0, true)) === length) return bytes;
  }
  throw new Error(`no header of ${length} bytes`);
}

describe('format detection by whole structure', () => {
  it('reads safetensors files whose header length starts with byte 0x80 (as a pickle does)', () => {
    for (const length of [384, 640, 896, 0x1180]) {
      const bytes = safetensorsWithHeader(length);
      expect(bytes[0]).toBe(0x80);
      expect(detectModelFormat(bytes)).toBe('safetensors');
      const file = parseModelFile(bytes);
      expect(file.format).toBe('safetensors');
      expect(Array.from(file.tensors.values())[0]?.data).toEqual(Float32Array.from([1.5, -2, 1e-30]));
      expect(file.tensors.get('bn.num_batches_tracked')?.data[0]).toBe(7n);
    }
  });

  it('detects every fixture, sends damaged files to their own reader, and a raw pickle to the .pt reader', () => {
    for (const name of ['state_f32.pt', 'checkpoint.pt', 'legacy.pt']) expect(detectModelFormat(bytesOf(name)), name).toBe('pytorch');
    expect(detectModelFormat(bytesOf('state.safetensors'))).toBe('safetensors');
    expect(detectModelFormat(bytesOf('bn.onnx'))).toBe('onnx');
    const pt = bytesOf('state_f32.pt');
    expect(detectModelFormat(pt.subarray(0, 200))).toBe('pytorch');
    const st = bytesOf('state.safetensors');
    expect(detectModelFormat(st.subarray(0, 60))).toBe('safetensors');
    refused(() => parseModelFile(st.subarray(0, 60)), 'TRUNCATED');
    refused(() => parseModelFile(new Uint8Array([0x80, 0x02, 0x7d, 0x2e])), 'BAD_MAGIC', /not a zip archive/);
    refused(() => parseModelFile(new Uint8Array([0x80, 0x03])), 'BAD_MAGIC');
  });
});

describe('real torch.save files with shared storage', () => {
  it.runIf(torchAvailable())('memo references, views of one storage and a dict reached twice read as torch saved them', () => {
    const script = `
import sys, torch
x = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.25 - 1
sd = {'w': x, 'same': x, 'row': x[1], 'tail': x.view(-1)[5:], 't': x.t(), 'col': x[:, 2]}
torch.save({'model': sd, 'ema': sd, 'x': x}, sys.argv[1])
`;
    const dir = mkdtempSync(join(tmpdir(), 'bn-shared-'));
    try {
      const path = join(dir, 'shared.pt');
      const run = spawnSync('/usr/bin/python3', ['-c', script, path], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      const file = parseModelFile(new Uint8Array(readFileSync(path)));
      const x = Array.from({ length: 12 }, (_, i) => i * 0.25 - 1);
      const values = (name: string): number[] => Array.from((file.tensors.get(name)?.data ?? []) as Float32Array);
      for (const root of ['model', 'ema']) {
        expect(values(`${root}.w`)).toEqual(x);
        expect(values(`${root}.same`)).toEqual(x);
        expect(values(`${root}.row`)).toEqual(x.slice(4, 8));
        expect(values(`${root}.tail`)).toEqual(x.slice(5));
        expect(values(`${root}.t`)).toEqual([0, 1, 2, 3].flatMap((c) => [x[c], x[4 + c], x[8 + c]]));
        expect(values(`${root}.col`)).toEqual([x[2], x[6], x[10]]);
        expect(file.tensors.get(`${root}.t`)?.shape).toEqual([4, 3]);
      }
      expect(values('x')).toEqual(x);
      // One storage: every contiguous view shares its buffer; only the transposed and column views are gathered.
      const buffers = new Set([...file.tensors.entries()].filter(([k]) => !/\.(t|col)$/.test(k)).map(([, t]) => t.data.buffer));
      expect(buffers.size).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('detection never crashes', () => {
  it('random bytes and byte flips of a 0x80-header safetensors file, read with detection, give ModelFileErrors only', () => {
    const next = rng(31);
    const base = safetensorsWithHeader(384);
    const check = (bytes: Uint8Array, what: string): void => {
      try {
        parseModelFile(bytes);
      } catch (err) {
        if (!(err instanceof ModelFileError)) throw new Error(`${what}: ${String(err)} is not a ModelFileError`);
      }
    };
    for (let k = 0; k < 300; k++) {
      const random = Uint8Array.from({ length: Math.floor(next() * 64) }, () => Math.floor(next() * 256));
      check(random, `random ${k}`);
      const flipped = base.slice();
      for (let j = 0; j < 2; j++) flipped[Math.floor(next() * flipped.length)] = Math.floor(next() * 256);
      check(flipped, `flip ${k}`);
      check(base.subarray(0, Math.floor(next() * base.length)), `cut ${k}`);
    }
  });
});

describe('hostile files: typed refusals, limits', () => {
  const header = (h: object | string, data: Uint8Array): Uint8Array => {
    const json = typeof h === 'string' ? strToU8(h) : strToU8(JSON.stringify(h));
    const out = new Uint8Array(8 + json.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(data, 8 + json.length);
    return out;
  };

  it('safetensors: overlapping data_offsets are OVERLAP, a cut-short JSON header CORRUPT, bad shapes BAD_SHAPE', () => {
    const data = new Uint8Array(16);
    const overlap = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    refused(() => parseModelFile(header(overlap, data)), 'OVERLAP', /'b'.*overlaps 'a'/);
    const same = { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } };
    refused(() => parseModelFile(header(same, data)), 'OVERLAP');
    // Adjacent and empty entries are not overlaps.
    const ok = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      e: { dtype: 'F32', shape: [0], data_offsets: [8, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    };
    expect(parseModelFile(header(ok, data)).tensors.size).toBe(3);
    refused(() => parseModelFile(header('{"a": {"dtype": "F32", "sha', data), { format: 'safetensors' }), 'CORRUPT', /not valid JSON/);
    refused(() => parseModelFile(header({ a: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, data)), 'BAD_SHAPE');
    refused(() => parseModelFile(header({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 16] } }, data)), 'BAD_SHAPE');
  });

  it('safetensors: data bytes that belong to no tensor (a gap, a late start, trailing bytes) are CORRUPT, as the reference refuses them', () => {
    const a = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
    // The reference's InvalidOffset: an entry that does not start where the previous one ended.
    const gap = { a, b: { dtype: 'F32', shape: [1], data_offsets: [12, 16] } };
    refused(() => parseModelFile(header(gap, new Uint8Array(16))), 'CORRUPT', /data bytes 8\.\.12 \(before 'b'\) belong to no tensor/);
    const late = { b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    refused(() => parseModelFile(header(late, new Uint8Array(12))), 'CORRUPT', /data bytes 0\.\.4/);
    // MetadataIncompleteBuffer: bytes after the last entry, or data with no entries at all.
    refused(() => parseModelFile(header({ a }, new Uint8Array(9))), 'CORRUPT', /data bytes 8\.\.9 \(after the last tensor\)/);
    refused(() => parseModelFile(header({ __metadata__: { k: 'v' } }, new Uint8Array(4))), 'CORRUPT', /data bytes 0\.\.4/);
    // Exactly tiled data reads, empty tensors included, in any key order; so does a file with no data.
    const tiled = {
      z: { dtype: 'F32', shape: [0], data_offsets: [8, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
      a,
    };
    expect([...parseModelFile(header(tiled, new Uint8Array(16))).tensors.keys()].sort()).toEqual(['a', 'b', 'z']);
    expect(parseModelFile(header({ __metadata__: { k: 'v' } }, new Uint8Array(0))).tensors.size).toBe(0);
  });

  it('reads a checkpoint re-zipped with deflate (streamed inflation) exactly as the stored original', () => {
    const stored = parseModelFile(bytesOf('state_f32.pt')).tensors;
    const deflated = zipSync(unzipSync(bytesOf('state_f32.pt')), { level: 9 });
    const back = parseModelFile(deflated).tensors;
    expect([...back.keys()]).toEqual([...stored.keys()]);
    for (const [k, t] of stored) expect(back.get(k)?.data, k).toEqual(t.data);
    refused(() => parseModelFile(deflated, { maxBytes: 200 }), 'LIMIT', /inflating zip entry/);
  });

  it('maxBytes, maxEntries and maxPickleBytes refuse a file past them, naming the option', async () => {
    refused(() => parseModelFile(bytesOf('state_f32.pt'), { maxBytes: 64 }), 'LIMIT', /maxBytes/);
    refused(() => parseModelFile(bytesOf('state.safetensors'), { maxBytes: 8 }), 'LIMIT', /maxBytes/);
    refused(() => parseModelFile(bytesOf('bn.onnx'), { maxBytes: 8 }), 'LIMIT', /maxBytes/);
    refused(() => parseModelFile(bytesOf('state.safetensors'), { maxEntries: 2 }), 'LIMIT', /maxEntries/);
    refused(() => parseModelFile(bytesOf('state_f32.pt'), { maxEntries: 2 }), 'LIMIT', /maxEntries/);
    refused(() => parseModelFile(bytesOf('state_f32.pt'), { maxPickleBytes: 100 }), 'LIMIT', /maxPickleBytes/);
    expect(parseModelFile(bytesOf('state_f32.pt'), { maxBytes: 1 << 20, maxEntries: 100 }).tensors.size).toBeGreaterThan(0);
    await expect(readModelFileFromPath(new URL('state_f32.pt', DIR).pathname, { maxBytes: 100 })).rejects.toThrow(/maxBytes/);
    expect(() => parseModelFile(bytesOf('state_f32.pt'), { maxBytes: -1 })).toThrow(/maxBytes must be/);
  });
});

describe('ONNX momentum → PyTorch momentum', () => {
  it('is 1 − m at the decimals of the stored float32 m', () => {
    expect([0.9, 0.99, 0.8, 0.999, 0, 1].map((m) => momentumFromOnnx(Math.fround(m)))).toEqual([0.1, 0.01, 0.2, 0.001, 1, 0]);
    // Any float32: the converted momentum maps back to the stored value exactly.
    for (const m of [0.123456789, 0.7, 0.95, 0.3333333]) {
      const stored = Math.fround(m);
      expect(Math.fround(1 - momentumFromOnnx(stored))).toBe(stored);
    }
  });
});
