"""Peak memory of `farms-viz report` on a synthetic LLaMA-7B-shaped checkpoint.

Writes a float32 safetensors checkpoint of ``--blocks`` LLaMA-7B blocks (4096 x 4096
attention projections, 11008 x 4096 and 4096 x 11008 MLP matrices: 0.8 GB each), one tensor
at a time, then runs the report in a fresh process and prints its peak RSS above the baseline
(the process after imports, before the checkpoint is opened) against the largest layer and
the checkpoint's size. Memory is bounded by the largest layers in flight, so the peak stays
the same as ``--blocks`` grows (a few times one 11008 x 4096 float32 layer, 172 MiB); as a
fraction of the checkpoint it only falls. The checkpoint is deleted afterwards.

    python benchmarks/bench_checkpoint_memory.py [--blocks 3] [--window 1000] [--windows-per-dim 3]

The defaults take a few minutes on 2 cores: the eigen-decompositions (9 windows of
1000 x 1000 in float64 per layer, 21 layers) dominate; add --method both to include the
full standard ESD of every 4096-wide matrix (several times slower on 2 cores).
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

import torch

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

# Runs in a fresh interpreter: baseline after imports, then the CLI in-process; ru_maxrss
# is the kernel's exact high-water mark, so no short spike is missed.
CHILD = """
import json, os, resource, sys, psutil
import farms_viz.cli, farms_viz.widget.export, farms_viz.checkpoints, farms_viz.engine.spectra, safetensors.torch
if os.environ.get("BENCH_CHUNK_MIB"):
    farms_viz.engine.spectra.CHUNK_BYTES = int(os.environ["BENCH_CHUNK_MIB"]) * 2**20
baseline = psutil.Process().memory_info().rss
code = farms_viz.cli.main(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
import farms_viz.engine.cpu_threads as lapack
print(json.dumps({"code": code, "baseline": baseline, "peak": peak, "in_flight": lapack.workers()}))
"""


def write_checkpoint(path: Path, blocks: int, seed: int = 0) -> int:
    """A float32 safetensors file written one tensor at a time (never whole in memory)."""
    shapes = {f"model.layers.{b}.{name}.weight": shape for b in range(blocks) for name, shape in BLOCK.items()}
    header, offset = {}, 0
    for name, (rows, cols) in shapes.items():
        header[name] = {"dtype": "F32", "shape": [rows, cols], "data_offsets": [offset, offset + 4 * rows * cols]}
        offset += 4 * rows * cols
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned
    generator = torch.Generator().manual_seed(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for rows, cols in shapes.values():
            f.write((torch.randn(rows, cols, generator=generator) / cols**0.5).numpy().tobytes())
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=3, help="transformer blocks (0.8 GB each)")
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--windows-per-dim", type=int, default=3)
    parser.add_argument("--method", default="farms", choices=("farms", "esd", "both"))
    parser.add_argument("--chunk-mib", type=int, default=None,
                        help="override the engine's cap on one float64 batch of windows (MiB), to see "
                             "how much of the peak it accounts for")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the checkpoint (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        checkpoint = Path(folder) / "synthetic.safetensors"
        start = time.perf_counter()
        size = write_checkpoint(checkpoint, args.blocks)
        print(f"checkpoint: {size / 1e9:.2f} GB ({args.blocks * len(BLOCK)} float32 matrices), "
              f"written in {time.perf_counter() - start:.0f} s", flush=True)
        command = [sys.executable, "-c", CHILD, "report", str(checkpoint), "--out", str(Path(folder) / "r.html"),
                   "--method", args.method, "--window", str(args.window),
                   "--windows-per-dim", str(args.windows_per_dim)]
        start = time.perf_counter()
        env = {**os.environ, **({"BENCH_CHUNK_MIB": str(args.chunk_mib)} if args.chunk_mib else {})}
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"the report failed (exit code {done.returncode})")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    above = result["peak"] - result["baseline"]
    largest = 4 * INTERMEDIATE * HIDDEN
    chunk = f", window batch cap {args.chunk_mib} MiB" if args.chunk_mib else ""
    print(f"report: method={args.method} window={args.window} windows_per_dim={args.windows_per_dim}{chunk}, "
          f"{seconds:.0f} s on {os.cpu_count()} cores, up to {result['in_flight']} layer(s) in flight "
          "(fewer when their working sets exceed farms_viz.engine.analysis.IN_FLIGHT_BYTES)")
    print(f"peak RSS above baseline: {above / 2**20:.0f} MiB = {above / largest:.1f}x the largest layer "
          f"({largest / 2**20:.0f} MiB float32), {100 * above / size:.1f}% of the checkpoint "
          f"({size / 2**20:.0f} MiB)")
    print(f"(baseline {result['baseline'] / 2**20:.0f} MiB, peak {result['peak'] / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
