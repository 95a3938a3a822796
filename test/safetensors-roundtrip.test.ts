/**
 * Property test: many state dicts written by `writeSafetensors` and read back through format
 * detection (`parseModelFile`, no format given) come back bit for bit. Header lengths run from 8
 * (an empty dict) to 64 KiB, and include every length below 64 KiB whose first byte is 0x80 (as a
 * pickle's PROTO opcode): such files were once taken for pickles and refused.
 */
import { describe, expect, it } from 'vitest';
import { detectModelFormat, parseModelFile, writeSafetensors, type WritableTensor } from '../src/io/index.js';
import { rng } from './helpers/backends.js';

type Data = WritableTensor['data'];

/** Values that stress the encoding: ±0, ±Inf, subnormals, extremes, NaN, plus random ones. */
function floats(n: number, next: () => number): number[] {
  const special = [0, -0, Infinity, -Infinity, Number.NaN, 1e-45, -1.4e-45, 3.4028234663852886e38, 1e-310, 1e300, Math.PI];
  return Array.from({ length: n }, () =>
    next() < 0.3 ? (special[Math.floor(next() * special.length)] ?? 0) : (next() - 0.5) * 10 ** (next() * 20 - 10),
  );
}

function randomTensor(next: () => number): WritableTensor {
  const rank = Math.floor(next() * 4);
  const shape = Array.from({ length: rank }, () => Math.floor(next() * 4));
  const n = shape.reduce((a, b) => a * b, 1);
  const kind = Math.floor(next() * 4);
  let data: Data;
  if (kind === 0) data = Float32Array.from(floats(n, next));
  else if (kind === 1) data = Float64Array.from(floats(n, next));
  else if (kind === 2) data = BigInt64Array.from({ length: n }, () => BigInt(Math.floor((next() - 0.5) * 2 ** 53)) * 1024n + 7n);
  else data = Int32Array.from({ length: n }, () => Math.floor((next() - 0.5) * 2 ** 32));
  return { shape, data };
}

const headerLength = (bytes: Uint8Array): number => Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));

/** A random state dict whose header is exactly `target` bytes: the last name is lengthened to fit. */
function stateDictWithHeader(target: number, next: () => number): { bytes: Uint8Array; tensors: Map<string, WritableTensor> } {
  if (target === 8) return { bytes: writeSafetensors(new Map()), tensors: new Map() };
  const tensors = new Map<string, WritableTensor>();
  const count = Math.floor(next() * Math.min(12, target / 120));
  for (let i = 0; i < count; i++)
    tensors.set(`layer${i}.${['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'][i % 5]}`, randomTensor(next));
  const last = randomTensor(next);
  // The writer pads the JSON with spaces to a multiple of 8; each character added to the last
  // name adds one JSON byte (offsets do not depend on names), so the unpadded length tells the pad.
  const write = (pad: number): { bytes: Uint8Array; m: Map<string, WritableTensor> } => {
    const m = new Map(tensors);
    m.set(`z${'x'.repeat(pad)}`, last);
    return { bytes: writeSafetensors(m), m };
  };
  const first = write(0);
  let json = headerLength(first.bytes);
  while (first.bytes[8 + json - 1] === 0x20) json--;
  if (json <= target) {
    const { bytes, m } = write(target - json);
    if (headerLength(bytes) === target) return { bytes, tensors: m };
  }
  throw new Error(`no state dict with a ${target}-byte header`);
}

function expectSame(got: Data | undefined, want: Data, name: string): void {
  expect(got, name).toBeDefined();
  if (!got) return;
  expect(got.length, name).toBe(want.length);
  if (want instanceof Float32Array) {
    expect(got, name).toBeInstanceOf(Float32Array);
    // Bit for bit, NaN included.
    expect(new Uint32Array(got.buffer, got.byteOffset, got.length), name).toEqual(
      new Uint32Array(want.buffer, want.byteOffset, want.length),
    );
  } else if (want instanceof Float64Array) {
    // F64 reads as float32, rounded to nearest: exactly Math.fround of each value.
    expect(Array.from(got as Float32Array), name).toEqual(Array.from(want, Math.fround));
  } else expect(got, name).toEqual(want);
}

describe('writeSafetensors → parseModelFile round trip', () => {
  const targets = new Set<number>([8, 128, 136, 256, 392, 1024, 4096, 0x8080, 65536]);
  for (let l = 128; l < 65536; l += 256) targets.add(l);
  const next = rng(2024);
  for (let k = 0; k < 60; k++) targets.add(8 * (16 + Math.floor(next() * 8176)));
  const sorted = [...targets].sort((a, b) => a - b);

  it(`reads back ${sorted.length} state dicts bit for bit, headers 8 B – 64 KiB (${sorted.filter((l) => (l & 0xff) === 0x80).length} starting with 0x80)`, () => {
    const next = rng(7);
    for (const target of sorted) {
      const { bytes, tensors } = stateDictWithHeader(target, next);
      expect(headerLength(bytes), 'header length').toBe(target);
      if ((target & 0xff) === 0x80) expect(bytes[0]).toBe(0x80);
      expect(detectModelFormat(bytes), `header ${target}`).toBe('safetensors');
      const file = parseModelFile(bytes);
      expect([...file.tensors.keys()], `header ${target}`).toEqual([...tensors.keys()]);
      for (const [name, t] of tensors) {
        const back = file.tensors.get(name);
        expect(back?.shape, name).toEqual([...t.shape]);
        expectSame(back?.data, t.data, `header ${target}: ${name}`);
      }
    }
  });

  it('keeps metadata out of the tensors and survives every metadata size', () => {
    const next = rng(11);
    for (let n = 0; n < 40; n++) {
      const t = randomTensor(next);
      const bytes = writeSafetensors({ w: t }, { metadata: { format: 'pt', note: 'y'.repeat(n * 37) } });
      const file = parseModelFile(bytes);
      expect([...file.tensors.keys()]).toEqual(['w']);
      expectSame(file.tensors.get('w')?.data, t.data, `metadata ${n}`);
    }
  });
});
