#!/usr/bin/env python3
"""Cross-checks one batch's loss and gradients of the `cifar` preset against PyTorch (a check for people, not CI).

Builds the `cifar` network in PyTorch (seed 0, default init), saves its parameters and a random batch of 8
(3x32x32, uniform [0, 1)), runs `cnn-as-mlp grad --model cifar` on each engine at one thread, and prints the loss
difference and the worst per-tensor gradient difference relative to that tensor's largest PyTorch gradient.
Usage: cifar_grad_vs_torch.py BINARY [WORKDIR]     (needs torch and safetensors)
"""
import os, subprocess, sys
import torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file, save_file


class Net(nn.Sequential):  # flattens before the first Linear, so parameter names match the spec's layer indices
    def forward(self, x):
        for m in self:
            x = m(x.flatten(1) if isinstance(m, nn.Linear) else x)
        return x


def main():
    binary = sys.argv[1]
    work = sys.argv[2] if len(sys.argv) > 2 else "."
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = Net(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
              nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
              nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
              nn.Linear(2048, 256), nn.ReLU(), nn.Linear(256, 10))
    p, b = os.path.join(work, "p.safetensors"), os.path.join(work, "b.safetensors")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, p)
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    save_file({"x": x, "y": y}, b)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    for eng in ["sparse", "direct", "im2col"]:
        g_file = os.path.join(work, f"g-{eng}.safetensors")
        subprocess.run([binary, "grad", "--model", "cifar", "--params", p, "--batch", b, "--out", g_file,
                        "--engine", eng, "--threads", "1"], check=True, stdout=subprocess.DEVNULL)
        g = load_file(g_file)
        worst = max(((g[k] - q.grad).abs().max() / q.grad.abs().max()).item() for k, q in net.named_parameters())
        print(f"engine={eng} loss_diff={(g['loss'] - loss).abs().item():.3g} worst_rel_grad_diff={worst:.3g}")


if __name__ == "__main__":
    main()
