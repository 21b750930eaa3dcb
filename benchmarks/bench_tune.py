"""Tune before pruning, measured: uniform, ESD-based and FARMS-based ratios x magnitude, Wanda, SparseGPT.

The small character language model (farms_viz.sources.language_model, trained here offline): for
each pruner and target sparsity, ``farms_viz.tune`` chooses the FARMS window (and, for ESD and FARMS,
the spread epsilon) by the perplexity on the calibration split; each allocation's chosen setting is
then measured on the held-out split, which nothing above has seen. Plus:

- ``--only study``: why alpha-based ratios win or lose here: layer vs block grouping, epsilon beyond
  the published 0.1-0.3, the peak and median fits, the head pruned too, calibration size, the alphas'
  spread against a random-init copy, and how well the alphas predict each layer's sensitivity;
- ``--only quick``: the lean table, a few minutes per pruner on 2 busy cores: Wanda and SparseGPT
  (``--quick-pruners``) at 70% and 80%, uniform / ESD / FARMS with the window (64 and 100, the
  analysis' default) and epsilon (0.1-0.3) chosen by ``tune`` on the calibration split, held-out
  perplexity on the first 100,000 held-out characters; ``--groups blocks`` allocates one ratio per
  transformer block (AlphaPruning's setting for LLMs) instead of one per layer;
- ``--only quick-study``: the diagnostics, leaner: alphas against a random-init copy, each layer's
  sensitivity (one layer alone pruned to 90%) by kind and its rank correlation with the alphas,
  allocations from the measured sensitivity (an oracle), from reversed alphas, grouped by block or
  by kind, allocated within each kind, small epsilons, the median fit, the head pruned too;
- ``--only quick-depth``: a control with no alphas at all: one ratio per block from depth alone;
- ``--only quick-kind``: ratios allocated within each kind of matrix (alphas compared across depth
  only), epsilon chosen on the calibration split, held-out perplexity;
- ``--only digits`` / ``--only minilm``: the digits MLP and MiniLM cases of bench_pruning.py (called
  from there: one place), and tune on the digits MLP (test accuracy, higher is better);
- ``--only memory``: peak memory of tune on MiniLM (magnitude and Wanda, an embedding-similarity
  evaluate) above the baseline with the model loaded and every weight read once, as a ratio to the
  model's size (goal <= 2.2).

A report, not a contest: nothing here asserts which allocation wins.

    python benchmarks/bench_tune.py                 # the language model table (about an hour on 2 busy cores)
    python benchmarks/bench_tune.py --only study    # the diagnostics (about 20 minutes)
    python benchmarks/bench_tune.py --only quick [--groups blocks] [--quick-pruners wanda]   # 5-10 min a pruner
    python benchmarks/bench_tune.py --only quick-study --quick-pruners wanda                # about 10 minutes
    python benchmarks/bench_tune.py --only memory

What came out is in benchmarks/results_tune.md.
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
                results.append({"pruner": pruner, "target": target, "groups": "blocks" if groups else "layers",
                                "allocation": LABELS[method],
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


# ---- quick: the lean measurement (a few minutes per pruner) -------------------------------------------

QUICK_TARGETS = (0.7, 0.8)
QUICK_WINDOWS = (64, 100)  # 100: farms_viz.analyze's default window
QUICK_EPSILONS = (0.1, 0.2, 0.3)
QUICK_HELD_OUT_TOKENS = 100_000


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def within_kind_sparsity(alphas: dict[str, float], target: float, epsilon: float) -> dict[str, float]:
    """AlphaPruning ratios compared only among matrices of one kind (q, k, v, out, up, down: across depth).

    Every kind keeps the target on its own (its matrices have one size), so the mean is the target;
    the alphas of different kinds of matrix are never compared with each other.
    """
    kinds: dict[str, list[str]] = {}
    for name in alphas:
        kinds.setdefault(_kind(name), []).append(name)
    ratios: dict[str, float] = {}
    for names in kinds.values():
        ratios.update(allocate.sparsity({n: alphas[n] for n in names}, target, epsilon))
    return {name: ratios[name] for name in alphas}


def quick_table(case: LanguageModelCase, pruner: str, targets, windows, epsilons, groups=None) -> pd.DataFrame:
    """Tune on the calibration split (uniform, ESD, FARMS at ``windows`` x ``epsilons``), report held-out."""
    grouping = "one ratio per transformer block" if groups == "blocks" else "one ratio per layer"
    print(f"\n== quick: {pruner}, targets {list(targets)}, FARMS windows {list(windows)} (k=10, q=1), epsilons "
          f"{list(epsilons)}, peak fit, {grouping}; chosen on {case.tune_tokens} calibration-split tokens, "
          f"reported on the first {case.held_out_tokens} held-out tokens ==", flush=True)
    started = time.perf_counter()
    frame = farms_viz.tune(case.model, case.tune_metric, calibration=case.calibration, pruner=pruner,
                           target=list(targets), windows=windows, windows_per_dim=10, epsilons=epsilons,
                           fit="peak", groups=groups, progress=False)
    print(f"  tune: {len(frame)} settings in {time.perf_counter() - started:.0f} s", flush=True)
    results = []
    for target in targets:
        for method in ("uniform", "esd", "farms"):
            row = best(frame, method, target=target)
            pruned, _ = case.prune(pruner, sparsities_for(case.model, row, case.layers))
            results.append({"pruner": pruner, "target": target, "groups": "blocks" if groups else "layers",
                            "allocation": LABELS[method],
                            "setting": _setting(row), "tune_ppl": round(float(row["metric"]), 3),
                            "held_out_ppl": round(case.held_out(pruned), 3)})
            del pruned
    table = pd.DataFrame(results)
    every = frame.assign(setting=[_setting(r) for _, r in frame.iterrows()])
    print("  every setting (calibration-split perplexity):")
    print(every.pivot_table(index="setting", columns="target", values="metric", sort=False).round(3)
          .to_string().replace("\n", "\n    ").join(["    ", ""]))
    print("  chosen per allocation:")
    print(table.to_string(index=False).replace("\n", "\n    ").join(["    ", ""]), flush=True)
    return table


def quick_within_kind(case: LanguageModelCase, pruner: str, targets, window: int, epsilons) -> pd.DataFrame:
    """Uniform against ESD and FARMS ratios allocated within each kind of matrix: eps chosen on the
    calibration split, perplexity reported on held-out text."""
    print(f"\n== quick, within each kind of matrix: {pruner}, targets {list(targets)}, FARMS window {window} (k=10), "
          f"epsilons {list(epsilons)}, peak fit ==", flush=True)
    alphas = {m: farms_viz.analyze(case.model, method=m, window=window, windows_per_dim=10, fit="peak",
                                   include=case.layers, progress=False).alphas(m) for m in ("esd", "farms")}
    results = []
    for target in targets:
        candidates = {"uniform": [("", prune.uniform(case.layers, target))]}
        for method in ("esd", "farms"):
            candidates[LABELS[method]] = [(f"eps={e:g}", within_kind_sparsity(alphas[method], target, e))
                                          for e in epsilons]
        for allocation, options in candidates.items():
            scored = []
            for setting, ratios in options:
                pruned, _ = case.prune(pruner, ratios)
                scored.append((case.tune_metric(pruned), setting, pruned))
            tune_ppl, setting, pruned = min(scored, key=lambda item: item[0])
            results.append({"pruner": pruner, "target": target, "allocation": allocation, "setting": setting,
                            "tune_ppl": round(tune_ppl, 3), "held_out_ppl": round(case.held_out(pruned), 3)})
            del scored, pruned
    table = pd.DataFrame(results)
    print(table.to_string(index=False).replace("\n", "\n    ").join(["    ", ""]), flush=True)
    return table


def quick_depth(case: LanguageModelCase, pruner: str, targets, epsilons=(0.2, 0.3)) -> None:
    """A control without alphas: one ratio per block from depth alone (block 0 spared, or deeper pruned more)."""
    print(f"\n== quick, depth alone (no alphas), one ratio per block: {pruner} ==", flush=True)
    params = allocate.layer_params(farms_viz.analyze(case.model, method="esd", include=case.layers, progress=False))
    scores = {"spare block 0": {n: -float(n.split(".")[1] == "0") for n in case.layers},
              "linear in depth": {n: float(n.split(".")[1]) for n in case.layers}}
    for target in targets:
        cells = []
        for epsilon in epsilons:
            for label, score in scores.items():
                ratios = allocate.sparsity(score, target, epsilon, params=params, groups="blocks")
                pruned, _ = case.prune(pruner, ratios)
                cells.append(f"{label} eps {epsilon}: calibration {case.tune_metric(pruned):.3f}, "
                             f"held-out {case.held_out(pruned):.3f}")
        print(f"  {target}: " + "; ".join(cells), flush=True)


def sensitivity(case: LanguageModelCase, pruner: str, sparsity: float = 0.9) -> pd.Series:
    """Perplexity rise (calibration split) when one layer alone is pruned to ``sparsity``."""
    dense = case.tune_metric(case.model)
    rises = {}
    for name in case.layers:
        pruned, _ = case.prune(pruner, {name: sparsity})
        rises[name] = case.tune_metric(pruned) - dense
        del pruned
    return pd.Series(rises, name="rise")


def quick_study(case: LanguageModelCase, pruner: str, target: float, window: int) -> None:
    """Why alpha-based ratios win or lose: alphas vs sensitivity, and the allocation's knobs."""
    print(f"\n== quick study: {pruner}, target {target}, FARMS window {window} (k=10), peak fit; metric: "
          f"calibration-split perplexity ({case.tune_tokens} tokens) ==", flush=True)
    started = time.perf_counter()
    analyses = {fit: farms_viz.analyze(case.model, window=window, windows_per_dim=10, fit=fit, include=case.layers,
                                       progress=False) for fit in ("peak", "median")}
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the same random-init copy every run
        random_copy = lm.CharacterLanguageModel(case.model.config, case.model.vocab_size)
    random_analysis = farms_viz.analyze(random_copy, window=window, windows_per_dim=10, fit="peak",
                                        include=case.layers, progress=False)
    for label, analysis in (("trained", analyses["peak"]), ("random init", random_analysis)):
        print(f"  alphas, peak fit, {label:<11}: " + "; ".join(
            f"{LABELS[m]} mean {np.mean(v):.2f} std {np.std(v, ddof=1):.2f} range {min(v):.2f}-{max(v):.2f}"
            for m in ("esd", "farms") for v in [list(analysis.alphas(m).values())]))
    rise = sensitivity(case, pruner)
    params = allocate.layer_params(analyses["peak"])
    per_weight = pd.Series({n: rise[n] / params[n] for n in case.layers})
    table = pd.DataFrame({"kind": [_kind(n) for n in case.layers], "params": [params[n] for n in case.layers],
                          "rise": rise, "esd": analyses["peak"].alphas("esd"),
                          "farms": analyses["peak"].alphas("farms")}, index=case.layers)
    for method in ("esd", "farms"):
        table[f"{method}_s"] = allocate.sparsity(analyses["peak"].alphas(method), target, 0.2, params=params)
    print(f"  one layer alone pruned to 90% ({time.perf_counter() - started:.0f} s): mean by kind "
          "(rise: calibration perplexity rise; ESD_s/FARMS_s: the eps 0.2 ratios)")
    by_kind = table.groupby("kind", sort=False).agg(rise=("rise", "mean"), esd=("esd", "mean"),
                                                    farms=("farms", "mean"), esd_s=("esd_s", "mean"),
                                                    farms_s=("farms_s", "mean"))
    print(by_kind.round(3).to_string().replace("\n", "\n    ").join(["    ", ""]))
    for label, values in (("rise", rise), ("rise per weight", per_weight)):
        cells = [f"{LABELS[m]} {fit} "
                 f"{_spearman([analyses[fit].alphas(m)[n] for n in case.layers], values[case.layers]):+.2f}"
                 for fit in ("peak", "median") for m in ("esd", "farms")]
        print(f"  Spearman(alpha, {label}): " + ", ".join(cells)
              + "  (AlphaPruning needs negative: larger alpha, less sensitive)")
    within = [_spearman(rows["farms"], rows["rise"]) for _, rows in table.groupby("kind") if len(rows) > 2]
    print(f"  Spearman(FARMS alpha, rise) within one kind (across the blocks), mean over kinds: {np.mean(within):+.2f}")

    def measure(ratios) -> float:
        pruned, _ = case.prune(pruner, ratios)
        return case.tune_metric(pruned)

    uniform_metric = measure(prune.uniform(case.layers, target))
    cells = [f"uniform {uniform_metric:.3f}"]
    for epsilon in (0.1, 0.3):
        cells.append(f"eps {epsilon}: " + ", ".join(
            f"{label} {measure(allocate.sparsity(scores, target, epsilon, params=params)):.3f}" for label, scores in (
                ("-rise (oracle)", {n: -rise[n] for n in case.layers}),
                ("-rise/weight", {n: -per_weight[n] for n in case.layers}),
                ("FARMS", analyses["peak"].alphas("farms")),
                ("-FARMS (reversed)", {n: -a for n, a in analyses["peak"].alphas("farms").items()}))))
    print("  allocations scored on the calibration split: " + "; ".join(cells), flush=True)
    cells = []
    for label, groups in (("blocks", "blocks"), ("kind", [_kind(n) for n in case.layers])):
        for method in ("esd", "farms"):
            for epsilon in (0.1, 0.3):
                ratios = allocate.sparsity(analyses["peak"].alphas(method), target, epsilon, params=params,
                                           groups=groups)
                cells.append(f"{label} {LABELS[method]} eps {epsilon} {measure(ratios):.3f}")
    print("  grouped (one alpha per group, its mean): " + ", ".join(cells), flush=True)
    cells = []
    for method in ("esd", "farms"):
        for epsilon in (0.1, 0.2, 0.3):
            ratios = within_kind_sparsity(analyses["peak"].alphas(method), target, epsilon)
            cells.append(f"{LABELS[method]} eps {epsilon} {measure(ratios):.3f}")
    print("  within each kind (alphas compared across depth only): " + ", ".join(cells), flush=True)
    cells = []
    for method in ("esd", "farms"):
        for epsilon in (0.02, 0.05):
            ratios = allocate.sparsity(analyses["peak"].alphas(method), target, epsilon, params=params)
            cells.append(f"{LABELS[method]} eps {epsilon} {measure(ratios):.3f}")
    for method in ("esd", "farms"):
        ratios = allocate.sparsity(analyses["median"].alphas(method), target, 0.1, params=params)
        cells.append(f"{LABELS[method]} median fit eps 0.1 {measure(ratios):.3f}")
    print("  small epsilons, median fit: " + ", ".join(cells), flush=True)
    with_head = case.layers + ["head"]
    head_analysis = farms_viz.analyze(case.model, window=window, windows_per_dim=10, fit="peak", include=with_head,
                                      progress=False)
    head_params = allocate.layer_params(head_analysis)
    cells = [f"uniform {measure(prune.uniform(with_head, target)):.3f}"]
    for method in ("esd", "farms"):
        ratios = allocate.sparsity(head_analysis.alphas(method), target, 0.2, params=head_params)
        cells.append(f"{LABELS[method]} eps 0.2 {measure(ratios):.3f} (head at {ratios['head']:.2f}, "
                     f"alpha {head_analysis.alphas(method)['head']:.2f})")
    print("  head pruned too: " + ", ".join(cells))
    print(f"  study: {time.perf_counter() - started:.0f} s", flush=True)


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
# The weights are a memory map of the safetensors file: pages the forward passes never read (most
# of the word-embedding table) are not resident yet, and the first full read of the model (tune's
# working copy) would count the model's own pages as tune's memory. Read every tensor once, as a
# model trained or edited in the session is resident anyway.
unread = status("VmRSS:")
with torch.no_grad():
    for tensor in [*model.parameters(), *model.buffers()]:
        tensor.sum()
faulted_in = status("VmRSS:") - unread
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
                  "peak_above_baseline": peak - baseline, "model_bytes": model_bytes, "faulted_in": faulted_in,
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
              f"{r['settings']} settings in {r['seconds']:.0f} s; best {r['best']} "
              f"(the model's unread file pages, {r['faulted_in'] / 2**20:.0f} MiB, read in before the baseline)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=(
        "lm", "study", "quick", "quick-study", "quick-kind", "quick-depth", "digits", "minilm", "memory"))
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
    parser.add_argument("--quick-pruners", nargs="+", default=["wanda", "sparsegpt"], choices=PRUNERS)
    parser.add_argument("--quick-targets", nargs="+", type=float, default=list(QUICK_TARGETS))
    parser.add_argument("--quick-windows", nargs="+", type=int, default=list(QUICK_WINDOWS))
    parser.add_argument("--quick-epsilons", nargs="+", type=float, default=list(QUICK_EPSILONS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on shared cores)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the LM table as CSV (and the tune rows)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    only = set(args.only or ["lm"])
    start = time.perf_counter()
    if only & {"lm", "study", "quick", "quick-study", "quick-kind", "quick-depth"}:
        held_out_tokens = args.held_out_tokens
        if held_out_tokens is None and only & {"quick", "quick-study", "quick-kind", "quick-depth"}:
            held_out_tokens = QUICK_HELD_OUT_TOKENS
        case = LanguageModelCase(args.calibration_tokens, args.tune_tokens, held_out_tokens)
        if "quick" in only:
            for pruner in args.quick_pruners:
                quick_table(case, pruner, args.quick_targets, args.quick_windows, args.quick_epsilons, args.groups)
        if "quick-kind" in only:
            for pruner in args.quick_pruners:
                quick_within_kind(case, pruner, args.quick_targets, args.quick_windows[0], args.quick_epsilons)
        if "quick-depth" in only:
            for pruner in args.quick_pruners:
                quick_depth(case, pruner, args.quick_targets)
        if "quick-study" in only:
            for pruner in args.quick_pruners:
                quick_study(case, pruner, args.study_target, args.quick_windows[0])
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
