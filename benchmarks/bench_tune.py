"""Tune before pruning, measured: uniform, ESD-based and FARMS-based ratios x magnitude, Wanda, SparseGPT.

The small character language model (farms_viz.sources.language_model, trained here offline): for
each pruner and target sparsity, ``farms_viz.tune`` chooses the FARMS window (and, for ESD and FARMS,
the spread epsilon) by the perplexity on the calibration split; each allocation's chosen setting is
then measured on the held-out split, which nothing above has seen. Plus:

- ``--only study``: why alpha-based ratios win or lose here: layer vs block grouping, epsilon beyond
  the published 0.1-0.3, the peak and median fits, the head pruned too, calibration size, the alphas'
  spread against a random-init copy, and how well the alphas predict each layer's sensitivity;
- ``--only digits`` / ``--only minilm``: the digits MLP and MiniLM cases of bench_pruning.py (called
  from there: one place), and tune on the digits MLP (test accuracy, higher is better);
- ``--only memory``: peak memory of tune on MiniLM (Wanda, an embedding-similarity evaluate) above
  the baseline with the model loaded, as a ratio to the model's size (goal <= 2.2).

A report, not a contest: nothing here asserts which allocation wins.

    python benchmarks/bench_tune.py                 # the language model table (about an hour on 2 busy cores)
    python benchmarks/bench_tune.py --only study    # the diagnostics (about 20 minutes)
    python benchmarks/bench_tune.py --only memory
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import farms_viz
from farms_viz import allocate, prune
from farms_viz.decisions.prunable import prunable_layers
from farms_viz.decisions.tune import best, sparsities_for
from farms_viz.sources import language_model as lm

HERE = Path(__file__).resolve().parent
TARGETS = (0.5, 0.6, 0.7, 0.8)
PRUNERS = ("magnitude", "wanda", "sparsegpt")
WINDOWS = (32, 64, 128)  # the 192 x 192 attention matrices: 192 would be the whole matrix
EPSILONS = (0.1, 0.2, 0.3)
LABELS = {"uniform": "uniform", "esd": "ESD", "farms": "FARMS"}

pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 30)


class LanguageModelCase:
    """The trained language model, its calibration inputs and its two perplexities."""

    def __init__(self, calibration_tokens: int = 4096, tune_tokens: int = 20_000, held_out_tokens: int | None = None,
                 seed: int = 0):
        self.model = lm.load_language_model()
        self.splits = lm.corpus_splits()
        self.context = self.model.config.context
        self.calibration = self.batches(calibration_tokens, seed)
        self.tune_tokens, self.held_out_tokens = tune_tokens, held_out_tokens
        self.layers, self.excluded = prunable_layers(self.model)

    def batches(self, tokens: int, seed: int = 0) -> list[torch.Tensor]:
        """Calibration inputs of ``tokens`` tokens from the calibration split, 8 sequences per batch."""
        per_batch = 8 * self.context
        if tokens < per_batch:
            return lm.calibration_batches(1, tokens, batch_size=1, seed=seed, splits=self.splits)
        return lm.calibration_batches(tokens // per_batch, self.context, batch_size=8, seed=seed, splits=self.splits)

    def tune_metric(self, model) -> float:
        return lm.perplexity(model, self.splits.calibration, max_tokens=self.tune_tokens)

    def held_out(self, model) -> float:
        return lm.perplexity(model, self.splits.held_out, max_tokens=self.held_out_tokens)

    def prune(self, pruner: str, ratios: dict[str, float], calibration=None):
        if pruner == "magnitude":
            return prune.magnitude(self.model, ratios)
        function = prune.wanda if pruner == "wanda" else prune.sparsegpt
        return function(self.model, ratios, self.calibration if calibration is None else calibration)


def _setting(row: pd.Series) -> str:
    if row["method"] == "uniform":
        return ""
    window = f"m={int(row['window'])}, " if row["method"] == "farms" else ""
    return f"{window}eps={row['epsilon']:g}"


def bench_language_model(case: LanguageModelCase, pruners, targets, windows, epsilons, fit: str, groups,
                         out: Path | None) -> pd.DataFrame:
    dense_tune, dense_held_out = case.tune_metric(case.model), case.held_out(case.model)
    tokens = sum(int(b.numel()) for b in case.calibration)
    print(f"\n== small character LM ({sum(p.numel() for p in case.model.parameters()) / 1e6:.2f}M parameters), "
          f"{len(case.layers)} block linear layers pruned; left dense: {', '.join(case.excluded)} ==")
    print(f"calibration: {tokens} tokens for Wanda/SparseGPT; tune metric: perplexity on the first "
          f"{case.tune_tokens} calibration-split tokens (dense {dense_tune:.3f}); reported: held-out perplexity "
          f"({case.held_out_tokens or len(case.splits.held_out)} tokens, dense {dense_held_out:.3f})")
    print(f"tune grid: FARMS windows {list(windows)}, k=10, q=1; epsilons {list(epsilons)}; fit={fit}; "
          f"groups={groups}")
    frames, results = [], []
    for pruner in pruners:
        for target in targets:
            started = time.perf_counter()
            frame = farms_viz.tune(case.model, case.tune_metric, calibration=case.calibration, pruner=pruner,
                                   target=target, windows=windows, windows_per_dim=10, epsilons=epsilons,
                                   fit=fit, groups=groups, progress=False)
            tune_seconds = time.perf_counter() - started
            frames.append(frame)
            for method in ("uniform", "esd", "farms"):
                row = best(frame, method)
                pruned, report = case.prune(pruner, sparsities_for(case.model, row, case.layers))
                results.append({"pruner": pruner, "target": target, "allocation": LABELS[method],
                                "setting": _setting(row), "tune_ppl": float(row["metric"]),
                                "held_out_ppl": case.held_out(pruned),
                                "reached": float(report["reached"].iloc[-1])})
                del pruned
            last = results[-3:]
            print(f"  {pruner:>9} {target:.1f}: tune {tune_seconds:5.0f} s ({len(frame)} settings); held-out "
                  + ", ".join(f"{r['allocation']} {r['held_out_ppl']:.3f} [{r['setting']}]" for r in last), flush=True)
    table = pd.DataFrame(results)
    pivot = table.pivot_table(index=["pruner", "target"], columns="allocation", values="held_out_ppl",
                              sort=False)[["uniform", "ESD", "FARMS"]]
    print("\nheld-out perplexity (lower is better), setting chosen by tune on the calibration split:")
    print(pivot.round(3).to_string())
    if out is not None:
        pd.concat(frames, ignore_index=True).to_csv(out.with_suffix(".tune.csv"), index=False)
        table.to_csv(out, index=False)
    return table


# ---- why alpha-based ratios win or lose here -------------------------------------------------------

def _spearman(a, b) -> float:
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def study(case: LanguageModelCase, pruner: str, target: float) -> None:
    print(f"\n== why: the language model, {pruner}, target {target} (metric: calibration-split perplexity, "
          f"{case.tune_tokens} tokens) ==")
    base = dict(calibration=case.calibration, pruner=pruner, target=target, windows=(64,), windows_per_dim=10,
                progress=False)

    def line(title, frame):
        cells = []
        for method in ("uniform", "esd", "farms"):
            rows = frame[frame["method"] == method]
            if rows.empty:
                continue
            row = best(rows)
            spread = f" [eps {row['epsilon']:g}]" if method != "uniform" else ""
            cells.append(f"{LABELS[method]} {row['metric']:.3f}{spread}")
        print(f"  {title:<44} " + ", ".join(cells), flush=True)

    # 1. the alphas: trained against a random-init copy of the same architecture
    random_copy = lm.CharacterLanguageModel(case.model.config, case.model.vocab_size)
    for fit in ("peak", "median"):
        for label, model in (("trained", case.model), ("random init", random_copy)):
            analysis = farms_viz.analyze(model, window=64, windows_per_dim=10, fit=fit, include=case.layers,
                                         progress=False)
            spread = {m: np.array(list(analysis.alphas(m).values())) for m in ("esd", "farms")}
            print(f"  alphas, {fit:>6} fit, {label:<11}: " + "; ".join(
                f"{LABELS[m]} mean {v.mean():.2f} std {v.std(ddof=1):.2f} range {v.min():.2f}-{v.max():.2f}"
                for m, v in spread.items()))

    # 2. do the alphas predict which layers are sensitive? prune one layer at a time
    dense = case.tune_metric(case.model)
    sensitivity = {}
    for name in case.layers:
        pruned, _ = case.prune(pruner, {name: 0.9})
        sensitivity[name] = case.tune_metric(pruned) - dense
    analysis = farms_viz.analyze(case.model, window=64, windows_per_dim=10, fit="peak", include=case.layers,
                                 progress=False)
    median = farms_viz.analyze(case.model, window=64, windows_per_dim=10, fit="median", include=case.layers,
                               progress=False)
    print(f"  sensitivity: perplexity rise when one layer alone is pruned to 90% (dense {dense:.3f}):")
    kinds = {}
    for name, rise in sensitivity.items():
        kinds.setdefault(name.rsplit(".", 1)[-1], []).append(rise)
    print("    mean by kind: " + ", ".join(f"{k} {np.mean(v):+.3f}" for k, v in kinds.items()))
    rises = [sensitivity[n] for n in case.layers]
    for label, source in (("peak", analysis), ("median", median)):
        print(f"    Spearman(alpha, sensitivity), {label} fit: " + ", ".join(
            f"{LABELS[m]} {_spearman([source.alphas(m)[n] for n in case.layers], rises):+.2f}"
            for m in ("esd", "farms"))
            + "  (AlphaPruning assumes negative: larger alpha, less sensitive)")
    params = allocate.layer_params(analysis)
    oracle = allocate.sparsity({n: -sensitivity[n] for n in case.layers}, target, 0.2,
                               params={n: params[n] for n in case.layers})
    pruned, _ = case.prune(pruner, oracle)
    print(f"  ratios from measured sensitivity (eps 0.2, least sensitive pruned most): "
          f"{case.tune_metric(pruned):.3f}", flush=True)
    reversed_ratios = allocate.sparsity({n: -a for n, a in analysis.alphas("farms").items()}, target, 0.2,
                                        params={n: params[n] for n in case.layers})
    pruned, _ = case.prune(pruner, reversed_ratios)
    print(f"  FARMS ratios reversed (small alpha pruned most, eps 0.2): {case.tune_metric(pruned):.3f}", flush=True)

    # 3. the allocation's knobs
    line("per layer, peak fit, eps 0.1-0.3", farms_viz.tune(case.model, case.tune_metric, fit="peak",
                                                            epsilons=EPSILONS, **base))
    line("per layer, median fit, eps 0.1-0.3", farms_viz.tune(case.model, case.tune_metric, fit="median",
                                                              epsilons=EPSILONS, methods=("esd", "farms"),
                                                              **base))
    line("per block (groups='blocks'), peak fit", farms_viz.tune(case.model, case.tune_metric, fit="peak",
                                                                 epsilons=EPSILONS, groups="blocks",
                                                                 methods=("esd", "farms"), **base))
    line("per layer, peak fit, small eps 0.02-0.05", farms_viz.tune(case.model, case.tune_metric, fit="peak",
                                                                    epsilons=(0.02, 0.05), methods=("esd", "farms"),
                                                                    **base))
    line("per layer, peak fit, large eps 0.5-0.8", farms_viz.tune(case.model, case.tune_metric, fit="peak",
                                                                  epsilons=(0.5, 0.8), methods=("esd", "farms"),
                                                                  **base))
    with_head = case.layers + ["head"]
    line("head pruned too, peak fit", farms_viz.tune(case.model, case.tune_metric, fit="peak", epsilons=EPSILONS,
                                                     layers=with_head, **base))

    # 4. calibration size (uniform ratios: the pruner alone)
    if pruner != "magnitude":
        cells = []
        for tokens in (128, 1024, 4096, 16384):
            pruned, _ = case.prune(pruner, prune.uniform(case.layers, target), case.batches(tokens, seed=1))
            cells.append(f"{tokens} tokens {case.tune_metric(pruned):.3f}")
        print(f"  calibration size, uniform {target}: " + ", ".join(cells), flush=True)


# ---- digits, MiniLM, memory -------------------------------------------------------------------------

def bench_digits_tune(seeds: int) -> None:
    from farms_viz.sources import digits

    torch.set_num_threads(1)
    data = digits.digits_data()
    print(f"\n== digits MLP: tune (magnitude, every Linear but the 10-way head, test accuracy, higher is better), "
          f"{seeds} seeds ==")
    rows = []
    for seed in range(seeds):
        model = digits.train_digits_mlp(data, seed=seed)
        frame = farms_viz.tune(model, lambda m: digits.accuracy(m, data), pruner="magnitude", target=[0.7, 0.8, 0.9],
                               windows=(8, 16, 32, 64), windows_per_dim=5, epsilons=(0.05, 0.1, 0.2, 0.3),
                               fit="median", higher_is_better=True, progress=False)
        for (target, method), rows_of in frame.groupby(["target", "method"]):
            rows.append({"seed": seed, "target": target, "method": LABELS[method],
                         "best accuracy": rows_of["metric"].max()})
    table = pd.DataFrame(rows).pivot_table(index="target", columns="method", values="best accuracy")
    print("best test accuracy over the grid (chosen on the test split itself: an upper bound), mean of seeds:")
    print(table[["uniform", "ESD", "FARMS"]].round(4).to_string())


MEMORY_CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
import farms_viz
from farms_viz.sources.pretrained import load_minilm

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

sentences = json.loads(sys.argv[3])
model, tokenizer = load_minilm(with_tokenizer=True)
batch = dict(tokenizer(sentences[:10], return_tensors="pt", padding=True))
calibration = [dict(tokenizer(sentences[i:i + 5], return_tensors="pt", padding=True)) for i in (10, 15)]

def embed(m):
    with torch.no_grad():
        tokens = m(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
    return (tokens * mask).sum(1) / mask.sum(1)

reference = embed(model)
similarity = lambda m: float(torch.nn.functional.cosine_similarity(embed(m), reference, dim=-1).mean())
similarity(model)
baseline = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from the current RSS
start = time.perf_counter()
frame = farms_viz.tune(model, similarity, calibration=calibration, pruner=sys.argv[2], target=0.5,
                       windows=[100, 200], windows_per_dim=10, epsilons=[0.1, 0.2], fit="peak",
                       higher_is_better=True, progress=False)
seconds = time.perf_counter() - start
peak = status("VmHWM:")
model_bytes = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
    b.numel() * b.element_size() for b in model.buffers())
print(json.dumps({"pruner": sys.argv[2], "settings": len(frame), "seconds": seconds, "baseline": baseline,
                  "peak_above_baseline": peak - baseline, "model_bytes": model_bytes,
                  "best": frame[frame.best][["method", "window", "epsilon", "metric"]].astype(str).values.tolist()}))
"""


def bench_memory(threads: int) -> None:
    sys.path.insert(0, str(HERE))
    from bench_pruning import SENTENCES

    print("\n== peak memory of tune on MiniLM-L6 (every encoder Linear; pooler and embeddings left dense), "
          "5 settings, evaluate = embedding cosine similarity ==")
    for pruner in ("magnitude", "wanda"):
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(threads), pruner, json.dumps(SENTENCES)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {pruner:>9}: peak {r['peak_above_baseline'] / 2**20:.0f} MiB above the baseline "
              f"({r['baseline'] / 2**20:.0f} MiB with the model loaded) = "
              f"{r['peak_above_baseline'] / r['model_bytes']:.2f}x the model ({r['model_bytes'] / 2**20:.0f} MiB); "
              f"{r['settings']} settings in {r['seconds']:.0f} s; best {r['best']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("lm", "study", "digits", "minilm", "memory"), action="append")
    parser.add_argument("--pruners", nargs="+", default=list(PRUNERS), choices=PRUNERS)
    parser.add_argument("--targets", nargs="+", type=float, default=list(TARGETS))
    parser.add_argument("--windows", nargs="+", type=int, default=list(WINDOWS))
    parser.add_argument("--epsilons", nargs="+", type=float, default=list(EPSILONS))
    parser.add_argument("--fit", default="peak", choices=("peak", "median", "ks"))
    parser.add_argument("--groups", default=None, choices=(None, "blocks"))
    parser.add_argument("--calibration-tokens", type=int, default=4096)
    parser.add_argument("--tune-tokens", type=int, default=20_000)
    parser.add_argument("--held-out-tokens", type=int, default=None, help="default: the whole held-out split")
    parser.add_argument("--study-pruners", nargs="+", default=["wanda", "sparsegpt"], choices=PRUNERS)
    parser.add_argument("--study-target", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on shared cores)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the LM table as CSV (and the tune rows)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    only = set(args.only or ["lm"])
    start = time.perf_counter()
    if only & {"lm", "study"}:
        case = LanguageModelCase(args.calibration_tokens, args.tune_tokens, args.held_out_tokens)
        if "lm" in only:
            bench_language_model(case, args.pruners, args.targets, args.windows, args.epsilons, args.fit,
                                 args.groups, args.out)
        if "study" in only:
            for pruner in args.study_pruners:
                study(case, pruner, args.study_target)
    if "digits" in only:
        sys.path.insert(0, str(HERE))
        import bench_pruning

        bench_pruning.bench_digits(args.seeds, 0.2, window=32, windows_per_dim=5)
        bench_digits_tune(args.seeds)
    if "minilm" in only:
        sys.path.insert(0, str(HERE))
        import bench_pruning

        bench_pruning.bench_minilm(0.2, window=100, windows_per_dim=10)
    if "memory" in only:
        bench_memory(args.threads)
    print(f"\ntotal {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
