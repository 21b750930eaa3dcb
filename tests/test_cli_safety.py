"""The farms-viz command never destroys what it reads or what it should not write.

Most cases run the installed console script in a subprocess, as the user running the tests
(root in a container), with this checkout first on PYTHONPATH.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from farms_viz import cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--window", "16", "--windows-per-dim", "2", "--no-progress"]


def farms_viz_command(*argv, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``farms-viz`` (the console script; the module where it is not installed)."""
    script = shutil.which("farms-viz")
    command = [script] if script else [sys.executable, "-m", "farms_viz.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([*command, *map(str, argv)], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def _one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("farms-viz: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    g = torch.Generator().manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_file({"a.weight": torch.randn(48, 32, generator=g), "b.weight": torch.randn(32, 40, generator=g)}, path)
    return path


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- outputs that would destroy an input -------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("case", ["out-is-the-checkpoint", "csv-is-the-checkpoint", "out-links-to-the-checkpoint",
                                  "out-inside-the-checkpoint-folder"])
def test_an_output_onto_an_input_is_refused_and_the_input_kept(tmp_path, checkpoint, case):
    before = checkpoint.read_bytes()
    model = checkpoint
    if case == "out-is-the-checkpoint":
        args, says = ["--out", checkpoint], f"--out {checkpoint} is the input {checkpoint}: refusing to overwrite it"
    elif case == "csv-is-the-checkpoint":
        args = ["--out", tmp_path / "r.html", "--csv", checkpoint]
        says = f"--csv {checkpoint} is the input {checkpoint}: refusing to overwrite it"
    elif case == "out-links-to-the-checkpoint":
        (tmp_path / "link.html").symlink_to(checkpoint)
        args, says = ["--out", tmp_path / "link.html"], "is a symbolic link"
    else:
        model = tmp_path / "shards"
        model.mkdir()
        checkpoint = checkpoint.rename(model / "model.safetensors")
        args, says = ["--out", model / "report.html"], f"is inside the input folder {model}"
    names = _names(tmp_path)
    done = farms_viz_command("report", model, *args, *FAST)
    _one_line_error(done, says)
    assert checkpoint.read_bytes() == before
    assert _names(tmp_path) == names and (not model.is_dir() or _names(model) == {"model.safetensors"})


# --- outputs that are not regular files ---------------------------------------------------

def _special(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
        return path
    minor = {"null": 3, "full": 7}[kind]  # the same devices as /dev/null and /dev/full
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("creating device nodes needs root (CAP_MKNOD)")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["null", "full", "fifo"])
def test_a_device_or_fifo_target_is_refused_and_left_as_it_is(tmp_path, checkpoint, kind):
    target = _special(tmp_path, kind)
    mode = target.lstat().st_mode
    names = _names(tmp_path)
    done = farms_viz_command("report", checkpoint, "--out", target, *FAST)
    _one_line_error(done, str(target), "not a regular file")
    assert target.lstat().st_mode == mode  # still the device or FIFO, not a regular file
    assert _names(tmp_path) == names  # no null.csv / full.csv, no temporary file


@pytest.mark.slow
def test_a_csv_target_that_is_a_device_is_refused_before_anything_is_written(tmp_path, checkpoint):
    target = _special(tmp_path, "fifo")
    done = farms_viz_command("report", checkpoint, "--out", tmp_path / "r.html", "--csv", target, *FAST)
    _one_line_error(done, "not a regular file")
    assert stat.S_ISFIFO(target.lstat().st_mode) and not (tmp_path / "r.html").exists()


# --- temporary files ---------------------------------------------------------------------

def test_a_symlink_planted_at_a_temporary_name_is_never_written_through(tmp_path, checkpoint, capsys):
    """In-process, so the process id (which named the old temporary files) is known."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "r.html"
    for name in (out.name, "r.csv"):
        (tmp_path / f".{name}.{os.getpid()}.tmp").symlink_to(victim)
    assert cli.main(["report", str(checkpoint), "--out", str(out), *FAST]) == 0, capsys.readouterr().err
    assert victim.read_text() == "keep me"
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert not any(p.name.endswith(".tmp") and not p.is_symlink() for p in tmp_path.iterdir())


@pytest.mark.slow
def test_reports_get_the_usual_file_permissions(tmp_path, checkpoint):
    done = farms_viz_command("report", checkpoint, "--out", tmp_path / "r.html", *FAST)
    assert done.returncode == 0, done.stderr
    umask = os.umask(0)
    os.umask(umask)
    for name in ("r.html", "r.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


_SLOW_REPLACE = """
import os, sys, time
from pathlib import Path
import farms_viz.cli

marker, real = Path(sys.argv[1]), os.replace

def slow_replace(source, target):
    if str(target).endswith((".html", ".csv")):
        marker.touch()  # the temporary files exist now
        time.sleep(120)
    return real(source, target)

os.replace = slow_replace
sys.exit(farms_viz.cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_sigterm_while_writing_leaves_no_temporary_or_partial_file(tmp_path, checkpoint):
    """The cli in a child whose os.replace waits, so SIGTERM lands while the temporaries exist."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    marker = tmp_path / "writing"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", _SLOW_REPLACE, marker, "report", checkpoint,
                              "--out", out_dir / "r.html", *FAST], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "the child never reached the write"
            time.sleep(0.05)
        assert any(p.name.endswith(".tmp") for p in out_dir.iterdir())  # the moment the test is about
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


# --- what lands in the files ---------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://example.invalid","x")', "+1+1", "-1+1", "@SUM(1)", "\tTAB", "\rCR"]


@pytest.mark.slow
def test_csv_cells_that_could_start_a_formula_are_neutralised(tmp_path):
    g = torch.Generator().manual_seed(1)
    names = FORMULAS + ["plain.proj"]
    save_file({f"{n}.weight": torch.randn(24, 16, generator=g) for n in names}, tmp_path / "m.safetensors")
    done = farms_viz_command("report", tmp_path / "m.safetensors", "--out", tmp_path / "r.html", *FAST)
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    layers = {row["layer"] for row in rows}
    assert layers == {"'" + n for n in FORMULAS} | {"plain.proj"}
    for row in rows:
        for cell in row.values():
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                float(cell)  # only numbers (a negative D or log norm) may start that way


HOSTILE = ["<!--<script>", "</script><script>alert(1)</script>", "a&b>c", "line\u2028break"]


@pytest.mark.slow
def test_html_state_cannot_end_or_comment_out_its_script(tmp_path):
    g = torch.Generator().manual_seed(2)
    save_file({f"{n}.weight": torch.randn(24, 16, generator=g) for n in HOSTILE}, tmp_path / "m.safetensors")
    done = farms_viz_command("report", tmp_path / "m.safetensors", "--out", tmp_path / "r.html", *FAST)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    opening = '<script type="application/json" id="farms-viz-state">'
    start = page.index(opening) + len(opening)
    state = page[start:page.index("</script>", start)]
    assert not set(state) & {"<", ">", "&", "\u2028", "\u2029"}
    assert {row["layer"] for row in json.loads(state)["_table"]} >= set(HOSTILE)


# --- options --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("device, fragment", [
    ("nonsense", "not a device"),
    ("meta", "meta"),
    pytest.param("cuda", "CUDA is not available", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="CUDA is available here")),
])
def test_a_bad_device_is_one_line_naming_the_option(tmp_path, checkpoint, device, fragment):
    done = farms_viz_command("report", checkpoint, "--out", tmp_path / "r.html", "--device", device, *FAST)
    line = _one_line_error(done, "device", fragment)
    assert "bug" not in line
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_too_many_eigenvalues_are_refused_with_a_stride_to_use(tmp_path):
    save_file({"w.weight": torch.randn(256, 256)}, tmp_path / "m.safetensors")
    start = time.perf_counter()
    done = farms_viz_command("report", tmp_path / "m.safetensors", "--out", tmp_path / "r.html", "--method",
                             "farms", "--window", "8", "--stride", "1", "--max-eigenvalues", "100000",
                             "--no-progress")
    line = _one_line_error(done, "496,008 eigenvalues", "--stride", "100,000")
    assert time.perf_counter() - start < 60, line


# --- in-process: the same checks behind the library's writers -----------------------------------

def test_an_output_onto_the_file_a_linked_shard_points_to_is_refused(tmp_path, capsys):
    """Hugging Face cache layout: the shard in the snapshot is a link into blobs/."""
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshot"
    blobs.mkdir()
    snapshot.mkdir()
    save_file({"a.weight": torch.randn(32, 32)}, blobs / "abc123")
    (snapshot / "model.safetensors").symlink_to(blobs / "abc123")
    before = (blobs / "abc123").read_bytes()
    code = cli.main(["report", str(snapshot), "--out", str(blobs / "abc123"), *FAST])
    err = capsys.readouterr().err
    assert code == 1 and f"--out {blobs / 'abc123'} is the input" in err
    assert (blobs / "abc123").read_bytes() == before


def test_library_writers_refuse_a_device(tmp_path):
    import farms_viz
    from farms_viz.safe_output import OutputError
    from farms_viz.widget.export import save_csv, save_html

    target = _special(tmp_path, "null")
    analysis = farms_viz.analyze(torch.nn.Linear(32, 24), window=16, progress=False)
    for save in (save_html, save_csv):
        with pytest.raises(OutputError, match="is a character device, not a regular file"):
            save(analysis, target)
    assert stat.S_ISCHR(target.lstat().st_mode) and _names(tmp_path) == {"null"}
