#!/usr/bin/env python3
"""Remakes every measured result of cnn-as-mlp on this machine, in one run: `scripts/results.sh [--quick] [--out DIR]`.

Writes DIR (default `docs/results/<cpu>/`; with --quick `target/results-quick/<cpu>/`):
  results.md    every table, each with the command that measured it
  summary.md    the short table the README quotes (a test keeps the two equal)
  *.csv         one file per table, every run kept (not only the medians)
  compare/      `compare` on the layer grid (compare.md, compare.csv, compare-time.png, compare-memory.png)
  sparsity/     `compare --sparsity` on c32-64 and c64-56 (with compare-sparsity.png)
  networks/     `compare --model` totals (lenet5, cifar; vgg16 in the full run)
Each file opens with the CPU model, SIMD level, cores, commit, date, rustc and torch versions.

This script needs only the Python standard library. The PyTorch peers (scripts/peers/) run under $PYTHON
(default python3); without torch the PyTorch columns say "no torch" and the ratios are left out. Synthetic
colour data needs numpy under $PYTHON or python3 (scripts/make_synthetic_cifar.py); without it the `cifar`
rows say so. MPI rows need `mpirun` and a build with `--features mpi`.

Timing rules: every configuration runs REPEATS times (5, --quick 1), interleaved (engine by engine, then
PyTorch, round after round), and the tables give the median with the min-max range.
"""
import argparse
import csv
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "cnn-as-mlp")
PEERS = os.path.join(ROOT, "scripts", "peers")
MNIST = os.path.join(ROOT, "data", "mnist-10k")


def run(args, env=None, check=True):
    """Runs a command; returns its stdout. A failure stops the report with the command and its stderr."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(args, cwd=ROOT, env=e, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"results: `{' '.join(args)}` failed ({p.returncode}):\n{p.stderr.strip()[-2000:]}")
    return p.stdout


def field(text, key):
    """The last `key=value` of `text` as a float."""
    found = re.findall(rf"\b{key}=([0-9.eE+-]+)", text)
    if not found:
        sys.exit(f"results: no {key}= in:\n{text[-1000:]}")
    return float(found[-1])


def med(xs):
    return statistics.median(xs) if xs else None


def span(xs, fmt="{:.0f}"):
    """`median (min-max)`, or the one value."""
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "-"


class Machine:
    """What every file's header names."""

    def __init__(self, python, quick):
        info = open("/proc/cpuinfo").read()
        m = re.search(r"model name\s*:\s*(.*)", info)
        self.cpu = m.group(1).strip() if m else "unknown CPU"
        m = re.search(r"flags\s*:\s*(.*)", info)
        flags = set(m.group(1).split()) if m else set()
        level = "AVX-512" if "avx512f" in flags else "AVX2 + FMA" if {"avx2", "fma"} <= flags else "portable"
        cap = os.environ.get("CNN_AS_MLP_SIMD")
        self.simd = f"{level} (capped by CNN_AS_MLP_SIMD={cap})" if cap and cap != "auto" else level
        self.cores = os.cpu_count()
        commit = run(["git", "rev-parse", "--short=12", "HEAD"]).strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).strip()
        self.commit = commit + ("+changes" if dirty else "")
        self.date = datetime.date.today().isoformat()
        self.rustc = run(["rustc", "--version"]).strip()
        self.python = python
        p = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
        self.torch = p.stdout.strip() if p.returncode == 0 else None
        p = subprocess.run([python, "-c", "import numpy"], capture_output=True)
        self.numpy_python = python if p.returncode == 0 else None
        # The synthetic set needs numpy only: any interpreter that has it (Debian's python3-numpy is in the
        # system interpreter, which another python3 on the PATH may hide).
        for candidate in ([] if self.numpy_python else ["python3", "/usr/bin/python3"]):
            if shutil.which(candidate) and subprocess.run([candidate, "-c", "import numpy"], capture_output=True).returncode == 0:
                self.numpy_python = candidate
                break
        self.mpirun = shutil.which("mpirun")
        self.quick = quick

    def slug(self):
        s = re.sub(r"\((r|tm)\)|\bcpu\b|@.*", "", self.cpu.lower())
        return re.sub(r"[^a-z0-9]+", "-", s).strip("-") or "unknown-cpu"

    def header(self):
        torch = f"torch {self.torch}" if self.torch else "no torch (PyTorch columns skipped)"
        kind = "quick run (`--quick`: one round each, small sizes; not for quoting)" if self.quick else "full run"
        if getattr(self, "skip", None):
            kind += f" without {', '.join(sorted(self.skip))}"
        return (
            f"Machine: {self.cpu}, {self.simd} kernels, {self.cores} cores. Commit {self.commit}, {self.date}, "
            f"{self.rustc}, {torch}. {kind}; regenerate with `scripts/results.sh`."
        )


class Report:
    def __init__(self, out, machine):
        self.out, self.m = out, machine
        self.md = [f"# Results: {machine.cpu}", "", machine.header(), ""]
        self.summary = []
        self.peak = {}

    def section(self, title, command, lines):
        self.md += [f"## {title}", "", f"`{command}`", ""] + lines + [""]

    def csv(self, name, header, rows):
        path = os.path.join(self.out, name)
        with open(path + ".tmp", "w", newline="") as f:
            f.write(f"# {self.m.header()}\n")
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        os.replace(path + ".tmp", path)

    def add_summary(self, order, result, ours, reference, r):
        """A row of the README's table; rows are sorted by `order` (0 training speed, 1 whole-network steps,
        2 layers, 3 pruning, 4 memory, 5 the machine)."""
        self.summary.append((order, len(self.summary), result, ours, reference, r))

    def write(self, partial=False):
        note = ["", "*Partial: the run stopped before its last part; rerun `scripts/results.sh` for the rest.*"] if partial else []
        write(os.path.join(self.out, "results.md"), "\n".join(self.md + note) + "\n")
        lines = [
            "| result | this crate | reference | ratio |",
            "|---|---|---|---|",
        ] + [f"| {a} | {b} | {c} | {d} |" for _, _, a, b, c, d in sorted(self.summary)]
        text = "\n".join(
            [f"# Summary: {self.m.cpu}", "", self.m.header(), ""]
            + lines
            + ["", "Every figure: median of interleaved runs; details and commands in [the full report](results.md)."]
        )
        write(os.path.join(self.out, "summary.md"), text + "\n")


def update_readme(out):
    """Copies `out`'s summary (its header lines and table) between the README's results markers, with links
    to the report; `tests/it/readme.rs` checks the two agree."""
    summary = open(os.path.join(out, "summary.md"), encoding="utf-8").read().splitlines()
    body = [l for l in summary[1:] if not l.startswith("Every figure:")]
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    rel = os.path.relpath(out, ROOT)
    body += ["", f"Full report, with every command and the runs behind each median: [{rel}/results.md]({rel}/results.md) "
             f"(summary: [{rel}/summary.md]({rel}/summary.md))."]
    path = os.path.join(ROOT, "README.md")
    text = open(path, encoding="utf-8").read()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    i, j = text.index(begin) + len(begin), text.index(end)
    write(path, text[:i] + "\n" + "\n".join(body) + "\n" + text[j:])


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def train_img_s(args, threads):
    out = tempfile.mkdtemp(prefix="results-run-")
    try:
        text = run([BIN, "train", *args, "--threads", str(threads), "--out", os.path.join(out, "run"), "--quiet"])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return field(text, "img_per_s"), field(text, "test_acc")


def peer(script, args, key="img_per_s"):
    text = run([REPORT_PY, os.path.join(PEERS, script), *args])
    return field(text, key), text


def fma_peak(rep):
    rows, lines = [], ["| threads | lanes | GFLOP/s (median of 7) |", "|---|---|---|"]
    for t in (1, 2):
        text = run([os.path.join(ROOT, "target", "release", "examples", "fma_peak"), str(t)])
        for m in re.finditer(r"threads (\d+): ([0-9.]+) GFLOP/s, (\d+) lanes", text):
            rows.append([m.group(1), m.group(3), m.group(2)])
            lines.append(f"| {m.group(1)} | {m.group(3)} | {m.group(2)} |")
    peak = {int(r[0]): float(r[2]) for r in rows}  # the widest lanes come last
    rep.peak = peak
    sgemm = {}
    if rep.m.torch:
        lines += ["", "PyTorch SGEMM, 1024³ f32 (median of 7):", "", "| threads | GFLOP/s |", "|---|---|"]
        for t in (1, 2):
            code = (
                "import torch,time;torch.set_num_threads(%d);a=torch.randn(1024,1024);b=torch.randn(1024,1024);"
                "[a@b for _ in range(3)];ts=[]\nfor _ in range(7):\n t=time.perf_counter();a@b;ts.append(time.perf_counter()-t)\n"
                "print('gflops=%%.1f'%%(2*1024**3/sorted(ts)[3]/1e9))" % t
            )
            g = field(run([REPORT_PY, "-c", code]), "gflops")
            sgemm[t] = g
            rows.append([str(t), "sgemm", f"{g:.1f}"])
            lines.append(f"| {t} | {g:.1f} |")
    rep.csv("fma_peak.csv", ["threads", "lanes", "gflops"], rows)
    rep.section("The ceiling: FMA peak and PyTorch's SGEMM", "target/release/examples/fma_peak T", lines)
    if 2 in peak and 2 in sgemm:
        rep.add_summary(5, "f32 FMA peak / PyTorch SGEMM 1024³, 2 threads (GFLOP/s)", f"{peak[2]:.0f}", f"{sgemm[2]:.0f}", "-")
    return peak


def lenet(rep, repeats):
    limit = ["--limit", "2000", "--test-limit", "500"] if rep.m.quick else []
    engines = ["sparse", "direct", "im2col"]
    runs = {}
    for _ in range(repeats):
        for t in (1, 2):
            for e in engines:
                v, _ = train_img_s(["--model", "lenet5", "--epochs", "1", "--engine", e, *limit], t)
                runs.setdefault((e, t), []).append(v)
            if rep.m.torch:
                plim = ["--limit", "2000"] if rep.m.quick and "--limit" in open(os.path.join(PEERS, "torch_lenet.py")).read() else []
                v, _ = peer("torch_lenet.py", ["--data", MNIST, "--threads", str(t), "--epochs", "1", *plim])
                runs.setdefault(("torch", t), []).append(v)
    return table_img_s(rep, "lenet5", "LeNet-5 training on MNIST-10k, batch 64, one epoch (img/s)",
                       "cnn-as-mlp train --model lenet5 --epochs 1 --engine E --threads T; scripts/peers/torch_lenet.py --data data/mnist-10k --threads T",
                       runs, engines)


def table_img_s(rep, name, title, command, runs, engines):
    lines = ["| threads | " + " | ".join(engines + ["PyTorch"]) + " | sparse ÷ PyTorch |", "|---" * (len(engines) + 3) + "|"]
    rows = []
    for t in (1, 2):
        cells = [span(runs.get((e, t), [])) for e in engines + ["torch"]]
        cells[-1] = cells[-1] if rep.m.torch else "no torch"
        r = ratio(med(runs.get(("sparse", t), [])), med(runs.get(("torch", t), [])))
        lines.append(f"| {t} | " + " | ".join(cells) + f" | {r} |")
        for (e, tt), vs in runs.items():
            if tt == t:
                rows += [[e, t, i, v] for i, v in enumerate(vs)]
    rep.csv(f"{name}.csv", ["engine", "threads", "round", "img_per_s"], rows)
    rep.section(title, command, lines)
    return runs


def synthetic_cifar(rep, tmp):
    if not rep.m.numpy_python:
        return None
    d = os.path.join(tmp, "synthetic-cifar")
    n = "120" if rep.m.quick else "600"
    run([rep.m.numpy_python, os.path.join(ROOT, "scripts", "make_synthetic_cifar.py"), d, "--train-per-file", n, "--test", "200"])
    return d


def cifar(rep, repeats, data):
    title = "`cifar` training on the synthetic colour set, one epoch (img/s)"
    if not data:
        rep.section(title, "-", ["Skipped: no numpy to write the synthetic set (scripts/make_synthetic_cifar.py)."])
        return {}
    # (batch, images, rounds): batch 8 runs fewer, smaller rounds (it is the slow one).
    plan = [(64, "512", 1)] if rep.m.quick else [(64, "1280", repeats), (8, "640", 3)]
    out = {}
    for b, n, rounds in plan:
        runs = {}
        for _ in range(rounds):
            for t in (1, 2):
                for e in ("sparse", "direct"):
                    v, _ = train_img_s(["--model", "cifar", "--data", data, "--epochs", "1", "--limit", n,
                                        "--test-limit", "200", "--batch", str(b), "--engine", e], t)
                    runs.setdefault((e, t), []).append(v)
                if rep.m.torch:
                    v, _ = peer("torch_cifar.py", ["--data", data, "--threads", str(t), "--epochs", "1", "--limit", n,
                                                   "--batch", str(b), "--lr", "0.01", "--normalize"])
                    runs.setdefault(("torch", t), []).append(v)
        table_img_s(rep, f"cifar-b{b}", f"{title}, batch {b}, {n} images",
                    f"cnn-as-mlp train --model cifar --data SYNTHETIC --epochs 1 --limit {n} --batch {b} --engine E --threads T; "
                    f"scripts/peers/torch_cifar.py --data SYNTHETIC --limit {n} --batch {b} --lr 0.01 --normalize --threads T",
                    runs, ["sparse", "direct"])
        out[b] = runs
    return out


def last_epoch(args, threads):
    """Trains; returns the last epoch's (img/s, test accuracy) from the run's metrics.csv."""
    out = tempfile.mkdtemp(prefix="results-run-")
    try:
        run([BIN, "train", *args, "--threads", str(threads), "--out", os.path.join(out, "run"), "--quiet"])
        with open(os.path.join(out, "run", "metrics.csv")) as f:
            last = list(csv.DictReader(f))[-1]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return float(last["img_per_s"]), float(last["test_acc"])


def pruned_cifar(rep, data):
    """`cifar` pruned to 90% by `train --prune` against PyTorch training the dense network."""
    title = "`cifar` pruned to 90% while training, against PyTorch's dense `cifar` (last epoch, 2 threads)"
    if not data:
        rep.section(title, "-", ["Skipped: no synthetic colour set (numpy missing)."])
        return
    # Pruning starts once the network has learnt something (after 3 of 8 epochs) and reaches 90% before the
    # last epoch: pruned from the second epoch of a 4-epoch run, the same network fell to chance.
    n, epochs, schedule = ("256", "2", []) if rep.m.quick else ("2560", "8", ["--prune-start", "3", "--prune-end", "7"])
    common = ["--model", "cifar", "--data", data, "--limit", n, "--test-limit", "200", "--epochs", epochs]
    dense = last_epoch(common, 2)
    pruned = last_epoch(common + ["--prune", "0.9"] + schedule, 2)
    lines = ["| run | img/s (last epoch) | test accuracy |", "|---|---|---|",
             f"| sparse, dense kernels | {dense[0]:.0f} | {dense[1]:.4f} |", f"| sparse, pruned to 90% | {pruned[0]:.0f} | {pruned[1]:.4f} |"]
    if rep.m.torch:
        text = run([REPORT_PY, os.path.join(PEERS, "torch_cifar.py"), "--data", data, "--threads", "2", "--epochs", epochs,
                    "--limit", n, "--lr", "0.01", "--normalize"])
        py, acc = field(text, "img_per_s"), field(text, "test_acc")
        lines.append(f"| PyTorch, dense | {py:.0f} | {acc:.4f} |")
        rep.add_summary(3, "`cifar` pruned to 90% while training, last epoch, 2 threads (img/s; test accuracy)",
                        f"{pruned[0]:.0f}; {pruned[1]:.3f}", f"{py:.0f}; {acc:.3f} (PyTorch dense)", ratio(pruned[0], py))
    rep.csv("cifar-pruned.csv", ["run", "img_per_s", "test_acc"], [["dense", *dense], ["pruned-0.9", *pruned]])
    rep.section(title, f"cnn-as-mlp train --model cifar --data SYNTHETIC --limit {n} --test-limit 200 --epochs {epochs} "
                f"[--prune 0.9 {' '.join(schedule)}] --threads 2; "
                f"scripts/peers/torch_cifar.py --data SYNTHETIC --limit {n} --epochs {epochs} --lr 0.01 --normalize --threads 2", lines)


def compare(rep, args, sub):
    d = os.path.join(rep.out, sub)
    os.makedirs(d, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="results-compare-")
    try:
        run([BIN, "compare", *args, "--out", os.path.join(tmp, "c")])
        for f in os.listdir(os.path.join(tmp, "c")):
            shutil.copy(os.path.join(tmp, "c", f), os.path.join(d, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(d, "compare.csv")) as f:
        return list(csv.DictReader(f))


def ms(row, *keys):
    """The sum of the row's times in ms; a layer without parameters has no parameter gradient (counted 0)."""
    vals = [row.get(k) for k in keys]
    if not vals[0]:
        return None
    return sum(float(v) for v in vals if v) * 1e3


SHAPE = re.compile(r"(\d+)x(\d+)x(\d+) > conv\((\d+),(\d+)(?:,pad=(\d+))?\)")


def torch_layer(rep, spec, batch, threads, repeats):
    m = SHAPE.match(spec.replace(" ", " "))
    if not (rep.m.torch and m):
        return None
    c, h, w, co, k, p = (int(g or 0) for g in m.groups())
    _, text = peer("torch_layer.py", [str(c), str(h), str(w), str(co), str(k), str(p), "--batch", str(batch),
                                      "--threads", str(threads), "--repeats", str(repeats)], key="sum_ms")
    return {k: field(text, k) for k in ("fwd_ms", "dx_ms", "dw_ms", "sum_ms")}


def grid(rep, repeats):
    layers = "lenet" if rep.m.quick else "all"
    rows = compare(rep, ["--layers", layers, "--repeats", str(repeats), "--threads", "2"], "compare")
    lines = ["| layer | sparse | direct | im2col | sparse index | fastest |", "|---|---|---|---|---|---|"]
    by = {}
    for r in rows:
        by.setdefault(r["layer"], {})[r["formulation"]] = r
    for layer, engines in by.items():
        t = {e: ms(r, "forward_s", "input_grad_s", "param_grad_s") for e, r in engines.items()}
        best = min((v, e) for e, v in t.items() if v) if any(t.values()) else (None, "-")
        idx = engines.get("sparse", {}).get("index_bytes")
        times = " | ".join(f"{t[e]:.2f}" if t.get(e) else "-" for e in ("sparse", "direct", "im2col"))
        index = f"{int(idx) / 2**20:.2f} MiB" if idx else "-"
        lines.append(f"| {layer} | {times} | {index} | {best[1]} |")
    rep.section("Layer grid: forward + input gradient + parameter gradient (ms), 2 threads, batch 64",
                f"cnn-as-mlp compare --layers {layers} --repeats {repeats} --threads 2 (full output in compare/)", lines)


def batch_sweep(rep, repeats):
    """c64-56 at batch 1, 8, 32 against torch_layer.py: where the lanes run empty."""
    spec = "64x56x56 > conv(64,3,pad=1)"
    batches = (1, 8) if rep.m.quick else (1, 8, 32)
    lines = ["| batch | threads | sparse | direct | im2col | PyTorch | sparse ÷ PyTorch (speed) | sparse GFLOP/s (% of FMA peak) |",
             "|---|---|---|---|---|---|---|---|"]
    rows_out = []
    for b in batches:
        for t in (1, 2):
            rows = compare(rep, ["--layers", spec, "--batch", str(b), "--repeats", str(repeats), "--threads", str(t)], f"c64-56/b{b}-t{t}")
            t_ms = {r["formulation"]: ms(r, "forward_s", "input_grad_s", "param_grad_s") for r in rows}
            tl = torch_layer(rep, spec, b, t, max(3, repeats))
            py = tl["sum_ms"] if tl else None
            times = " | ".join(f"{t_ms[e]:.2f}" if t_ms.get(e) else "-" for e in ("sparse", "direct", "im2col"))
            theirs = f"{py:.2f} | {ratio(py, t_ms.get('sparse'))}" if py else "no torch | -"
            flops = next((3 * float(r["flops"]) for r in rows if r["formulation"] == "sparse"), None)
            gf = flops / (t_ms["sparse"] / 1e3) / 1e9 if flops and t_ms.get("sparse") else None
            eff = f"{gf:.1f} ({100 * gf / rep.peak[t]:.0f}%)" if gf and rep.peak.get(t) else "-"
            lines.append(f"| {b} | {t} | {times} | {theirs} | {eff} |")
            rows_out.append([b, t] + [t_ms.get(e) for e in ("sparse", "direct", "im2col")] + [py])
            if t == 2 and py and t_ms.get("sparse"):
                rep.add_summary(2, f"`c64-56` conv, batch {b}, 2 threads: fwd + dx + dθ (ms)",
                                f"{t_ms['sparse']:.1f} (sparse), {t_ms['direct']:.1f} (direct)", f"{py:.1f} (PyTorch)",
                                ratio(py, t_ms["sparse"]))
    rep.csv("c64-56-batches.csv", ["batch", "threads", "sparse_ms", "direct_ms", "im2col_ms", "torch_ms"], rows_out)
    rep.section("One layer across batch sizes: `64x56x56 > conv(64,3,pad=1)`, fwd + dx + dθ (ms)",
                "cnn-as-mlp compare --layers '64x56x56 > conv(64,3,pad=1)' --batch B --threads T; scripts/peers/torch_layer.py 64 56 56 64 3 1 --batch B --threads T",
                lines)


def sparsity(rep, repeats):
    layers = "c32-64" if rep.m.quick else "c32-64,c64-56"
    levels = "0,0.9" if rep.m.quick else "0,0.5,0.9,0.99"
    rows = compare(rep, ["--layers", layers, "--sparsity", levels, "--repeats", str(repeats), "--threads", "2"], "sparsity")
    lines = ["| layer | sparsity | sparse fwd + dx + dθ (ms) | PyTorch dense (ms) | × PyTorch | zero-work floor (ms) | attained |",
             "|---|---|---|---|---|---|---|"]
    torch_ms = {}
    dense = {r["layer"]: ms(r, "forward_s", "input_grad_s", "param_grad_s")
             for r in rows if r["formulation"] == "sparse" and float(r["sparsity"]) == 0}
    for r in rows:
        if r["formulation"] != "sparse":
            continue
        if r["layer"] not in torch_ms:
            tl = torch_layer(rep, r["spec"], 64, 2, max(3, repeats))
            torch_ms[r["layer"]] = tl["sum_ms"] if tl else None
        t, py = ms(r, "forward_s", "input_grad_s", "param_grad_s"), torch_ms[r["layer"]]
        if t is None:
            lines.append(f"| {r['layer']} | {r['sparsity']} | {r['status']} | - | - | - | - |")
            continue
        # Attained: the speed-up over the sparse formulation at 0 ÷ min(1/(1−s), dense ÷ floor) (compare.md).
        sp, floor, d = float(r["sparsity"]), (float(r["floor_s"]) * 1e3 if r.get("floor_s") else None), dense.get(r["layer"])
        attained = f"{100 * (d / t) / min(1 / (1 - sp), d / floor):.0f}%" if floor and d else "-"
        lines.append(f"| {r['layer']} | {r['sparsity']} | {t:.2f} | " + (f"{py:.2f} | {ratio(py, t)} |" if py else "no torch | - |")
                     + (f" {floor:.2f} | {attained} |" if floor else " - | - |"))
        if r["layer"] == "c64-56" and float(r["sparsity"]) in (0.9, 0.99) and py:
            rep.add_summary(3, f"`c64-56` pruned to {float(r['sparsity']):.0%}, batch 64, 2 threads (ms)", f"{t:.1f}", f"{py:.1f} (PyTorch dense)", ratio(py, t))
    rep.section("Pruned products against PyTorch's dense layer (batch 64, 2 threads)",
                f"cnn-as-mlp compare --layers {layers} --sparsity {levels} --repeats {repeats} --threads 2; scripts/peers/torch_layer.py ... --threads 2",
                lines)


def networks(rep, repeats):
    nets = [("lenet5", 64), ("cifar", 64)] + ([] if rep.m.quick else [("vgg16", 8)])
    if not rep.m.quick and "vgg16-b32" not in rep.m.skip:
        nets.append(("vgg16", 32))
    lines = ["| network | batch | threads | sparse step (s) | direct | im2col | PyTorch | sparse ÷ PyTorch (speed) | sparse index | sparse peak RSS |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    csv_rows = []
    for net, b in nets:
        one_thread = not (net == "vgg16" and (b == 32 or "vgg16-t1" in rep.m.skip))
        for t in ((1, 2) if one_thread else (2,)):
            rows = compare(rep, ["--model", net, "--batch", str(b), "--repeats", "1", "--threads", str(t)], f"networks/{net}-b{b}-t{t}")
            tot = {r["formulation"]: r for r in rows if r["layer"] == "total"}
            step = {e: float(r["step_s"]) if r.get("step_s") else None for e, r in tot.items()}
            py = None
            if rep.m.torch and net in ("cifar", "vgg16"):
                py, _ = peer("torch_step.py", ["--net", net, "--batch", str(b), "--threads", str(t), "--steps", "3" if net == "vgg16" else "10"], key="step_s")
            s = tot.get("sparse", {})
            idx = f"{int(s['index_bytes']) / 2**20:.0f} MiB" if s.get("index_bytes") else "-"
            peak = f"{int(s['peak_rss_bytes']) / 2**30:.2f} GiB" if s.get("peak_rss_bytes") else "-"
            times = " | ".join(f"{step[e]:.3f}" if step.get(e) else "-" for e in ("sparse", "direct", "im2col"))
            theirs = f"{py:.3f} | {ratio(py, step.get('sparse'))}" if py else "- | -"
            lines.append(f"| {net} | {b} | {t} | {times} | {theirs} | {idx} | {peak} |")
            csv_rows.append([net, b, t] + [step.get(e) for e in ("sparse", "direct", "im2col")] + [py, s.get("index_bytes"), s.get("peak_rss_bytes")])
            if net == "vgg16" and py and step.get("sparse"):
                rep.add_summary(1, f"`vgg16` training step, batch {b}, {t} threads (s)",
                                f"{step['sparse']:.2f} (sparse), {step['direct']:.2f} (direct)", f"{py:.2f} (PyTorch)", ratio(py, step["sparse"]))
            if net == "vgg16" and b == 8 and t == 2:
                rep.add_summary(4, "`vgg16` sparse index / peak memory, batch 8", idx, peak, "-")
    rep.csv("networks.csv", ["network", "batch", "threads", "sparse_step_s", "direct_step_s", "im2col_step_s", "torch_step_s", "sparse_index_bytes", "sparse_peak_rss"], csv_rows)
    rep.section("Whole networks: one training step (s), index and peak memory",
                "cnn-as-mlp compare --model NET --batch B --repeats 1 --threads T; scripts/peers/torch_step.py --net NET --batch B --threads T", lines)


def crossover(rep):
    """`compare --map`: which engine is fastest where, as heat maps (the research answer at a glance)."""
    grid = (["--map-channels", "3,8", "--map-sizes", "8", "--map-batches", "1"] if rep.m.quick
            else ["--map-channels", "3,8,16,32,64", "--map-sizes", "8,16,32,56", "--map-batches", "1,8,64"])
    d = os.path.join(rep.out, "map")
    os.makedirs(d, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="results-map-")
    try:
        run([BIN, "compare", "--map", *grid, "--repeats", "1", "--threads", "2", "--out", os.path.join(tmp, "m")])
        for f in os.listdir(os.path.join(tmp, "m")):
            shutil.copy(os.path.join(tmp, "m", f), os.path.join(d, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(d, "compare-map.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r.get("engine") == "sparse"]
    lines = ["![crossover map](map/compare-map.png)", "", "| sparsity | batch | cells where sparse is fastest | median sparse ÷ best dense (time) |", "|---|---|---|---|"]
    keys = sorted({(r["sparsity"], int(r["batch"])) for r in rows})
    for sp, b in keys:
        cell = [r for r in rows if r["sparsity"] == sp and int(r["batch"]) == b]
        wins = sum(1 for r in cell if r.get("fastest") == "sparse")
        ratios = [float(r["sparse_over_best_dense"]) for r in cell if r.get("sparse_over_best_dense")]
        lines.append(f"| {sp} | {b} | {wins} of {len(cell)} | {med(ratios):.2f} |" if ratios else f"| {sp} | {b} | {wins} of {len(cell)} | - |")
        if not rep.m.quick and ratios:
            rep.add_summary(2, f"crossover map, sparsity {sp}, batch {b}: convolutions where sparse is fastest",
                            f"{wins} of {len(cell)}", "direct, im2col", f"median {med(ratios):.2f}× the best time")
    rep.section("Crossover map: `C×S×S > conv(C,3,pad=1)`, fastest engine per cell (2 threads, one round)",
                f"cnn-as-mlp compare --map {' '.join(grid)} --repeats 1 --threads 2 (every cell in map/compare-map.csv)", lines)


def index_bytes(rep):
    text = run([os.path.join(ROOT, "target", "release", "examples", "index_memory"), "lenet5" if rep.m.quick else "vgg16"])
    lines = [l for l in text.splitlines() if l.startswith("|")] + ["", text.strip().splitlines()[-1]]
    rep.section("Index bytes per layer", f"target/release/examples/index_memory {'lenet5' if rep.m.quick else 'vgg16'}", lines)


def mpi(rep):
    title = "Data-parallel training under MPI: LeNet-5, one epoch, 1 thread per rank (img/s)"
    if not rep.m.mpirun:
        rep.section(title, "-", ["Skipped: `--no-mpi`, or no `mpirun` (apt-get install libopenmpi-dev openmpi-bin libclang-dev)."])
        return
    mpibin = BIN  # built with --features mpi when mpirun is present (main)
    lines = ["| ranks | img/s | × 1 rank |", "|---|---|---|"]
    rows, base = [], None
    for n in ((1, 2) if rep.m.quick else (1, 2, 3, 4)):
        out = tempfile.mkdtemp(prefix="results-mpi-")
        try:
            text = run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(n), mpibin, "train", "--epochs", "1",
                        "--threads", "1", "--out", os.path.join(out, "run"), "--quiet"])
        finally:
            shutil.rmtree(out, ignore_errors=True)
        v = field(text, "img_per_s")
        base = base or v
        rows.append([n, v])
        lines.append(f"| {n} | {v:.0f} | {v / base:.2f} |")
    rep.csv("mpi.csv", ["ranks", "img_per_s"], rows)
    rep.section(title, "mpirun -np N cnn-as-mlp train --epochs 1 --threads 1 (built with --features mpi)",
                lines + ["", f"This host has {rep.m.cores} cores: ranks beyond that share them."])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round each, small sizes, no vgg16 (≤ 5 min)")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out, named in the report's header "
                    "(vgg16-b32, vgg16-t1, map, grid)")
    ap.add_argument("--no-mpi", action="store_true", help="skip the MPI rows (and the build with --features mpi)")
    ap.add_argument("--out", help="output folder [default: docs/results/<cpu>/, with --quick target/results-quick/<cpu>/]")
    ap.add_argument("--readme", metavar="DIR", help="measure nothing: copy DIR's summary.md into the README's results block")
    a = ap.parse_args()
    if a.readme:
        update_readme(os.path.abspath(a.readme))
        return
    global REPORT_PY
    REPORT_PY = os.environ.get("PYTHON", "python3")
    m = Machine(REPORT_PY, a.quick)
    m.skip = {x.strip() for x in a.skip.split(",") if x.strip()}
    if a.no_mpi:
        m.mpirun = None
    out = a.out or os.path.join(ROOT, "target/results-quick" if a.quick else "docs/results", m.slug())
    os.makedirs(out, exist_ok=True)
    repeats = 1 if a.quick else 5
    print(f"results: {m.header()}\nresults: writing {out}", file=sys.stderr)
    # One build for everything; with mpirun present it carries the `mpi` feature (one process runs as without it).
    run(["cargo", "build", "--release", "--examples", "--bin", "cnn-as-mlp"] + (["--features", "mpi"] if m.mpirun else []))
    rep = Report(out, m)
    tmp = tempfile.mkdtemp(prefix="results-")
    cifar_data = [synthetic_cifar(rep, tmp)]
    # The parts a reader asks for first come first: a run stopped early (its partial report is on disk after
    # every part) keeps them.
    steps = [
        ("FMA peak", lambda: fma_peak(rep)),
        ("LeNet-5", lambda: lenet(rep, repeats)),
        ("c64-56 by batch", lambda: batch_sweep(rep, 1 if a.quick else 3)),
        ("networks", lambda: networks(rep, repeats)),
        ("cifar", lambda: cifar(rep, repeats, cifar_data[0])),
        ("sparsity", lambda: sparsity(rep, 1 if a.quick else 3)),
        ("pruned cifar", lambda: pruned_cifar(rep, cifar_data[0])),
        ("index bytes", lambda: index_bytes(rep)),
        ("MPI", lambda: mpi(rep)),
        ("grid", lambda: None if "grid" in m.skip else grid(rep, 1 if a.quick else 3)),
        ("crossover map", lambda: None if "map" in m.skip else crossover(rep)),
    ]
    try:
        for name, step in steps:
            print(f"results: {name}", file=sys.stderr)
            got = step()
            if name == "LeNet-5":
                for t in (1, 2):
                    s, p = med(got.get(("sparse", t), [])), med(got.get(("torch", t), []))
                    if p:
                        rep.add_summary(0, f"LeNet-5 training, MNIST-10k, batch 64, {t} thread{'s' if t > 1 else ''} (img/s)",
                                        f"{s:.0f}", f"{p:.0f} (PyTorch)", ratio(s, p))
            if name == "cifar":
                for b, runs in got.items():
                    for t in (1, 2):
                        s, p = med(runs.get(("sparse", t), [])), med(runs.get(("torch", t), []))
                        if p:
                            rep.add_summary(0, f"`cifar` training, batch {b}, {t} thread{'s' if t > 1 else ''} (img/s)",
                                            f"{s:.0f}", f"{p:.0f} (PyTorch)", ratio(s, p))
            # What is measured so far is on disk, so that an interrupted run keeps it (marked as partial).
            rep.write(partial=name != steps[-1][0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rep.write()
    print(f"results: wrote {os.path.relpath(out, ROOT)}/results.md and summary.md", file=sys.stderr)


if __name__ == "__main__":
    main()
