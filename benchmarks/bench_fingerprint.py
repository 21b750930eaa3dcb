"""Cost of the cache fingerprint on MiniLM's weight matrices, against two baselines in the same run.

- ``fingerprint``: farms_viz's key (float64 sum + position-weighted checksum over every entry).
- ``sampled``: the earlier key (float64 sum + a strided sample of 4,096 entries), which missed
  changes between the sampled positions.
- ``one read``: a bare chunked float64 sum, the least any key over every entry can cost.

Also compared with the standard ESD of the same matrices (what a cache hit saves).

    python benchmarks/bench_fingerprint.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from farms_viz.engine.cache import fingerprint
from farms_viz.engine.spectra import esd_eigenvalues
from farms_viz.sources.pretrained import load_minilm

_CHUNK = 1 << 20


def sampled(weight: torch.Tensor) -> tuple:
    """The earlier fingerprint: a float64 sum and a weighted strided sample of 4,096 entries."""
    flat = weight.detach().reshape(-1)
    step = max(1, flat.numel() // 4096)
    sample = flat[::step][:4096].to(torch.float64)
    total = sum(float(torch.sum(flat[i:i + _CHUNK], dtype=torch.float64)) for i in range(0, flat.numel(), _CHUNK))
    return total, float((sample * torch.arange(1, sample.numel() + 1, dtype=torch.float64)).sum())


def one_read(weight: torch.Tensor) -> float:
    flat = weight.detach().reshape(-1)
    return sum(float(torch.sum(flat[i:i + _CHUNK], dtype=torch.float64)) for i in range(0, flat.numel(), _CHUNK))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the analysis: one layer per thread, sequential BLAS
    weights = [p.detach() for p in load_minilm().parameters() if p.ndim == 2]
    entries = sum(w.numel() for w in weights)
    keys = {"fingerprint": fingerprint, "sampled (earlier)": sampled, "one read (bare sum)": one_read}
    times: dict[str, list[float]] = {name: [] for name in keys}
    for _ in range(args.repeats):  # interleaved, so load on the machine hits every key alike
        for name, key in keys.items():
            start = time.perf_counter()
            for w in weights:
                key(w)
            times[name].append(time.perf_counter() - start)
    start = time.perf_counter()
    for w in weights:
        esd_eigenvalues(w.unsqueeze(0))
    esd = time.perf_counter() - start
    base = statistics.median(times["one read (bare sum)"])
    print(f"MiniLM-L6: {len(weights)} matrices, {entries / 1e6:.1f} M entries, {args.repeats} interleaved repeats")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:>20}: median {1e3 * median:7.1f} ms, best {1e3 * min(values):7.1f} ms, "
              f"{median / base:4.2f}x one read, {median / esd:6.1%} of the standard ESD ({esd:.2f} s)")


if __name__ == "__main__":
    main()
