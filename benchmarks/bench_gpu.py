"""GPU benchmark: a LLaMA-7B-shaped stack of random layers on CUDA.

    python benchmarks/bench_gpu.py [--layers 4]

Layers of 4096x4096 and 11008x4096 (i.i.d. Gaussian), FARMS with window 2000, q 1,
windows_per_dim 10, peak fit. Prints seconds per layer and the achieved fraction of the GPU's
eigenvalue throughput: the time of the bare batched float64 eigvalsh on the same number of
2000x2000 Gram matrices, divided by farms_viz's time for the layer. Exits quietly without CUDA.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import farms_viz
from farms_viz.engine.cache import SPECTRA


def llama_like(layers: int, device: str) -> nn.Module:
    shapes = [(4096, 4096), (11008, 4096)]
    blocks = nn.ModuleDict()
    for i in range(layers):
        out_features, in_features = shapes[i % 2]
        layer = nn.Linear(in_features, out_features, bias=False, device=device)
        nn.init.normal_(layer.weight, std=in_features ** -0.5)
        blocks[f"layer{i}"] = layer
    return blocks


def bare_eigvalsh_seconds(batch: int, size: int, device: str) -> float:
    x = torch.randn(batch, size, size, device=device, dtype=torch.float64)
    gram = x @ x.transpose(-1, -2)
    torch.linalg.eigvalsh(gram[:1])
    torch.cuda.synchronize()
    start = time.perf_counter()
    for chunk in gram.split(10):
        torch.linalg.eigvalsh(chunk)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: GPU benchmark skipped")
        return
    device = "cuda"
    print(f"GPU: {torch.cuda.get_device_name()}")
    model = llama_like(args.layers, device)
    farms_viz.analyze(model["layer0"], method="farms", window=256, progress=False)  # warm-up
    SPECTRA.clear()
    per_layer = []
    torch.cuda.synchronize()
    start = time.perf_counter()

    def tick(done, total, name):
        torch.cuda.synchronize()
        per_layer.append((name, time.perf_counter()))

    result = farms_viz.analyze(model, method="farms", window=2000, q=1.0, windows_per_dim=10, fit="peak",
                               progress=tick)
    floor = bare_eigvalsh_seconds(100, 2000, device)
    previous = start
    for name, stamp in per_layer:
        row = result.to_pandas().set_index("layer").loc[name]
        seconds = stamp - previous
        previous = stamp
        print(f"{name}: {int(row.rows)}x{int(row.cols)}  {seconds:6.2f} s/layer  alpha {row.alpha:.3f}  "
              f"windows {int(row.num_windows)}  eigenvalue-throughput fraction {floor / seconds:5.2f}")
    print(f"bare float64 eigvalsh of 100 Gram matrices of 2000x2000: {floor:.2f} s")
    print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
