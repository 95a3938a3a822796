#!/usr/bin/python3
"""Generate the committed model-file fixtures for test/model-files.test.ts and test/fold.test.ts.

    /usr/bin/python3 test/torch/generate_model_files.py

Writes test/fixtures/models/ (all small, a few KB each):

  state_{f32,f16,bf16,f64}.pt     torch.save(state_dict) of a little net with BN layers at nested
                                  names (bn1, layer1.0.bn1, head.norm (BatchNorm1d, affine=False)),
                                  float tensors cast to each dtype; plus a strided view and an
                                  int64 num_batches_tracked of 2**40 + 3 (exactness)
  state.safetensors               the float32 state dict written BY HAND (struct + json: Debian's
                                  torch has no safetensors module), float tensors as F32 except
                                  bn1.* as F16, layer1.0.bn1.* as BF16 and head.norm.* as F64
  bn.onnx                         torch.onnx.export of conv→BN→ReLU→conv→BN with BN nodes kept
                                  (training=PRESERVE, do_constant_folding=False)
  checkpoint.pt                   {'model': state_dict, 'optimizer': Adam state_dict, 'epoch', ...}
  legacy.pt                       torch.save(..., _use_new_zipfile_serialization=False)
  evil_os_system.pt, evil_eval.pt pickles whose REDUCE would call os.system / builtins.eval
  uint8.pt                        a uint8 tensor (unsupported dtype)
  expected.json                   every tensor above as float64 lists (exact values of each dtype),
                                  num_batches_tracked as strings, ONNX node list and attributes
  fold.json                       conv/linear + BN(eval) cases: inputs (float32 values) and
                                  torch.nn.utils.fusion.fuse_{conv,linear}_bn_eval on float64
                                  copies (the reference) and on float32 (PyTorch's own result)

Deterministic (fixed seeds, one thread) except legacy.pt, whose storage keys are object ids.
"""
from __future__ import annotations

import io
import json
import os
import struct
import sys
import zipfile

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

sys.dont_write_bytecode = True
torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'fixtures', 'models')


class Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)


class Head(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(c, affine=False)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(Block(4))
        self.head = Head(4)


def float_list(t: torch.Tensor) -> list:
    return t.detach().double().reshape(-1).tolist()


def train_state() -> dict:
    torch.manual_seed(0)
    net = Net()
    for bn in (net.bn1, net.layer1[0].bn1):
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.5, 0.5)
    net.train()
    for _ in range(3):
        x = torch.randn(4, 3, 6, 6)
        y = net.bn1(net.conv1(x))
        net.layer1[0].bn1(net.layer1[0].conv1(y))
        net.head.norm(torch.randn(8, 4) * 2 + 1)
    sd = net.state_dict()
    sd['head.norm.num_batches_tracked'] = torch.tensor(2**40 + 3, dtype=torch.int64)
    return sd


def with_dtype(sd: dict, dtype: torch.dtype) -> dict:
    out = {}
    for k, v in sd.items():
        out[k] = v.to(dtype) if v.is_floating_point() else v
    return out


SAFETENSORS_DTYPES = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16',
                      torch.float64: 'F64', torch.int64: 'I64', torch.int32: 'I32'}


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype('<i2').tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder('<')).tobytes()


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    """safetensors by hand: u64 header length, JSON header, little-endian data."""
    header: dict = {}
    if metadata:
        header['__metadata__'] = metadata
    blobs = []
    offset = 0
    for name, t in tensors.items():
        b = tensor_bytes(t)
        header[name] = {'dtype': SAFETENSORS_DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class OsSystem:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


class Eval:
    def __reduce__(self):
        return (eval, ('1+1',))


def bn_onnx(path: str) -> dict:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5, eps=1e-3, momentum=0.2), nn.ReLU(),
                          nn.Conv2d(5, 6, 1, bias=False), nn.BatchNorm2d(6))
    model.train()
    for _ in range(4):
        model(torch.randn(2, 3, 5, 5))
    model.eval()
    x = torch.randn(1, 3, 5, 5)
    torch.onnx.export(model, x, path, input_names=['image'], output_names=['out'], opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    out = {}
    for i in (1, 4):
        bn = model[i]
        out[str(i)] = {'weight': float_list(bn.weight), 'bias': float_list(bn.bias),
                       'running_mean': float_list(bn.running_mean), 'running_var': float_list(bn.running_var),
                       'eps': bn.eps, 'momentum': bn.momentum}
    return out


def fold_cases() -> list:
    g = torch.Generator().manual_seed(3)

    def rnd(*shape, lo=-1.0, hi=1.0):
        return (torch.rand(*shape, generator=g) * (hi - lo) + lo).float()

    specs = [
        ('conv1d', nn.Conv1d(4, 6, 3, bias=True)),
        ('conv2d', nn.Conv2d(3, 5, 3, bias=True)),
        ('conv2d_nobias', nn.Conv2d(3, 5, (3, 2), bias=False)),
        ('conv2d_groups2', nn.Conv2d(4, 6, 3, groups=2, bias=True)),
        ('conv2d_depthwise', nn.Conv2d(5, 5, 3, groups=5, bias=False)),
        ('conv2d_depthwise_mult2', nn.Conv2d(3, 6, 3, groups=3, bias=True)),
        ('conv3d', nn.Conv3d(2, 3, 2, bias=True)),
        ('linear', nn.Linear(7, 5, bias=True)),
        ('linear_nobias', nn.Linear(3, 4, bias=False)),
    ]
    cases = []
    for name, layer in specs:
        out_channels = layer.weight.shape[0]
        bn = (nn.BatchNorm1d if isinstance(layer, (nn.Linear, nn.Conv1d)) else nn.BatchNorm3d if isinstance(layer, nn.Conv3d) else nn.BatchNorm2d)(out_channels, eps=1e-3 if 'groups' in name else 1e-5)
        with torch.no_grad():
            layer.weight.copy_(rnd(*layer.weight.shape))
            if layer.bias is not None:
                layer.bias.copy_(rnd(out_channels))
            bn.weight.copy_(rnd(out_channels, lo=0.5, hi=2.0))
            bn.bias.copy_(rnd(out_channels))
            bn.running_mean.copy_(rnd(out_channels, lo=-2, hi=2))
            bn.running_var.copy_(rnd(out_channels, lo=0.01, hi=3))
        layer.eval()
        bn.eval()
        fuse = fuse_linear_bn_eval if isinstance(layer, nn.Linear) else fuse_conv_bn_eval
        f64 = fuse(__import__('copy').deepcopy(layer).double(), __import__('copy').deepcopy(bn).double())
        f32 = fuse(layer, bn)
        cases.append({
            'name': name,
            'kind': 'linear' if isinstance(layer, nn.Linear) else 'conv',
            'groups': getattr(layer, 'groups', 1),
            'weight_shape': list(layer.weight.shape),
            'weight': float_list(layer.weight),
            'bias': float_list(layer.bias) if layer.bias is not None else None,
            'bn': {'weight': float_list(bn.weight), 'bias': float_list(bn.bias),
                   'running_mean': float_list(bn.running_mean), 'running_var': float_list(bn.running_var), 'eps': bn.eps},
            'folded_weight': float_list(f64.weight), 'folded_bias': float_list(f64.bias),
            'torch_f32_weight': float_list(f32.weight), 'torch_f32_bias': float_list(f32.bias),
        })
    return cases


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    sd = train_state()
    # A strided (non-contiguous) view: the reader must gather through size/stride/offset.
    sd['extra.view'] = torch.arange(20, dtype=torch.float32).reshape(4, 5)[1:, 1:4].t()
    expected: dict = {'generated_by': 'test/torch/generate_model_files.py', 'torch_version': torch.__version__, 'pt': {}}
    for tag, dtype in (('f32', torch.float32), ('f16', torch.float16), ('bf16', torch.bfloat16), ('f64', torch.float64)):
        d = with_dtype(sd, dtype)
        torch.save(d, os.path.join(OUT, f'state_{tag}.pt'))
        expected['pt'][tag] = {k: ({'shape': list(v.shape), 'values': float_list(v)} if v.is_floating_point()
                                   else {'shape': list(v.shape), 'int': str(int(v))}) for k, v in d.items()}

    st = {}
    for k, v in sd.items():
        if k.startswith('extra.'):
            continue
        if v.is_floating_point():
            dtype = torch.float16 if k.startswith('bn1.') else torch.bfloat16 if k.startswith('layer1.0.bn1.') else torch.float64 if k.startswith('head.') else torch.float32
            st[k] = v.to(dtype)
        else:
            st[k] = v
    write_safetensors(os.path.join(OUT, 'state.safetensors'), st, {'format': 'pt'})
    expected['safetensors'] = {k: ({'shape': list(v.shape), 'dtype': SAFETENSORS_DTYPES[v.dtype], 'values': float_list(v)} if v.is_floating_point()
                                   else {'shape': list(v.shape), 'dtype': 'I64', 'int': str(int(v))}) for k, v in st.items()}

    expected['onnx'] = bn_onnx(os.path.join(OUT, 'bn.onnx'))

    # A training checkpoint: nested dicts, an optimizer state (int keys, lists, tuples, floats).
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net.train()
    loss = net.bn1(net.conv1(torch.randn(2, 3, 4, 4))).square().mean()
    loss.backward()
    opt.step()
    torch.save({'model': net.state_dict(), 'optimizer': opt.state_dict(), 'epoch': 3, 'note': 'hello', 'lr': 0.01},
               os.path.join(OUT, 'checkpoint.pt'))
    expected['checkpoint'] = {'bn1.running_mean': float_list(net.bn1.running_mean),
                              'exp_avg_0': float_list(opt.state_dict()['state'][0]['exp_avg'])}

    torch.save({'w': torch.ones(3)}, os.path.join(OUT, 'legacy.pt'), _use_new_zipfile_serialization=False)
    torch.save({'w': torch.ones(3), 'payload': OsSystem()}, os.path.join(OUT, 'evil_os_system.pt'))
    torch.save({'payload': Eval(), 'w': torch.ones(3)}, os.path.join(OUT, 'evil_eval.pt'))
    torch.save({'w': torch.arange(4, dtype=torch.uint8)}, os.path.join(OUT, 'uint8.pt'))

    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(expected, f, indent=None, separators=(',', ':'))
        f.write('\n')
    with open(os.path.join(OUT, 'fold.json'), 'w') as f:
        json.dump({'generated_by': 'test/torch/generate_model_files.py', 'torch_version': torch.__version__, 'cases': fold_cases()},
                  f, separators=(',', ':'))
        f.write('\n')
    print('wrote', sorted(os.listdir(OUT)))


if __name__ == '__main__':
    main()
