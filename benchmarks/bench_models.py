"""Bigger models on the CPU: GPT-2-small and BERT-base shapes (random init from their
transformers configs; nothing is downloaded).

    python benchmarks/bench_models.py [--models gpt2 bert] [--no-weightwatcher]

Per model, in a fresh process (so that peak memory is its own):
- the standard ESD alone (KS fit, WeightWatcher's default) and WeightWatcher's ``analyze()``
  on the same model, with their ratio;
- FARMS alone and both methods together (median fit, window 100, Q 1, k 10), cache cleared;
- a one-step window change (100 -> 101) with the ESD cached, as the Explorer's slider does it;
- peak resident memory above the process baseline during the both-methods analysis,
  against the model's size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import gc, json, logging, os, sys, threading, time, warnings
warnings.simplefilter("ignore")
import psutil, torch, transformers
import farms_viz
from farms_viz.engine.cache import SPECTRA

name, run_ww = sys.argv[1], sys.argv[2] == "1"
transformers.logging.set_verbosity_error()
torch.manual_seed(0)
if name == "gpt2":
    model = transformers.GPT2Model(transformers.GPT2Config())
else:
    model = transformers.BertModel(transformers.BertConfig())
model.eval()
size = sum(p.numel() * p.element_size() for p in model.parameters())
farms_viz.analyze(torch.nn.Linear(256, 512), window=64, progress=False)  # libraries paged in
SPECTRA.clear()
gc.collect()
out = {"model": name, "parameters": sum(p.numel() for p in model.parameters()), "model_bytes": size}

def timed(**kwargs):
    start = time.perf_counter()
    result = farms_viz.analyze(model, progress=False, **kwargs)
    return time.perf_counter() - start, result

out["esd_ks"], result = timed(method="esd", fit="ks")
out["layers"] = len(result.layers)
SPECTRA.clear()
out["farms"], _ = timed(method="farms")
SPECTRA.clear()
gc.collect()
proc = psutil.Process()
base = proc.memory_info().rss
peak = [base]
done = threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.001)

sampler = threading.Thread(target=sample)
sampler.start()
out["both"], _ = timed(method="both")
done.set()
sampler.join()
out["peak_above_baseline"] = peak[0] - base
out["window_change"], _ = timed(method="both", window=101)
if run_ww:
    import weightwatcher
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    start = time.perf_counter()
    weightwatcher.WeightWatcher(model=model).analyze()
    out["weightwatcher"] = time.perf_counter() - start
print(json.dumps(out))
"""


def run_model(name: str, weightwatcher: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, name, "1" if weightwatcher else "0"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["gpt2", "bert"], choices=["gpt2", "bert"])
    parser.add_argument("--no-weightwatcher", action="store_true")
    args = parser.parse_args(argv)
    print(f"CPU, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; window 100, Q 1, k 10")
    for name in args.models:
        r = run_model(name, not args.no_weightwatcher)
        label = {"gpt2": "GPT-2-small", "bert": "BERT-base"}[name]
        print(f"{label} ({r['parameters'] / 1e6:.0f}M parameters, {r['layers']} layers):")
        ww = r.get("weightwatcher")
        ww_text = (f"   WeightWatcher {ww:6.2f} s   ESD speed-up {ww / r['esd_ks']:5.1f}x  (target >= 8x)"
                   if ww is not None else "")
        print(f"  standard ESD (KS fit)   {r['esd_ks']:6.2f} s{ww_text}")
        print(f"  FARMS (median fit)      {r['farms']:6.2f} s")
        print(f"  both methods            {r['both']:6.2f} s")
        print(f"  window change 100->101  {r['window_change']:6.2f} s   (ESD cached, FARMS recomputed)")
        print(f"  peak memory above baseline during both: {r['peak_above_baseline'] / 2**20:.0f} MiB for a "
              f"{r['model_bytes'] / 2**20:.0f} MiB model ({r['peak_above_baseline'] / r['model_bytes']:.2f}x)")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
