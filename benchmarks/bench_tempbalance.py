"""TempBalance against one fixed learning rate on the digits MLP, measured over many seeds.

The comparison of notebook 04, longer: every seed trains the MLP (64-256-256-128-10) three
times from the same initialisation and batch order, with SGD (momentum 0.9, batches of 64) and
a cosine schedule from ``--lr``; the arms differ only in the per-layer rates:

- ``fixed``: every layer at the scheduled rate;
- ``TempBalance (ESD)``: before each epoch the current weights are analysed and
  ``allocate.rebalance`` gives each layer a rate between 0.5x and 1.5x the scheduled one,
  linear in its standard-ESD alpha (larger alpha, larger rate), as the TempBalance paper does;
- ``TempBalance (FARMS)``: the same from FARMS alphas (window 32, 5 windows per dimension).

Printed per base rate: test accuracy and test loss of each arm (mean +- standard deviation over
the seeds), and each TempBalance arm's paired difference from ``fixed`` (same seed) with its
standard deviation and a paired t-test's p-value. One torch thread (the notebooks' setting for
these small matrices); the seconds per run are printed too (the analyses are TempBalance's only
extra cost).

    python benchmarks/bench_tempbalance.py                       # 10 seeds, 15 epochs, lr 0.02 0.05 0.1 0.2
    python benchmarks/bench_tempbalance.py --seeds 5 --epochs 30 --lr 0.1
"""

from __future__ import annotations

import argparse
import math
import time

import pandas as pd
import torch
from scipy.stats import ttest_rel
from torch import nn

import farms_viz
from farms_viz import allocate
from farms_viz.sources import digits

WINDOW = {"window": 32, "windows_per_dim": 5}  # notebook 04's setting for the small digits layers
MOMENTUM = 0.9
ARMS = {"fixed": None, "TempBalance (ESD)": "esd", "TempBalance (FARMS)": "farms"}


def cosine(base_lr: float, epoch: int, epochs: int) -> float:
    """The rate of epoch 1..epochs: base_lr in the first, falling towards 0 by the last."""
    return base_lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))


def train(data: digits.DigitsData, seed: int, alphas_from: str | None, base_lr: float, epochs: int) -> dict:
    """One run: test accuracy and loss after ``epochs``, and the seconds it took."""
    started = time.perf_counter()
    model = digits.digits_mlp(seed)
    shuffle = torch.Generator().manual_seed(seed)
    live = None
    if alphas_from is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=MOMENTUM)
    else:
        live = farms_viz.Monitor(model, background=False, method=alphas_from, **WINDOW)
        live.step(0)
        groups = allocate.param_groups(model, live.latest, base_lr, alphas_from=alphas_from)
        optimizer = torch.optim.SGD(groups, lr=base_lr, momentum=MOMENTUM)
    for epoch in range(1, epochs + 1):
        rate = cosine(base_lr, epoch, epochs)
        if live is None:
            for group in optimizer.param_groups:
                group["lr"] = rate
        else:
            allocate.rebalance(optimizer, model, live.latest, rate, alphas_from=alphas_from)
        digits.train_epoch(model, optimizer, data, shuffle)
        if live is not None and epoch < epochs:
            live.step(epoch)
    if live is not None:
        live.close()
    with torch.no_grad():
        logits = model(data.x_test)
    return {"accuracy": float((logits.argmax(1) == data.y_test).float().mean()),
            "loss": float(nn.functional.cross_entropy(logits, data.y_test)),
            "seconds": time.perf_counter() - started}


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm: mean +- std of accuracy and loss, and the paired difference from ``fixed``."""
    rows = []
    fixed = runs[runs.arm == "fixed"].set_index("seed")
    for arm in ARMS:
        mine = runs[runs.arm == arm].set_index("seed").loc[fixed.index]
        row = {"arm": arm, "seeds": len(mine),
               "accuracy": f"{mine.accuracy.mean():.4f} +- {mine.accuracy.std():.4f}",
               "loss": f"{mine.loss.mean():.4f} +- {mine.loss.std():.4f}",
               "s/run": f"{mine.seconds.median():.2f}"}
        if arm != "fixed":
            for metric in ("accuracy", "loss"):
                diff = mine[metric] - fixed[metric]
                p = ttest_rel(mine[metric], fixed[metric]).pvalue if diff.abs().sum() > 0 else 1.0
                row[f"{metric} - fixed"] = f"{diff.mean():+.4f} +- {diff.std():.4f} (p={p:.2f})"
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = digits.digits_data()
    print(f"digits MLP, SGD momentum {MOMENTUM}, cosine schedule, {args.epochs} epochs, seeds 0..{args.seeds - 1}; "
          f"TempBalance: linear mapping, 0.5x..1.5x, rebalanced before every epoch; FARMS {WINDOW}")
    pd.set_option("display.width", 200)
    for base_lr in args.lr:
        # arms interleaved per seed, so a slow moment of the machine hits all of them alike
        runs = pd.DataFrame([{"seed": seed, "arm": arm, **train(data, seed, source, base_lr, args.epochs)}
                             for seed in range(args.seeds) for arm, source in ARMS.items()])
        print(f"\nbase lr {base_lr}")
        print(summary(runs).to_string(index=False))


if __name__ == "__main__":
    main()
