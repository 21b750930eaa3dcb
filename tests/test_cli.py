"""The farms-viz command: reports, exit codes, one-line errors, no partial output."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
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
def checkpoint(tmp_path) -> Path:
    g = torch.Generator().manual_seed(0)
    path = tmp_path / "model.safetensors"
    save_file({"layers.2.proj.weight": torch.randn(96, 48, generator=g),
               "layers.2.proj.bias": torch.randn(96, generator=g),
               "layers.10.proj.weight": torch.randn(48, 96, generator=g),
               "head.weight": torch.randn(64, 64, generator=g)}, path)
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- reports ---------------------------------------------------------------------------

@pytest.mark.slow
def test_demo_report_writes_an_html_page_and_a_csv(tmp_path, capsys):
    out = tmp_path / "report.html"
    code, _, err = _run(capsys, "report", "demo", "--out", out, "--window", "64", "--windows-per-dim", "2")
    assert code == 0, err
    assert _files(tmp_path) == {"report.html", "report.csv"}  # no temporary file left
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    table = pd.read_csv(tmp_path / "report.csv")
    assert len(table) == 2 * 7 and set(table.method) == {"esd", "farms"}
    assert "7 layers analysed" in err and "wrote" in err


def test_checkpoint_report_csv_matches_analyze(tmp_path, checkpoint, capsys):
    out = tmp_path / "out" / "r.html"
    out.parent.mkdir()
    code, _, err = _run(capsys, "report", checkpoint, "--out", out, "--fit", "ks", *FAST)
    assert code == 0, err
    expected = farms_viz.analyze(open_checkpoint(checkpoint), window=16, windows_per_dim=3, fit="ks",
                                 progress=False).to_pandas()
    written = pd.read_csv(out.with_suffix(".csv"))
    assert list(written.layer) == list(expected.layer)
    pd.testing.assert_series_equal(written.alpha, expected.alpha, check_exact=False, rtol=1e-12)


def test_include_exclude_are_repeatable_globs(tmp_path, checkpoint, capsys):
    code, _, err = _run(capsys, "report", checkpoint, "--out", tmp_path / "r.html", "--csv", tmp_path / "t.csv",
                        "--include", "layers.*", "--include", "head", "--exclude", "*.10.*",
                        "--method", "farms", *FAST)
    assert code == 0, err
    assert list(pd.read_csv(tmp_path / "t.csv").layer) == ["head", "layers.2.proj"]  # natural order of names
    assert "1 skipped" in err


def test_progress_bar_goes_to_stderr(tmp_path, checkpoint, capsys):
    code, out, err = _run(capsys, "report", checkpoint, "--out", tmp_path / "r.html", "--window", "16")
    assert code == 0 and out == ""
    assert "3/3" in err and "layer" in err


def test_warnings_become_one_line_on_stderr(tmp_path, checkpoint, capsys):
    code, _, err = _run(capsys, "report", checkpoint, "--out", tmp_path / "r.html", "--window", "4000",
                        "--no-progress")
    assert code == 0
    assert "farms-viz: warning: window 4000 covers the whole matrix" in err


# --- bad input -------------------------------------------------------------------------

def _empty(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(b"")
    return tmp_path / "m.safetensors"


def _truncated(tmp_path):
    save_file({"a.weight": torch.randn(64, 64)}, tmp_path / "full.safetensors")
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "full.safetensors").unlink()
    (tmp_path / "m.safetensors").write_bytes(data[:-1000])
    return tmp_path / "m.safetensors"


def _corrupt(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"PK\x03\x04" + os.urandom(2000))
    return tmp_path / "m.pt"


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def _code(tmp_path):
    (tmp_path / "m.bin").write_bytes(pickle.dumps({"w": _Payload()}, protocol=2))
    return tmp_path / "m.bin"


def _unknown(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + os.urandom(100))
    return tmp_path / "m.gguf"


def _no_weights(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "config.json").write_text(json.dumps({"hidden_size": 8}))
    return tmp_path / "folder"


def _missing(tmp_path):
    return tmp_path / "nope.safetensors"


BAD_MODELS = {
    "missing": (_missing, "checkpoint not found"),
    "empty": (_empty, "empty (0 bytes)"),
    "truncated": (_truncated, "corrupt or truncated safetensors"),
    "corrupt": (_corrupt, "corrupt or truncated torch checkpoint"),
    "pickle-with-code": (_code, "could execute code"),
    "unknown-format": (_unknown, "unknown checkpoint format"),
    "folder-without-weights": (_no_weights, "no weights in folder"),
}


def _assert_clean_failure(code: int, out: str, err: str, message: str) -> None:
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("farms-viz: error: ") and message in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_gives_one_line_error_and_no_output(tmp_path, capsys, case):
    make, message = BAD_MODELS[case]
    model = make(tmp_path)
    before = _files(tmp_path)
    code, out, err = _run(capsys, "report", model, "--out", tmp_path / "report.html")
    _assert_clean_failure(code, out, err, message)
    assert _files(tmp_path) == before
    assert "this must never run" not in out + err


def test_include_matching_nothing(tmp_path, checkpoint, capsys):
    code, out, err = _run(capsys, "report", checkpoint, "--out", tmp_path / "r.html",
                          "--include", "encoder.*", *FAST)
    _assert_clean_failure(code, out, err, "--include 'encoder.*' matches none of the 3 weight names")
    assert _files(tmp_path) == {"model.safetensors"}


def test_filters_leaving_nothing_analysable(tmp_path, checkpoint, capsys):
    code, out, err = _run(capsys, "report", checkpoint, "--out", tmp_path / "r.html",
                          "--include", "layers.*", "--exclude", "layers.*", *FAST)
    _assert_clean_failure(code, out, err, "no analysable layer is left after --include/--exclude")


@pytest.mark.parametrize("args, message", [
    (["--window", "1"], "window must be an integer >= 2"),
    (["--q", "0"], "q must be a finite number > 0"),
    (["--windows-per-dim", "0"], "windows_per_dim must be an integer >= 1"),
])
def test_bad_parameters(tmp_path, checkpoint, capsys, args, message):
    code, out, err = _run(capsys, "report", checkpoint, "--out", tmp_path / "r.html", *args)
    _assert_clean_failure(code, out, err, message)


def test_output_folder_must_exist(tmp_path, checkpoint, capsys):
    code, out, err = _run(capsys, "report", checkpoint, "--out", tmp_path / "no" / "r.html")
    _assert_clean_failure(code, out, err, "output folder does not exist")


def test_usage_errors_exit_2(capsys):
    code, _, err = _run(capsys, "report", "demo", "--out", "r.html", "--fit", "best")
    assert code == 2 and "invalid choice: 'best'" in err
    assert _run(capsys)[0] == 2


def test_a_failed_run_keeps_the_previous_report(tmp_path, capsys):
    (tmp_path / "report.html").write_text("previous")
    code, _, _ = _run(capsys, "report", _corrupt(tmp_path), "--out", tmp_path / "report.html")
    assert code == 1 and (tmp_path / "report.html").read_text() == "previous"


def test_failure_while_writing_leaves_no_partial_file(tmp_path, checkpoint, capsys, monkeypatch):
    import farms_viz.widget.export

    def half_written(analysis, file):
        file.write(b"layer,method,kind\n")
        raise OSError(28, "No space left on device", file.name)

    monkeypatch.setattr(farms_viz.widget.export, "write_csv", half_written)
    code, _, err = _run(capsys, "report", checkpoint, "--out", tmp_path / "r.html", *FAST)
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    assert _files(tmp_path) == {"model.safetensors"}


def test_interrupt_exits_130_without_output(tmp_path, checkpoint, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(farms_viz, "analyze", interrupted)
    code, _, err = _run(capsys, "report", checkpoint, "--out", tmp_path / "r.html", *FAST)
    assert code == 130 and "interrupted" in err
    assert _files(tmp_path) == {"model.safetensors"}


# --- lab -------------------------------------------------------------------------------

def test_lab_dry_run_prints_the_jupyterlab_command(capsys):
    code, out, _ = _run(capsys, "lab", "--dry-run", "--", "--no-browser")
    assert code == 0
    assert "-m jupyterlab" in out and f"--ServerApp.root_dir={cli.notebooks_folder()}" in out
    assert out.strip().endswith("--no-browser")
    assert cli.notebooks_folder().name == "notebooks"


def test_lab_help(capsys):
    with pytest.raises(SystemExit) as stop:
        cli._parser().parse_args(["lab", "--help"])
    assert stop.value.code == 0 and "--dry-run" in capsys.readouterr().out


# --- as a separate process -------------------------------------------------------------

def _subprocess(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "farms_viz.cli", *map(str, argv)], capture_output=True,
                          text=True, timeout=300)


def test_module_entry_point_end_to_end(tmp_path, checkpoint):
    done = _subprocess("report", checkpoint, "--out", tmp_path / "r.html", "--window", "16")
    assert done.returncode == 0, done.stderr
    assert {"r.html", "r.csv"} <= _files(tmp_path)
    assert "3/3" in done.stderr and "3 layers analysed" in done.stderr


def test_module_entry_point_bad_input(tmp_path):
    done = _subprocess("report", _code(tmp_path), "--out", tmp_path / "r.html")
    _assert_clean_failure(done.returncode, done.stdout, done.stderr, "could execute code")
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(shutil.which("farms-viz") is None, reason="package not installed (no console script)")
def test_console_script_is_installed():
    done = subprocess.run(["farms-viz", "report", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--windows-per-dim" in done.stdout
