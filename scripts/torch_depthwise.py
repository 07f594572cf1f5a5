#!/usr/bin/env python3
# PyTorch peer for the depthwise target of issue 13: nn.Conv2d(64, 64, 3, padding=1, groups=64) on a batch of 64
# images 64x56x56, 2 threads, median of 7 after a warm-up. The input- and weight-gradient timings include a forward
# pass (autograd needs it); subtract the forward time to compare with `compare`'s per-product times.
# Usage: PYTHON scripts/torch_depthwise.py   (torch)
import time, torch, torch.nn as nn, statistics as st
torch.set_num_threads(2); torch.manual_seed(0)
conv = nn.Conv2d(64, 64, 3, padding=1, groups=64)
x = torch.rand(64, 64, 56, 56, requires_grad=True)
def t(f, n=7):
    v=[]
    for i in range(n+1):
        a=time.perf_counter(); f(); b=time.perf_counter()
        if i: v.append(b-a)
    return st.median(v)*1e3
fwd = t(lambda: conv(x))
out = conv(x); g = torch.rand_like(out)
inp = t(lambda: torch.autograd.grad(conv(x), x, g))  # includes a forward
par = t(lambda: torch.autograd.grad(conv(x), conv.weight, g))
print(f"torch depthwise 64x56x56 batch 64, 2 threads: forward {fwd:.2f} ms, forward+input grad {inp:.2f} ms, forward+weight grad {par:.2f} ms")
