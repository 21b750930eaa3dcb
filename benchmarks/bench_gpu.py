"""GPU benchmark: a LLaMA-7B-shaped stack of random layers on CUDA.

    python benchmarks/bench_gpu.py [--layers 4]
    python benchmarks/bench_gpu.py --device cpu --scale 16   # a small dry run of the same code

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


def llama_like(layers: int, device: str, scale: int = 1) -> nn.Module:
    shapes = [(4096 // scale, 4096 // scale), (11008 // scale, 4096 // scale)]
    blocks = nn.ModuleDict()
    for i in range(layers):
        out_features, in_features = shapes[i % 2]
        layer = nn.Linear(in_features, out_features, bias=False, device=device)
        nn.init.normal_(layer.weight, std=in_features ** -0.5)
        blocks[f"layer{i}"] = layer
    return blocks


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_eigvalsh_seconds(batch: int, size: int, device: str) -> float:
    x = torch.randn(batch, size, size, device=device, dtype=torch.float64)
    gram = x @ x.transpose(-1, -2)
    del x
    torch.linalg.eigvalsh(gram[:1])
    synchronize(device)
    start = time.perf_counter()
    for chunk in gram.split(10):
        torch.linalg.eigvalsh(chunk)
    synchronize(device)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run")
    parser.add_argument("--scale", type=int, default=1, help="divide the shapes and the window by this")
    args = parser.parse_args(argv)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: GPU benchmark skipped")
        return
    window = 2000 // args.scale
    print(f"device: {torch.cuda.get_device_name() if device.startswith('cuda') else device}")
    model = llama_like(args.layers, device, args.scale)
    farms_viz.analyze(model["layer0"], method="farms", window=256 // args.scale, progress=False)  # warm-up
    SPECTRA.clear()
    per_layer = []
    synchronize(device)
    start = time.perf_counter()

    def tick(done, total, name):
        synchronize(device)
        per_layer.append((name, time.perf_counter()))

    result = farms_viz.analyze(model, method="farms", window=window, q=1.0, windows_per_dim=10, fit="peak",
                               progress=tick)
    frame = result.to_pandas().set_index("layer")
    floor = bare_eigvalsh_seconds(100, window, device)
    previous = start
    for name, stamp in per_layer:
        row = frame.loc[name]
        seconds = stamp - previous
        previous = stamp
        print(f"{name}: {int(row.rows)}x{int(row.cols)}  {seconds:6.2f} s/layer  alpha {row.alpha:.3f}  "
              f"windows {int(row.num_windows)}  eigenvalue-throughput fraction {floor / seconds:5.2f}")
    total = per_layer[-1][1] - start
    print(f"mean {total / len(per_layer):.2f} s/layer over {len(per_layer)} layers; "
          f"eigenvalue-throughput fraction {floor * len(per_layer) / total:.2f}")
    print(f"bare float64 eigvalsh of 100 Gram matrices of {window}x{window}: {floor:.2f} s")
    if device.startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
