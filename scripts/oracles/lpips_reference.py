"""Independent numpy oracle for LPIPS (lpips package, net='alex', v0.1) with random weights.

Writes Tests/Fixtures/lpips_random.safetensors: PyTorch-layout weights under the lpips package's
state-dict names (net.sliceK.N.weight OIHW, linK.model.1.weight [1,C,1,1]), two image batches in
[-1, 1] (NHWC, as the Swift side takes them) and the expected distances, computed here in float64
in NCHW. Real LPIPS weights cannot be downloaded here; this checks the architecture and layouts.
Run: python3 scripts/oracles/lpips_reference.py
"""
import json
import struct

import numpy as np

rng = np.random.default_rng(1234)
LAYERS = [(64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]
INDEX = [0, 3, 6, 8, 10]
SHIFT = np.array([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)
SCALE = np.array([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1)


def conv(x, w, b, stride, pad):  # x NCHW, w OIHW: cross-correlation as torch.nn.Conv2d
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def maxpool(x, k=3, s=2):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, x[:, :, i:i + s * oh:s, j:j + s * ow:s])
    return out


def features(x, p):
    h = (x - SHIFT) / SCALE
    taps = []
    for i, (c, k, s, pad) in enumerate(LAYERS):
        if i in (1, 2):
            h = maxpool(h)
        h = np.maximum(conv(h, p[f"w{i}"], p[f"b{i}"], s, pad), 0)
        taps.append(h)
    return taps


def lpips(x, y, p):
    total = 0
    for k, (f0, f1) in enumerate(zip(features(x, p), features(y, p))):
        n0 = f0 / (np.sqrt((f0 ** 2).sum(1, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1 ** 2).sum(1, keepdims=True)) + 1e-10)
        d = (n0 - n1) ** 2
        total = total + np.einsum("nchw,c->nhw", d, p[f"lin{k}"]).mean(axis=(1, 2))
    return total


params, tensors = {}, {}
cin = 3
for i, (c, k, s, pad) in enumerate(LAYERS):
    w = rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (c, cin, k, k)).astype(np.float32)
    b = rng.normal(0, 0.05, c).astype(np.float32)
    lin = rng.uniform(0, 0.2, c).astype(np.float32)
    params[f"w{i}"], params[f"b{i}"], params[f"lin{i}"] = w.astype(np.float64), b.astype(np.float64), lin.astype(np.float64)
    tensors[f"net.slice{i + 1}.{INDEX[i]}.weight"] = w
    tensors[f"net.slice{i + 1}.{INDEX[i]}.bias"] = b
    tensors[f"lin{i}.model.1.weight"] = lin.reshape(1, c, 1, 1)
    cin = c
x = rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1).astype(np.float32)
d = lpips(x.transpose(0, 3, 1, 2).astype(np.float64), y.transpose(0, 3, 1, 2).astype(np.float64), params)
tensors["input.x"], tensors["input.y"], tensors["expected.distance"] = x, y, d.astype(np.float32)

header, blobs, offset = {}, [], 0
for name in sorted(tensors):
    a = np.ascontiguousarray(tensors[name], dtype="<f4")
    header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
    blobs.append(a.tobytes())
    offset += a.nbytes
header["__metadata__"] = {"generator": "scripts/oracles/lpips_reference.py (numpy float64, random weights)"}
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open("Tests/Fixtures/lpips_random.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print("distances", d)
