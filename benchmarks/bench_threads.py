"""FARMS on MiniLM with and without the user's own thread settings, each in its own process.

    python benchmarks/bench_threads.py [--repeat 3] [--rounds 2]

A notebook often starts with ``torch.set_num_threads(os.cpu_count())``, or a shell exports
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``. farms_viz must be as fast after any of these as
without them (goal: ratio <= 1.15), and must leave the setting as the user made it. Each
variant runs in a fresh process (torch's thread settings are per process and per thread);
the variants alternate for ``--rounds`` rounds so that a burst of load elsewhere on the
machine hits both, and each prints the best of ``--repeat`` timed runs (cache cleared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, os, sys, threading, time, warnings
import torch
variant, repeat = sys.argv[1], int(sys.argv[2])
if variant == "torch.set_num_threads":
    torch.set_num_threads(os.cpu_count())
import farms_viz
from farms_viz.engine.cache import SPECTRA
from farms_viz.sources.pretrained import load_minilm
model = load_minilm()
before = torch.get_num_threads()
warnings.simplefilter("ignore")
farms_viz.analyze(torch.nn.Linear(256, 512), window=64, progress=False)  # warm-up: pool, libraries
times = []
for _ in range(repeat):
    SPECTRA.clear()
    start = time.perf_counter()
    farms_viz.analyze(model, method="farms", fit="median", window=100, windows_per_dim=10,
                      progress=False)
    times.append(time.perf_counter() - start)
fresh = []
thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
thread.start(); thread.join()
print(json.dumps({"seconds": min(times), "threads_before": before,
                  "threads_after": torch.get_num_threads(), "threads_fresh_thread": fresh[0]}))
"""


def variants() -> dict[str, dict[str, str]]:
    """Variant name -> environment overrides for its process."""
    cores = str(os.cpu_count())
    return {"plain": {}, "torch.set_num_threads": {},
            "OMP_NUM_THREADS": {"OMP_NUM_THREADS": cores},
            "MKL_NUM_THREADS": {"MKL_NUM_THREADS": cores}}


def run_variant(name: str, overrides: dict[str, str], repeat: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(overrides)
    out = subprocess.run([sys.executable, "-c", _CHILD, name, str(repeat)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    args = parser.parse_args(argv)
    chosen = {k: v for k, v in variants().items() if not args.only or k in args.only or k == "plain"}
    results: dict[str, list[dict]] = {name: [] for name in chosen}
    for _ in range(args.rounds):
        for name, overrides in chosen.items():
            results[name].append(run_variant(name, overrides, args.repeat))
    plain = min(r["seconds"] for r in results["plain"])
    print(f"FARMS median fit on MiniLM (window 100, k 10), {os.cpu_count()} cores, best of "
          f"{args.rounds} processes x {args.repeat} runs; load average {os.getloadavg()[0]:.2f}")
    for name, runs in results.items():
        seconds = min(r["seconds"] for r in runs)
        last = runs[-1]
        print(f"  {name:22s} {seconds:6.3f} s   ratio to plain {seconds / plain:5.2f}  (goal <= 1.15)   "
              f"torch.get_num_threads(): before {last['threads_before']}, after {last['threads_after']}, "
              f"fresh thread {last['threads_fresh_thread']}")


if __name__ == "__main__":
    main()
