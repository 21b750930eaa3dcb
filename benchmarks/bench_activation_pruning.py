"""Wanda and SparseGPT on MiniLM-L6: seconds, peak memory, and how close the pruned outputs stay.

Every Linear layer of MiniLM (37 layers, 10.8M of its 22.7M parameters) at one sparsity, with a few
tokenized sentences as calibration (two batches of four). Each pruner runs in a fresh process:
seconds against a plain forward pass over the calibration and against magnitude pruning measured
in the same process, peak RSS above the baseline with the model loaded (the pruners keep the model,
one pruned copy and one layer's statistics), and the relative distance of the pruned model's
outputs to the dense ones on the calibration sentences and on held-out ones.

    python benchmarks/bench_activation_pruning.py              # about a minute on 2 idle cores
    python benchmarks/bench_activation_pruning.py --threads 1 --sparsity 0.6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import psutil, torch
torch.set_num_threads(int(sys.argv[1]))
from farms_viz import prune
from farms_viz.decisions.activation_pruning import sparsegpt, wanda
from farms_viz.engine.matrices import iter_layers
from farms_viz.sources.pretrained import load_minilm

pruner, sparsity, sentences = sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
model, tokenizer = load_minilm(with_tokenizer=True)
batch = lambda texts: dict(tokenizer(texts, return_tensors="pt", padding=True))
calibration = [batch(sentences[:4]), batch(sentences[4:8])]
held_out = [batch(sentences[8:12]), batch(sentences[12:16])]
layers = [layer.name for layer in iter_layers(model) if getattr(layer, "kind", "") == "linear"]
targets = {name: sparsity for name in layers}

def forward(m, batches):
    with torch.no_grad():
        return [m(**b).last_hidden_state for b in batches]

dense_calibration, dense_held_out = forward(model, calibration), forward(model, held_out)
start = time.perf_counter(); forward(model, calibration); forward_seconds = time.perf_counter() - start
baseline = psutil.Process().memory_info().rss
start = time.perf_counter()
run = {"magnitude": lambda: prune.magnitude(model, targets), "wanda": lambda: wanda(model, targets, calibration),
       "sparsegpt": lambda: sparsegpt(model, targets, calibration)}[pruner]
pruned, report = run()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def distance(outputs, dense):
    return float(sum((o - d).norm() ** 2 for o, d in zip(outputs, dense)) ** 0.5
                 / sum(d.norm() ** 2 for d in dense) ** 0.5)

print(json.dumps({"pruner": pruner, "seconds": seconds, "forward_seconds": forward_seconds,
                  "peak_above_baseline": peak - baseline,
                  "model_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
                  "layers": len(layers), "reached": float(report["reached"].iloc[-1]),
                  "calibration_tokens": sum(int(b["input_ids"].numel()) for b in calibration),
                  "distance_calibration": distance(forward(pruned, calibration), dense_calibration),
                  "distance_held_out": distance(forward(pruned, held_out), dense_held_out)}))
"""


def main() -> None:
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from bench_pruning import SENTENCES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    import torch

    threads = args.threads or torch.get_num_threads()
    print(f"MiniLM-L6, every Linear layer at sparsity {args.sparsity}, {threads} torch threads")
    print(f"{'pruner':>10} {'seconds':>8} {'x forward':>9} {'peak MiB':>9} {'x model':>8} "
          f"{'dist calib':>10} {'dist held-out':>13}")
    for pruner in ("magnitude", "wanda", "sparsegpt"):
        out = subprocess.run([sys.executable, "-c", CHILD, str(threads), pruner, str(args.sparsity),
                              json.dumps(SENTENCES)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['pruner']:>10} {r['seconds']:8.2f} {r['seconds'] / r['forward_seconds']:9.1f} "
              f"{r['peak_above_baseline'] / 2**20:9.0f} {r['peak_above_baseline'] / r['model_bytes']:8.2f} "
              f"{r['distance_calibration']:10.3f} {r['distance_held_out']:13.3f}")
    print(f"({r['layers']} layers, {r['calibration_tokens']} calibration token positions, padding included; "
          f"a forward pass over them took {r['forward_seconds']:.2f} s; model {r['model_bytes'] / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
