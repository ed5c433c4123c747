"""Writes marlin-golden.json: Marlin-layout words for small fixed inputs, computed with numpy's
reshape/transpose semantics as an independent check of the TypeScript packer (our own code,
following the steps of the published format). Run: python3 make_marlin_golden.py"""
import json

import numpy as np


def lane_perm(bits):
    base = []
    for lane in range(32):
        col = lane // 4
        part = []
        for blk in (0, 1):
            r = 2 * (lane % 4)
            for row in (r, r + 1, r + 8, r + 9):
                part.append(16 * row + col + 8 * blk)
        for t in range(4):
            base += [p + 256 * t for p in part]
    il = [0, 2, 4, 6, 1, 3, 5, 7] if bits == 4 else [0, 2, 1, 3]
    return np.array(base).reshape(-1, len(il))[:, il].ravel()


def pack(q, k, n, bits):
    t = q.reshape(k // 16, 16, n // 16, 16).transpose(0, 2, 1, 3).reshape(k // 16, n * 16)
    t = t.reshape(-1, 1024)[:, lane_perm(bits)].reshape(k // 16, n * 16).astype(np.uint32)
    per = 32 // bits
    out = np.zeros((k // 16, n * 16 // per), dtype=np.uint32)
    for i in range(per):
        out |= t[:, i::per] << (bits * i)
    return out.view(np.int32)


def scale_perm(s, grouped):
    if grouped:
        p = [i + 8 * j for i in range(8) for j in range(8)]
    else:
        p = [2 * i + j for i in range(4) for j in (0, 1, 8, 9, 16, 17, 24, 25)]
    return s.reshape(-1, len(p))[:, p].ravel()


def zeros_pack(z, n, bits):
    p = [i + 8 * j for i in range(8) for j in range(8)]
    z = z.reshape(-1, 64)[:, p]
    il = [0, 2, 4, 6, 1, 3, 5, 7] if bits == 4 else [0, 2, 1, 3]
    z = z.reshape(-1, len(il))[:, il].reshape(-1, n).astype(np.uint32)
    per = 32 // bits
    out = np.zeros((z.shape[0], n // per), dtype=np.uint32)
    for i in range(per):
        out |= z[:, i::per] << (bits * i)
    return out.view(np.int32)


# Inputs are formulas the test recomputes: q[i] = (i * 7 + (i >> 5) * 3) % 2^bits over the
# flattened [k, n]; scales[i] = i * 37 % 65536; zeros[i] = (i * 5 + 3) % 2^bits.
cases = []
for k, n, bits, g in [(32, 128, 4, -1), (256, 64, 4, 128), (128, 64, 4, 32), (64, 128, 8, 32), (32, 64, 8, -1)]:
    groups = 1 if g == -1 else k // g
    idx = np.arange(k * n)
    q = ((idx * 7 + (idx >> 5) * 3) % (1 << bits)).astype(np.uint8).reshape(k, n)
    s = (np.arange(groups * n) * 37 % 65536).astype(np.uint16)
    z = ((np.arange(groups * n) * 5 + 3) % (1 << bits)).astype(np.uint8)
    cases.append({
        "k": k, "n": n, "bits": bits, "groupSize": g,
        "qweight": pack(q, k, n, bits).ravel().tolist(),
        "scales": scale_perm(s, g != -1 and g < k).tolist(),
        "zeros": zeros_pack(z, n, bits).ravel().tolist(),
    })
with open("marlin-golden.json", "w") as f:
    json.dump(cases, f)
