#!/usr/bin/env python3
"""Writes a small, learnable, synthetic image folder in torchvision's ImageFolder layout:

    OUT/train/class_00/00000.png ...   OUT/test/class_00/00000.png ...

Each class has its own colour (a hue around the colour wheel), its own stripe direction and a bright disc in
its own place; every image jitters them (stripe phase, disc position, brightness) and adds Gaussian noise, so
a network must look at the picture rather than one pixel to tell the classes apart. The same arguments give
the same bytes: every image draws from its own generator seeded with (seed, split, class, index).

Read it with `cnn-as-mlp train --model vgg16 --data OUT` (10 classes of 3x224x224 by default, which is the
`vgg16` preset's input and output), or in PyTorch with `torchvision.datasets.ImageFolder(OUT + "/train")`.
The folder is written under a temporary name next to OUT and renamed at the end; an existing OUT is refused.

Needs numpy and Pillow (`pip install numpy pillow`).

    python3 scripts/make_image_folder.py OUT [--classes 10] [--train-per-class 16] [--test-per-class 4]
        [--size 224] [--channels 3] [--format png|jpg] [--seed 0]
"""

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image


def hue_rgb(h):
    """An RGB colour in [0.15, 0.85] of hue h in [0, 1) (full saturation, mid value)."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    rgb = 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return 0.15 + 0.7 * rgb


def image(seed, split, cls, index, classes, size, channels):
    """One (size, size, channels) uint8 image of class `cls`."""
    rng = np.random.default_rng([seed, split, cls, index])
    y, x = np.mgrid[0:size, 0:size] / size
    base = hue_rgb(cls / classes)
    angle = np.pi * cls / classes
    freq = 4.0 + 2.0 * (cls % 3)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    stripes = 0.5 + 0.5 * np.sin(2.0 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) + phase)
    # The disc's centre: on a circle, at the class's angle, moved a little per image.
    cx = 0.5 + 0.28 * np.cos(2.0 * np.pi * cls / classes) + rng.uniform(-0.05, 0.05)
    cy = 0.5 + 0.28 * np.sin(2.0 * np.pi * cls / classes) + rng.uniform(-0.05, 0.05)
    disc = ((x - cx) ** 2 + (y - cy) ** 2 < 0.12**2).astype(np.float64)
    gain = rng.uniform(0.85, 1.15)
    img = gain * (base[None, None, :] * (0.6 + 0.4 * stripes[..., None])) + 0.35 * disc[..., None]
    img += rng.normal(0.0, 0.08, size=img.shape)
    img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if channels == 1:
        # PIL's luma (ITU-R 601), as the reader converts colour images to grey.
        img = ((19595 * img[..., 0].astype(np.uint32) + 38470 * img[..., 1] + 7471 * img[..., 2] + 0x8000) >> 16)
        return img.astype(np.uint8)
    return img


def positive(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{s}: must be at least 1")
    return v


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the folder to create (must not exist)")
    p.add_argument("--classes", type=positive, default=10, help="number of classes, at most 256 [10]")
    p.add_argument("--train-per-class", type=positive, default=16, help="training images per class [16]")
    p.add_argument("--test-per-class", type=positive, default=4, help="test images per class [4]")
    p.add_argument("--size", type=positive, default=224, help="height and width in pixels [224]")
    p.add_argument("--channels", type=int, choices=[1, 3], default=3, help="3 (RGB) or 1 (grey) [3]")
    p.add_argument("--format", choices=["png", "jpg"], default="png", help="file format [png]")
    p.add_argument("--seed", type=int, default=0, help="random seed [0]")
    a = p.parse_args()
    if a.classes > 256:
        sys.exit(f"error: --classes {a.classes}: at most 256")
    if os.path.lexists(a.out):
        sys.exit(f"error: {a.out}: already exists; choose a new folder")
    parent = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(parent):
        sys.exit(f"error: {parent}: no such folder")
    tmp = tempfile.mkdtemp(prefix=".make_image_folder-", dir=parent)
    try:
        width = len(str(a.classes - 1))
        for split_id, (split, n) in enumerate([("train", a.train_per_class), ("test", a.test_per_class)]):
            for cls in range(a.classes):
                d = os.path.join(tmp, split, f"class_{cls:0{width}d}")
                os.makedirs(d)
                for i in range(n):
                    img = image(a.seed, split_id, cls, i, a.classes, a.size, a.channels)
                    path = os.path.join(d, f"{i:05d}.{a.format}")
                    if a.format == "png":
                        Image.fromarray(img).save(path, optimize=False, compress_level=6)
                    else:
                        Image.fromarray(img).save(path, quality=95, subsampling=0)
        os.rename(tmp, a.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = a.classes * (a.train_per_class + a.test_per_class)
    print(f"{a.out}: {a.classes} classes, {a.classes * a.train_per_class} train and "
          f"{a.classes * a.test_per_class} test images of {a.channels}x{a.size}x{a.size} ({a.format}), {total} files")


if __name__ == "__main__":
    main()
