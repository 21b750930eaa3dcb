"""farms-viz report with several checkpoints: alpha over training as a CSV and an offline page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import farms_viz
from farms_viz import cli
from farms_viz.checkpoints import open_checkpoint

FAST = ["--window", "16", "--windows-per-dim", "3", "--no-progress"]


@pytest.fixture
def series(tmp_path) -> list[Path]:
    """Three checkpoints of a two-layer model; ``proj`` trains, ``head`` stays frozen."""
    g = torch.Generator().manual_seed(0)
    weights = {"proj.weight": torch.randn(96, 48, generator=g), "head.weight": torch.randn(64, 64, generator=g)}
    paths = []
    for step in (500, 1000, 1500):
        chi2 = torch.randn((2, 96, 48), generator=g).square().sum(0)  # Student-t(2) steps: heavy tails
        weights["proj.weight"] = weights["proj.weight"] + 0.5 * torch.randn(96, 48, generator=g) / (chi2 / 2).sqrt()
        path = tmp_path / f"ckpt-{step}.safetensors"
        save_file(weights, path)
        paths.append(path)
    return paths


def _run(capsys, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_several_checkpoints_give_a_step_series(tmp_path, series, capsys):
    out = tmp_path / "run.html"
    code, err = _run(capsys, "report", *series, "--out", out, *FAST)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("ckpt")) == ["run.csv", "run.html"]
    table = pd.read_csv(tmp_path / "run.csv")
    assert list(table.columns[:4]) == ["step", "model", "layer", "method"]
    assert table.groupby("step", sort=False).size().to_dict() == {500: 4, 1000: 4, 1500: 4}
    assert list(pd.unique(table.model)) == ["ckpt-500", "ckpt-1000", "ckpt-1500"]
    for path, step in zip(series, (500, 1000, 1500)):
        expected = farms_viz.analyze(open_checkpoint(path), window=16, windows_per_dim=3, progress=False).to_pandas()
        rows = table[table.step == step].reset_index(drop=True)
        assert list(rows.layer) == list(expected.layer)
        pd.testing.assert_series_equal(rows.alpha, expected.alpha, check_exact=False, rtol=1e-12)
    alphas = table.pivot_table(index="step", columns=["layer", "method"], values="alpha")
    assert alphas[("proj", "farms")].nunique() == 3 and alphas[("head", "farms")].nunique() == 1
    assert "3 checkpoints" in err and "wrote" in err and "note:" not in err


def test_the_page_is_offline_and_draws_alpha_against_step(tmp_path, series, capsys):
    out = tmp_path / "run.html"
    assert _run(capsys, "report", *series, "--out", out, *FAST)[0] == 0
    page = out.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=\"http", page)
    spec = json.loads(re.search(r"const spec = (\{.*?\});\n", page, re.DOTALL).group(1))
    text = json.dumps(spec)
    assert "mean alpha per method" in text and "alpha per layer: FARMS" in text
    steps = {row["step"] for rows in spec["datasets"].values() for row in rows if "step" in row}
    assert steps == {500, 1000, 1500}


def test_names_without_a_step_number_use_the_order_given(tmp_path, series, capsys):
    renamed = []
    for name, path in zip(("base", "middle", "final"), series):
        renamed.append(path.rename(tmp_path / f"{name}.safetensors"))
    code, err = _run(capsys, "report", *renamed, "--out", tmp_path / "r.html", *FAST)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "r.csv")
    assert table.drop_duplicates("model")[["step", "model"]].values.tolist() == [[0, "base"], [1, "middle"],
                                                                                 [2, "final"]]
    assert "note: not every checkpoint name ends in a distinct step number" in err


def test_one_bad_checkpoint_fails_the_series_with_one_line_and_no_output(tmp_path, series, capsys):
    broken = tmp_path / "ckpt-2000.safetensors"
    broken.write_bytes(series[0].read_bytes()[:-500])
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _run(capsys, "report", *series, broken, "--out", tmp_path / "run.html", *FAST)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("farms-viz: error: corrupt or truncated safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    code, err = _run(capsys, "report", series[0], series[0], "--out", tmp_path / "run.html", *FAST)
    assert code == 1 and "named twice" in err


def test_a_single_checkpoint_still_writes_the_explorer_report(tmp_path, series, capsys):
    code, err = _run(capsys, "report", series[0], "--out", tmp_path / "one.html", *FAST)
    assert code == 0, err
    assert "farms-viz-state" in (tmp_path / "one.html").read_text(encoding="utf-8")  # the widget's page
    assert "step" not in pd.read_csv(tmp_path / "one.csv").columns
