#!/usr/bin/env python3
"""The PyTorch peer ../shared/peers/torch_cifar.py with one option added, --norm: each channel standardised with
the training set's mean and (sample) standard deviation, as `cnn-as-mlp train --normalize` does (population
std there; the difference is a factor sqrt(n/(n-1)), n = 10,240,000 values per channel).

PyTorch CPU peer for the `cifar` preset: the same network and SGD, trained on a data set in the CIFAR-10
binary format (cifar-10-batches-bin: data_batch_1..5.bin, test_batch.bin). Pixels are x / 255.
Network: 3x32x32 > conv(32,3,pad=1) > relu > conv(32,3,pad=1) > relu > maxpool(2) > conv(64,3,pad=1) > relu >
conv(64,3,pad=1) > relu > maxpool(2) > conv(128,3,pad=1) > relu > maxpool(2) > dense(256) > relu > dense(10).
Prints one line per epoch:
  peer=torch threads=T batch=B epoch=E train_s=S img_per_s=R test_acc=A
Usage: torch_cifar_norm.py --data DIR [--epochs N] [--batch B] [--threads T] [--lr LR] [--limit N] [--norm]
"""
import argparse, os, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F


def read(files):
    raw = np.concatenate([np.fromfile(f, np.uint8).reshape(-1, 3073) for f in files])
    x = torch.tensor(raw[:, 1:].reshape(-1, 3, 32, 32), dtype=torch.float32) / 255.0
    return x, torch.tensor(raw[:, 0], dtype=torch.long)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--norm", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = read([os.path.join(a.data, f"data_batch_{k}.bin") for k in range(1, 6)])
    xt, yt = read([os.path.join(a.data, "test_batch.bin")])
    if a.norm:
        m = x.mean((0, 2, 3), keepdim=True); s = x.std((0, 2, 3), keepdim=True)
        x = (x - m) / s; xt = (xt - m) / s
    if a.limit:
        x, y = x[:a.limit], y[:a.limit]
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(2048, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, weight_decay=1e-4)
    for ep in range(a.epochs):
        perm = torch.randperm(len(x))
        t = time.perf_counter()
        for i in range(0, len(x), a.batch):
            idx = perm[i:i + a.batch]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
        dt = time.perf_counter() - t
        with torch.no_grad():
            acc = sum((net(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item()
                      for i in range(0, len(xt), 1000)) / len(xt)
        print(f"peer=torch threads={a.threads} batch={a.batch} epoch={ep} train_s={dt:.3f} "
              f"img_per_s={len(x) / dt:.0f} test_acc={acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
