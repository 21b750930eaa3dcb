"""Checkpoints of any count and size: time per tensor, and a file larger than RAM.

1. Count: ``.pt`` (torch.save) and ``.safetensors`` checkpoints of 500, 2,000 and 8,000 small
   tensors. For each, ``open_checkpoint`` plus one read of every tensor, and a whole
   ``farms_viz.analyze`` (standard ESD), in milliseconds per tensor: flat when time is linear
   in the count. Baseline in the same run: the library's own loader reading every tensor
   through one handle (``safetensors.safe_open``; ``torch.load(mmap=True)``).
2. Size: one sparse safetensors file larger than this machine's RAM plus swap, LLaMA-7B
   shaped (4096 x 4096 and 11008 x 4096 float32 layers; the first and last layers hold random
   values, the rest is a hole that reads as zeros and takes no disk), reported by
   ``farms-viz report`` in a fresh process. Prints the peak RSS above the baseline against
   the file's size and the largest layer.

    python benchmarks/bench_checkpoint_scale.py [--counts 500 2000 8000] [--extra-gb 4] [--dir PATH]

Part 2 reads the whole file once (tens of GB, mostly holes): a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import farms_viz
from farms_viz.checkpoints import open_checkpoint

HIDDEN, INTERMEDIATE = 4096, 11008
BLOCK = {  # name -> (rows, cols), stored out x in like nn.Linear
    "self_attn.q_proj": (HIDDEN, HIDDEN),
    "self_attn.k_proj": (HIDDEN, HIDDEN),
    "self_attn.v_proj": (HIDDEN, HIDDEN),
    "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.gate_proj": (INTERMEDIATE, HIDDEN),
    "mlp.up_proj": (INTERMEDIATE, HIDDEN),
    "mlp.down_proj": (HIDDEN, INTERMEDIATE),
}


# --- 1. many small tensors ------------------------------------------------------------------

def _small_state(count: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(count)
    return {f"model.layers.{i}.weight": torch.randn(16, 12, generator=g) for i in range(count)}


def _library_read(path: Path) -> float:
    start = time.perf_counter()
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - a safe_open handle is not a dict
                handle.get_tensor(key).sum()
    else:
        for tensor in torch.load(path, mmap=True, weights_only=True).values():
            tensor.sum()
    return time.perf_counter() - start


def _our_read(path: Path) -> float:
    start = time.perf_counter()
    lazy = open_checkpoint(path)
    for key in lazy:
        lazy[key].sum()
    return time.perf_counter() - start


def _our_analysis(path: Path) -> float:
    start = time.perf_counter()
    farms_viz.analyze(open_checkpoint(path), method="esd", progress=False)
    return time.perf_counter() - start


def count_scaling(counts: list[int], folder: Path) -> None:
    print("1. time per tensor (ms), best of 3; baseline: the library's own loader, one handle")
    print(f"{'format':>12} {'tensors':>8} {'open+read':>10} {'library':>8} {'ratio':>6} {'analyze':>8}")
    for suffix in (".pt", ".safetensors"):
        first = None
        for count in counts:
            path = folder / f"small{count}{suffix}"
            state = _small_state(count)
            torch.save(state, path) if suffix == ".pt" else save_file(state, path)
            ours = min(_our_read(path) for _ in range(3)) / count
            library = min(_library_read(path) for _ in range(3)) / count
            analysis = _our_analysis(path) / count
            first = first or ours
            print(f"{suffix:>12} {count:>8} {1e3 * ours:>10.3f} {1e3 * library:>8.3f} {ours / library:>6.2f} "
                  f"{1e3 * analysis:>8.2f}   (x{ours / first:.2f} the per-tensor time at {counts[0]})")
            path.unlink()


# --- 2. one file larger than RAM --------------------------------------------------------------

CHILD = """
import json, resource, sys, psutil
import farms_viz.cli, farms_viz.widget.export, farms_viz.checkpoints
baseline = psutil.Process().memory_info().rss
code = farms_viz.cli.main(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"code": code, "baseline": baseline, "peak": peak}))
"""


def write_sparse_checkpoint(path: Path, size: int, seed: int = 0) -> tuple[int, int, int]:
    """LLaMA-shaped float32 blocks until ``size`` bytes; the first and last block's layers hold
    random values, the rest is a hole. Returns (file size, layers, largest layer bytes)."""
    shapes: dict[str, tuple[int, int]] = {}
    block_bytes = 4 * sum(r * c for r, c in BLOCK.values())
    blocks = max(2, -(-size // block_bytes))
    for b in range(blocks):
        shapes.update({f"model.layers.{b}.{name}.weight": shape for name, shape in BLOCK.items()})
    header, offset = {}, 0
    for name, (rows, cols) in shapes.items():
        header[name] = {"dtype": "F32", "shape": [rows, cols], "data_offsets": [offset, offset + 4 * rows * cols]}
        offset += 4 * rows * cols
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    start = 8 + len(text)
    generator = torch.Generator().manual_seed(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(start + offset)  # a hole: reads as zeros, takes no disk
        for name, (rows, cols) in shapes.items():
            if name.startswith(("model.layers.0.", f"model.layers.{blocks - 1}.")):
                f.seek(start + header[name]["data_offsets"][0])
                f.write((torch.randn(rows, cols, generator=generator) / cols**0.5).numpy().tobytes())
    return path.stat().st_size, len(shapes), 4 * INTERMEDIATE * HIDDEN


def larger_than_ram(extra: int, folder: Path, window: int, windows_per_dim: int) -> None:
    memory = psutil.virtual_memory().total + psutil.swap_memory().total
    path = folder / "larger_than_ram.safetensors"
    start = time.perf_counter()
    size, layers, largest = write_sparse_checkpoint(path, memory + extra)
    on_disk = path.stat().st_blocks * 512
    print(f"\n2. one safetensors file of {size / 2**30:.1f} GiB (RAM + swap {memory / 2**30:.1f} GiB), {layers} "
          f"layers, {on_disk / 2**30:.2f} GiB on disk, written in {time.perf_counter() - start:.0f} s")
    try:
        command = [sys.executable, "-c", CHILD, "report", str(path), "--out", str(folder / "r.html"),
                   "--method", "farms", "--window", str(window), "--windows-per-dim", str(windows_per_dim),
                   "--no-progress"]
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"the report failed (exit code {done.returncode})")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        path.unlink(missing_ok=True)
    above = result["peak"] - result["baseline"]
    print(f"farms-viz report --method farms --window {window} --windows-per-dim {windows_per_dim}: "
          f"{seconds:.0f} s on {os.cpu_count()} cores")
    print(f"peak RSS above baseline: {above / 2**20:.0f} MiB = {100 * above / size:.2f}% of the file, "
          f"{above / largest:.1f}x its largest layer ({largest / 2**20:.0f} MiB float32) "
          f"(baseline {result['baseline'] / 2**20:.0f} MiB, peak {result['peak'] / 2**20:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--extra-gb", type=float, default=4.0, help="how far the big file exceeds RAM + swap")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--windows-per-dim", type=int, default=2)
    parser.add_argument("--skip-large", action="store_true", help="only part 1")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the files (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        count_scaling(args.counts, Path(folder))
        if not args.skip_large:
            larger_than_ram(int(args.extra_gb * 2**30), Path(folder), args.window, args.windows_per_dim)


if __name__ == "__main__":
    main()
