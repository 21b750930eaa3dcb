"""Ctrl-C meant for a training loop leaves a Monitor's analysis process alone.

Jupyter's Interrupt sends SIGINT to the kernel's whole process group, the Monitor's child
included; a child that died of it left the Monitor unable to record another step.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from torch import nn

from farms_viz import Monitor

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX signals")


def test_sigint_reaches_the_analysis_process_and_the_monitor_keeps_recording():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    handler = signal.getsignal(signal.SIGINT)
    with Monitor(model, window=16, windows_per_dim=3, when_busy="wait", background="process") as monitor:
        worker = monitor._worker
        worker.start()  # no waiting: the signals below arrive while the child still imports torch
        assert signal.getsignal(signal.SIGINT) is handler  # the parent's handler is back
        pid = worker._process.pid
        deadline = time.monotonic() + 120
        while not worker._ready.is_set():
            os.kill(pid, signal.SIGINT)
            assert time.monotonic() < deadline, "the analysis process never became ready"
            time.sleep(0.05)
        monitor.step(0)
        monitor.wait()
        os.kill(pid, signal.SIGINT)  # now while it waits for work, as after an interrupted training cell
        time.sleep(0.2)
        with torch.no_grad():
            model[0].weight.mul_(2.0)
        monitor.step(1)
        monitor.wait()
        assert worker._process.is_alive() and worker._process.pid == pid
        assert monitor.steps == [0, 1] and monitor.errors.empty
        alphas = monitor.history.pivot_table(index=["layer", "method"], columns="step", values="alpha")
        assert (alphas[0] != alphas[1]).any()  # step 1 was analysed from the changed weights


def test_a_script_without_a_main_guard_fails_fast_with_a_hint(tmp_path):
    """The child imports the main module (spawn); a script that trains at module level makes the
    child exit at once: starting it must say so at once, not time out after two minutes."""
    import subprocess
    import sys

    script = tmp_path / "train.py"
    script.write_text(
        "import torch\n"
        "from farms_viz import Monitor\n"
        "model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 32))\n"
        "monitor = Monitor(model, window=16, windows_per_dim=3)\n"
        "monitor._worker.start(wait=True, timeout=100)\n")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=200, cwd=tmp_path)
    assert out.returncode != 0
    assert "if __name__ == '__main__':" in out.stderr
    assert "RuntimeError: the Monitor's analysis process stopped" in out.stderr
    assert time.perf_counter() - started < 60  # not the 100 s timeout
