#!/usr/bin/env python3
"""Hostile and unusual model files for test/hostile-files.test.ts.

    python3 scripts/gen-hostile-files.py OUT_DIR

Writes each file into OUT_DIR (nothing is committed: the test runs this into a temp dir). Plain
Python only (struct, zlib, zipfile): the pickles are assembled opcode by opcode, as torch.save
would write them where they are valid, so no torch is needed and no file here was ever unpickled.
Each file is small (at most a few MB) but describes something huge or malformed; the test parses
each in a child process under a memory cap and checks the refusal reason, the time and the peak RSS.
"""
import json
import os
import struct
import sys
import zipfile
import zlib

# ------------------------------------------------------------------ pickle opcodes (pickletools)
PROTO2 = b'\x80\x02'
STOP = b'.'
MARK = b'('
EMPTY_DICT = b'}'
EMPTY_LIST = b']'
EMPTY_TUPLE = b')'
TUPLE = b't'
SETITEM = b's'
SETITEMS = b'u'
APPEND = b'a'
REDUCE = b'R'
BINPERSID = b'Q'
NEWFALSE = b'\x89'


def string(s):
    b = s.encode()
    return b'X' + struct.pack('<I', len(b)) + b  # BINUNICODE


def integer(n):
    if -(2**31) <= n < 2**31:
        return b'J' + struct.pack('<i', n)  # BININT
    raw = n.to_bytes((n.bit_length() + 8) // 8, 'little', signed=True)
    return b'\x8a' + bytes([len(raw)]) + raw  # LONG1


def binput(i):
    return b'r' + struct.pack('<I', i)  # LONG_BINPUT


def binget(i):
    return b'j' + struct.pack('<I', i)  # LONG_BINGET


def glob(module, name):
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def tup(*items):
    return MARK + b''.join(items) + TUPLE


def ordered_dict():
    return glob('collections', 'OrderedDict') + EMPTY_TUPLE + REDUCE


def tensor(key, numel, offset, size, stride, storage='FloatStorage'):
    """What torch.save writes for one tensor: _rebuild_tensor_v2(storage, offset, size, stride, False, {})."""
    pid = tup(string('storage'), glob('torch', storage), string(key), string('cpu'), integer(numel)) + BINPERSID
    args = tup(pid, integer(offset), tup(*map(integer, size)), tup(*map(integer, stride)), NEWFALSE, ordered_dict())
    return glob('torch._utils', '_rebuild_tensor_v2') + args + REDUCE


def state_dict(items):
    """{name: value} as an OrderedDict built with SETITEMS."""
    return ordered_dict() + MARK + b''.join(string(k) + v for k, v in items) + SETITEMS


# ------------------------------------------------------------------ zip writing
def pt(path, pickle, storages=None):
    """A torch.save-style zip (stored entries, as torch writes them)."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        z.writestr('archive/data.pkl', PROTO2 + pickle + STOP)
        z.writestr('archive/version', '3\n')
        for key, data in (storages or {}).items():
            z.writestr(f'archive/data/{key}', data)


def deflate_repeated(chunk, repeats):
    """Raw deflate of `chunk` * repeats, built from one compressed copy: after Z_FULL_FLUSH the
    compressed block is byte-aligned and refers to nothing before it, so it can be repeated. Also
    returns the CRC-32 of the whole uncompressed data."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    final = c.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(repeats):
        crc = zlib.crc32(chunk, crc)
    return block * repeats + final, crc


def raw_zip(path, entries):
    """A zip written field by field, for entries whose compressed bytes are prepared here:
    entries = [(name, method, compressed, declared_size, crc)]."""
    out = bytearray()
    central = bytearray()
    for name, method, data, size, crc in entries:
        n = name.encode()
        offset = len(out)
        out += struct.pack('<IHHHHHIIIHH', 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(n), 0) + n + data
        central += struct.pack(
            '<IHHHHHHIIIHHHHHII', 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size, len(n), 0, 0, 0, 0, 0, offset
        ) + n
    cd = len(out)
    out += central
    out += struct.pack('<IHHHHIIH', 0x06054B50, 0, 0, len(entries), len(entries), len(central), cd, 0)
    with open(path, 'wb') as f:
        f.write(out)


def stored(name, data):
    return (name, 0, data, len(data), zlib.crc32(data))


# ------------------------------------------------------------------ safetensors writing
def safetensors(path, header, data, header_bytes=None):
    raw = header_bytes if header_bytes is not None else json.dumps(header).encode()
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(raw)) + raw + data)


# ------------------------------------------------------------------ protobuf writing (ONNX)
def varint(n):
    n &= (1 << 64) - 1  # negative int64 values are 10-byte two's complement varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, wire, payload):
    tag = varint(number << 3 | wire)
    return tag + (varint(len(payload)) + payload if wire == 2 else payload)


def main(out):
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731
    four_mib = bytes(4 * 2**20)
    one_float = struct.pack('<f', 1.5)

    # 100,000 nested dicts: d0['a'] = d1, d1['a'] = d2, ... (stack-built, as pickle does)
    depth = 100_000
    pt(p('deep-dicts.pt'), (EMPTY_DICT + string('a')) * depth + EMPTY_DICT + SETITEM * depth)
    # 100,000 nested lists under one key
    pt(p('deep-lists.pt'), EMPTY_DICT + string('x') + EMPTY_LIST * (depth + 1) + APPEND * depth + SETITEM)
    # a dict that contains itself: d = {}; d['self'] = d
    pt(p('self-dict.pt'), EMPTY_DICT + binput(0) + string('self') + binget(0) + SETITEM)
    # a tensor of size -4
    pt(p('negative-size.pt'), state_dict([('w', tensor('0', 4, 0, [-4], [1]))]), {'0': bytes(16)})
    # one float expanded to 2^40 and to 2^30 elements by stride 0
    pt(p('stride0-2e40.pt'), state_dict([('w', tensor('0', 1, 0, [2**40], [0]))]), {'0': one_float})
    pt(p('stride0-2e30.pt'), state_dict([('w', tensor('0', 1, 0, [2**15, 2**15], [0, 0]))]), {'0': one_float})
    # a view that reaches past its storage
    pt(p('past-storage.pt'), state_dict([('w', tensor('0', 4, 2, [4], [1]))]), {'0': bytes(16)})

    # a 2 GiB (+16 MiB) storage entry of zeros deflated to ~2 MB, referenced by the pickle
    chunk = bytes(16 * 2**20)
    bomb, crc = deflate_repeated(chunk, 129)
    size = len(chunk) * 129
    pickle = PROTO2 + state_dict([('w', tensor('0', size // 4, 0, [size // 4], [1]))]) + STOP
    raw_zip(p('zip-bomb-storage.pt'), [stored('archive/data.pkl', pickle), ('archive/data/0', 8, bomb, size, crc)])
    # a 1 GiB data.pkl (NONE opcodes) deflated to ~1 MB
    pkl, crc = deflate_repeated(b'N' * (16 * 2**20), 64)
    raw_zip(p('zip-bomb-pickle.pt'), [('archive/data.pkl', 8, pkl, 64 * 16 * 2**20, crc)])
    # an entry that declares 1 KiB and inflates to 16 MiB
    lie, crc = deflate_repeated(b'N' * 2**20, 16)
    raw_zip(p('zip-lying-size.pt'), [('archive/data.pkl', 8, lie, 1024, crc)])
    # 4 MiB of EMPTY_DICT opcodes (under maxPickleBytes) deflated: ~1 GB of dicts if built
    dicts, crc = deflate_repeated(b'}' * 2**20, 4)
    raw_zip(p('pickle-dict-bomb.pt'), [('archive/data.pkl', 8, dicts, 4 * 2**20, crc)])

    # 600 memo references to one 4 MiB tensor: valid, shares one storage
    refs = [('t0', tensor('0', 2**20, 0, [2**20], [1]) + binput(1))] + [(f't{i}', binget(1)) for i in range(1, 600)]
    pt(p('memo-600.pt'), state_dict(refs), {'0': four_mib})
    # 60 dict levels, each holding the level below twice: 2^60 paths to one tensor
    levels = tensor('0', 1, 0, [1], [1]) + binput(0)
    for i in range(1, 61):
        levels = EMPTY_DICT + MARK + string('a') + levels + string('b') + binget(i - 1) + SETITEMS + binput(i)
    pt(p('dag-60.pt'), levels, {'0': one_float})
    # the same DAG of dicts with nothing at the bottom, beside one real tensor: valid, 1 name;
    # 2^60 paths that name no tensor must cost nothing either
    empty = EMPTY_DICT + binput(0)
    for i in range(1, 61):
        empty = EMPTY_DICT + MARK + string('a') + empty + string('b') + binget(i - 1) + SETITEMS + binput(i)
    pt(p('dag-empty-60.pt'), state_dict([('w', tensor('0', 1, 0, [1], [1])), ('g', empty)]), {'0': one_float})
    # a raw pickle, not a zip (torch.save(..., _use_new_zipfile_serialization=False)-like)
    with open(p('raw-pickle.pt'), 'wb') as f:
        f.write(PROTO2 + EMPTY_DICT + STOP)

    # 400 safetensors entries on the same 4 MiB
    header = {f't{i}': {'dtype': 'F32', 'shape': [2**20], 'data_offsets': [0, 4 * 2**20]} for i in range(400)}
    safetensors(p('overlap-400.safetensors'), header, four_mib)
    # a JSON header cut short (the length stops mid-JSON; the rest reads as data)
    full = json.dumps({'w': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}}).encode()
    safetensors(p('cut-header.safetensors'), None, full[20:] + bytes(8), header_bytes=full[:20])
    # a valid file whose header length (384) starts with byte 0x80, like a pickle
    names = {f'layer.{i}.running_mean': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4 * i, 4 * i + 4]} for i in range(4)}
    raw = json.dumps(names).encode()
    raw += b' ' * (384 - len(raw))
    assert len(raw) == 384, len(raw)
    safetensors(p('header-0x80.safetensors'), None, struct.pack('<4f', 1, 2, 3, 4), header_bytes=raw)
    # a shape of 2^40 x 2^40 floats declaring 8 bytes
    huge = {'w': {'dtype': 'F32', 'shape': [2**40, 2**40], 'data_offsets': [0, 8]}}
    safetensors(p('huge-shape.safetensors'), huge, bytes(8))
    negative = {'w': {'dtype': 'F32', 'shape': [-2], 'data_offsets': [0, 8]}}
    safetensors(p('negative-shape.safetensors'), negative, bytes(8))

    # ONNX: an initializer with dims [-4] and one with dims [2^40] and no data
    def onnx(tensor_fields):
        init = b''.join(tensor_fields)
        graph = field(5, 2, init)
        return field(1, 0, varint(8)) + field(7, 2, graph)

    with open(p('negative-dims.onnx'), 'wb') as f:
        f.write(onnx([field(1, 0, varint(-4)), field(2, 0, varint(1)), field(8, 2, b'w'), field(9, 2, bytes(16))]))
    with open(p('huge-dims.onnx'), 'wb') as f:
        f.write(onnx([field(1, 0, varint(2**40)), field(2, 0, varint(1)), field(8, 2, b'w'), field(4, 2, struct.pack('<f', 1))]))
    # dims [1] of int64 with 16M packed one-byte values: refused at the second value, never decoded
    with open(p('int64-bomb.onnx'), 'wb') as f:
        f.write(onnx([field(1, 0, varint(1)), field(2, 0, varint(7)), field(8, 2, b'w'), field(7, 2, bytes(2**24))]))


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'hostile-files')
