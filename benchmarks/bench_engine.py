"""Engine benchmark on MiniLM (CPU): ratios against baselines measured in the same run.

    python benchmarks/bench_engine.py [--repeat 3]

Prints
1. FARMS (peak fit) against a straightforward implementation written the way the published
   reference code works: one svdvals call per window, a Python loop over xmin candidates.
2. The standard ESD against WeightWatcher's analyze(), on MiniLM and on a GPT-2-small-shaped model
   (transformers GPT2Config, random init: nothing downloaded).
3. FARMS (median fit) against the floor: the bare batched eigenvalue calls on the same windows.
4. Peak memory above the process baseline while analysing MiniLM, against the model's size
   (measured in a fresh subprocess).
Timings are the best of --repeat runs, with the cache cleared before each.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

import farms_viz
from farms_viz.engine.cache import SPECTRA
from farms_viz.engine.cpu_threads import compute_pool
from farms_viz.engine.matrices import LayerMatrix, iter_layers
from farms_viz.engine.spectra import gram_eigenvalues, window_batch
from farms_viz.engine.windows import window_grid
from farms_viz.sources.pretrained import load_minilm


def best_of(repeat, fn):
    times = []
    for _ in range(repeat):
        SPECTRA.clear()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def reference_style_farms_peak(model, window=100, q=1.0, k=10):
    """One svdvals call per window (float32, as the reference), a Python loop over candidates."""
    alphas = {}
    for item in iter_layers(model):
        if not isinstance(item, LayerMatrix):
            continue
        weight = item.load()[0]
        grid = window_grid(item.rows, item.cols, window, q, k)
        eigs = []
        for r in grid.row_starts:
            for c in grid.col_starts:
                sub = weight[r:r + grid.window_rows, c:c + grid.window_cols]
                eigs.append(torch.square(torch.linalg.svdvals(sub)))
        x = torch.sort(torch.cat(eigs).double()).values
        logs = torch.log10(x)
        counts = torch.histc(logs, bins=100, min=float(logs.min()), max=float(logs.max()))
        edges = torch.linspace(float(logs.min()), float(logs.max()), 101, dtype=torch.float64)
        peak = 10 ** float(edges[int(torch.argmax(counts))])
        best_d, best_alpha = 1.0, float("nan")
        n = x.numel()
        for i in range(n - 1):
            xmin = x[i]
            if xmin < np.log10(0.95 * peak):
                continue
            if xmin > 1.5 * peak:
                break
            tail = x[i:]
            alpha = 1 + tail.numel() / torch.sum(torch.log(tail / xmin))
            cdf = torch.arange(tail.numel(), dtype=torch.float64) / tail.numel()
            d = torch.max(torch.abs(1 - (tail / xmin) ** (-alpha + 1) - cdf))
            if d < best_d:
                best_d, best_alpha = float(d), float(alpha)
        alphas[item.name] = best_alpha
    return alphas


def bare_batched_eigenvalues(model, window=100, q=1.0, k=10):
    """The floor: gather each layer's windows and one batched float64 eigenvalue call, with the
    same threading as farms_viz (layers in flight on the sequential-BLAS compute pool)."""
    def one(item):
        grid = window_grid(item.rows, item.cols, window, q, k)
        return gram_eigenvalues(window_batch(item.load(), grid, torch.float64))

    layers = [item for item in iter_layers(model) if isinstance(item, LayerMatrix)]
    list(compute_pool().map(one, layers))


def bare_esd_eigenvalues(model):
    """The standard ESD's floor: plain float64 Gram (one full product) + eigvalsh per layer,
    with the same threading as farms_viz (layers in flight on the sequential-BLAS pool)."""
    def one(item):
        w = item.load()[0].to(torch.float64)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        return torch.linalg.eigvalsh(gram)

    layers = [item for item in iter_layers(model) if isinstance(item, LayerMatrix)]
    list(compute_pool().map(one, layers))


def gpt2_small():
    """GPT-2-small's shapes (124M parameters, no LM head), random init from its config."""
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    return transformers.GPT2Model(transformers.GPT2Config()).eval()


def weightwatcher_analyze(model):
    import weightwatcher

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return weightwatcher.WeightWatcher(model=model).analyze()


_MEMORY_CHILD = r"""
import gc, json, threading, time, psutil, torch, farms_viz
from farms_viz.sources.pretrained import load_minilm
model = load_minilm()
size = sum(p.numel() * p.element_size() for p in model.parameters())
# Page in the linear-algebra libraries' code first: the baseline is about data, not code pages.
farms_viz.analyze(torch.nn.Linear(256, 512), fit="peak", window=64, progress=False)
# transformers may memory-map the checkpoint: touch every weight so the model is resident first.
_ = [float(p.detach().sum()) for p in model.parameters()]
farms_viz.engine.cache.SPECTRA.clear()
gc.collect()
proc = psutil.Process()
base = proc.memory_info().rss
peak = [base]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.0005)
t = threading.Thread(target=sample); t.start()
per_layer = []
farms_viz.analyze(model, method="both", fit="peak",
                  progress=lambda d, t, name: per_layer.append((name, proc.memory_info().rss - base)))
done.set(); t.join()
print(json.dumps({"model_bytes": size, "peak_above_baseline": peak[0] - base, "per_layer": per_layer}))
"""


def peak_memory():
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--items", type=int, nargs="*", default=[1, 2, 3, 4],
                        help="which of the numbered comparisons to run (default: all)")
    args = parser.parse_args(argv)
    model = load_minilm()
    print(f"MiniLM-L6 on CPU ({torch.get_num_threads()} threads), window 100, q 1, windows_per_dim 10; "
          f"load average {os.getloadavg()[0]:.2f}")

    if 1 in args.items:
        report_reference_speedup(model, args.repeat)
    if 2 in args.items:
        report_esd_speedup(model, args.repeat)
    if 3 in args.items:
        report_median_floor(model, args.repeat)
    if 4 in args.items:
        report_memory()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def report_reference_speedup(model, repeat):
    ours = best_of(repeat, lambda: farms_viz.analyze(model, method="farms", fit="peak", progress=False))
    reference = best_of(1, lambda: reference_style_farms_peak(model))
    print(f"1. FARMS peak fit:     farms_viz {ours:7.3f} s   reference-style {reference:7.2f} s   "
          f"speed-up {reference / ours:6.1f}x  (target >= 20x)")


def report_esd_speedup(model, repeat):
    ours = best_of(repeat, lambda: farms_viz.analyze(model, method="esd", fit="ks", progress=False))
    ww = best_of(repeat, lambda: weightwatcher_analyze(model))
    floor = best_of(repeat, lambda: bare_esd_eigenvalues(model))
    print(f"2. standard ESD (ks):  farms_viz {ours:7.3f} s   WeightWatcher   {ww:7.2f} s   "
          f"speed-up {ww / ours:6.1f}x  (target >= 8x)\n"
          f"   (floor: bare float64 Gram + eigvalsh {floor:.3f} s, WeightWatcher / floor {ww / floor:.1f}x, "
          f"farms_viz / floor {ours / floor:.2f}x)")
    gpt2 = gpt2_small()
    ours = best_of(repeat, lambda: farms_viz.analyze(gpt2, method="esd", fit="ks", progress=False))
    ww = best_of(min(repeat, 2), lambda: weightwatcher_analyze(gpt2))
    floor = best_of(repeat, lambda: bare_esd_eigenvalues(gpt2))
    print(f"   GPT-2-small shape:  farms_viz {ours:7.3f} s   WeightWatcher   {ww:7.2f} s   "
          f"speed-up {ww / ours:6.1f}x  (target >= 8x)\n"
          f"   (floor {floor:.3f} s, WeightWatcher / floor {ww / floor:.1f}x, farms_viz / floor {ours / floor:.2f}x)")
    gpt2 = None  # free it before the next benchmark


def report_median_floor(model, repeat):
    ours = best_of(repeat, lambda: farms_viz.analyze(model, method="farms", fit="median", progress=False))
    floor = best_of(repeat, lambda: bare_batched_eigenvalues(model))
    print(f"3. FARMS median fit:   farms_viz {ours:7.3f} s   bare eigvalsh   {floor:7.3f} s   "
          f"ratio {ours / floor:6.2f}x  (target <= 1.15x)")


def report_memory():
    mem = peak_memory()
    ratio = mem["peak_above_baseline"] / mem["model_bytes"]
    print(f"4. peak memory above baseline: {mem['peak_above_baseline'] / 2**20:.1f} MiB for a "
          f"{mem['model_bytes'] / 2**20:.1f} MiB model: {ratio:.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
