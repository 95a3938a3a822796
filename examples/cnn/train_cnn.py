#!/usr/bin/python3
"""Train the example CNN for a few seconds on CPU and save it three ways, plus a reference batch.

    /usr/bin/python3 examples/cnn/train_cnn.py        (Debian python3-torch; 60 Adam steps, a few seconds)

The network is a small ResNet: conv 3→16 → BN → ReLU, one residual block (conv → BN → ReLU → conv
→ BN, + identity, ReLU), global average pooling, linear 16→4. Data: 16×16 RGB images of one of four
oriented gratings (horizontal, vertical, two diagonals) with random frequency, phase, colour and
noise; the class is the orientation.

Writes, next to this script (all small):
  model.pt             torch.save(model.state_dict())
  model.safetensors    the same state dict, written by hand (Debian's torch has no safetensors module)
  model.onnx           torch.onnx.export in eval mode with BatchNormalization nodes kept
                       (training=PRESERVE, do_constant_folding=False; the default export folds them)
  reference.safetensors  images [32, 3, 16, 16] (float32), labels (int64), and the model's logits
                       in float64 (the reference: the float32 weights and images run in float64)
                       and float32 (PyTorch's own result)
"""
from __future__ import annotations

import json
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True
torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 16
CLASSES = 4
STEPS = 60


class BasicBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class SmallResNet(nn.Module):
    def __init__(self, width: int = 16, classes: int = CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(BasicBlock(width))
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = x.mean(dim=(2, 3))
        return self.fc(x)


def gratings(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing='ij')
    angles = labels.float() * (torch.pi / 4)
    freq = 0.5 + torch.rand(n, generator=g) * 0.7
    phase = torch.rand(n, generator=g) * 2 * torch.pi
    proj = torch.cos(angles)[:, None, None] * xx + torch.sin(angles)[:, None, None] * yy
    wave = torch.sin(freq[:, None, None] * proj + phase[:, None, None])
    colour = 0.5 + torch.rand(n, 3, generator=g)
    images = colour[:, :, None, None] * wave[:, None] + 0.3 * torch.randn(n, 3, SIZE, SIZE, generator=g) + 0.2
    return images.float(), labels


SAFETENSORS_DTYPES = {torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64'}


def write_safetensors(path: str, tensors: dict) -> None:
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().numpy().tobytes()  # little-endian on every machine torch runs on here
        header[name] = {'dtype': SAFETENSORS_DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def main() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = SmallResNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    start = time.time()
    step = 0
    model.train()
    # A fixed step count (not a time budget) so the saved files are reproducible; ~1-5 s on one core.
    while step < STEPS:
        x, y = gratings(64, g)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    model.eval()
    images, labels = gratings(32, torch.Generator().manual_seed(123))
    with torch.no_grad():
        logits32 = model(images)
        logits64 = SmallResNet().double().eval()
        logits64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()})
        logits64 = logits64(images.double())
    accuracy = (logits32.argmax(1) == labels).float().mean().item()
    print(f'trained {step} steps in {time.time() - start:.1f} s, final loss {loss.item():.4f}, held-out accuracy {accuracy * 100:.1f}%')

    sd = model.state_dict()
    torch.save(sd, os.path.join(HERE, 'model.pt'))
    write_safetensors(os.path.join(HERE, 'model.safetensors'), dict(sd))
    torch.onnx.export(model, images[:1], os.path.join(HERE, 'model.onnx'), input_names=['image'], output_names=['logits'],
                      opset_version=13, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}})
    write_safetensors(os.path.join(HERE, 'reference.safetensors'),
                      {'images': images, 'labels': labels, 'logits': logits64, 'logits_f32': logits32.double()})
    for name in ('model.pt', 'model.safetensors', 'model.onnx', 'reference.safetensors'):
        print(f'{name}: {os.path.getsize(os.path.join(HERE, name))} bytes')


if __name__ == '__main__':
    main()
