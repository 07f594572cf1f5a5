"""Loads a cnn-as-mlp checkpoint (model.safetensors) into torch.nn, strictly, and checks its connectivity.

    ${PYTHON:-python3} scripts/load_in_torch.py RUN_DIR/model.safetensors

The spec comes from the file's metadata; grouped convolutions become nn.Conv2d(groups=G) (weight
(c_out, c_in/G, k, k)); a convolution with a connection table becomes a dense nn.Conv2d masked by
torch.nn.utils.prune.custom_from_mask, and the script checks that every entry outside the table is exactly 0.
A pruned layer (`train --prune`, metadata `mask.{i}.weight`: the kept entries, 8 to a byte, bit i % 8 of byte
i / 8, hex) is masked the same way, and its removed entries are checked to be exactly 0.
"""
import sys
from pathlib import Path

import torch
import torch.nn.utils.prune
from safetensors.torch import load_file
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
from make_fixtures import build, parse_layer  # noqa: E402  (the fixtures' spec -> nn.Sequential)

LENET5_C3 = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 0], [5, 0, 1], [0, 1, 2, 3], [1, 2, 3, 4],
             [2, 3, 4, 5], [3, 4, 5, 0], [4, 5, 0, 1], [5, 0, 1, 2], [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5],
             [0, 1, 2, 3, 4, 5]]
TABLES = {"lenet5_c3": LENET5_C3}


def main(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        spec = meta["spec"]
    state = {k: v.double() for k, v in load_file(path).items()}
    net, (c, h, w) = build(spec)
    net = net.double()
    net.load_state_dict(state, strict=True)
    layers = spec.replace(" ", "").split(">")[1:]
    for i, text in enumerate(layers):
        name, _, opts = parse_layer(text)
        if name == "conv" and "table" in opts:
            rows = TABLES[opts["table"]]
            mask = torch.zeros_like(net[i].weight)
            for o, reads in enumerate(rows):
                mask[o, reads] = 1
            outside = net[i].weight[mask == 0]
            assert torch.all(outside == 0), f"layer {i}: {int((outside != 0).sum())} entries outside the table"
            torch.nn.utils.prune.custom_from_mask(net[i], "weight", mask)
            print(f"layer {i}: table {opts['table']}, {int(mask.sum())} of {mask.numel()} weights, zeros outside")
        if name == "conv" and "groups" in opts:
            print(f"layer {i}: nn.Conv2d groups={net[i].groups}, weight {tuple(net[i].weight.shape)}")
        key = f"mask.{i}.weight"
        if key in meta:
            weight = net[i].weight
            bits = bytes.fromhex(meta[key])
            keep = [(bits[j // 8] >> (j % 8)) & 1 for j in range(weight.numel())]
            mask = torch.tensor(keep, dtype=weight.dtype).reshape(weight.shape)
            outside = weight[mask == 0]
            assert torch.all(outside == 0), f"layer {i}: {int((outside != 0).sum())} removed entries are not 0"
            torch.nn.utils.prune.custom_from_mask(net[i], "weight", mask)
            print(f"layer {i}: pruned, {int(mask.sum())} of {mask.numel()} weights kept, zeros elsewhere")
    out = net(torch.rand(2, c, h, w, dtype=torch.float64))
    print(f"{path}: loaded strictly into torch {torch.__version__}; output {tuple(out.shape)}")


if __name__ == "__main__":
    main(sys.argv[1])
