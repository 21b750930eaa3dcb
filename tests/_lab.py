"""Drive a real JupyterLab in headless Chromium: start the server, write and run notebooks.

Shared by the widget's browser tests, the notebook tests and the latency benchmark.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@dataclass
class Lab:
    """A running JupyterLab: base URL (ends with /), token and the folder it serves."""

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen

    def notebook_url(self, name: str) -> str:
        return f"{self.url}lab/tree/{name}?token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root_dir: Path, timeout: float = 90.0) -> Lab:
    """Start ``jupyter lab`` in its own process group; wait until its API answers."""
    port, token = free_port(), secrets.token_hex(16)
    log = open(root_dir / "jupyter-lab.log", "wb")  # noqa: SIM115 (lives as long as the server)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ANYWIDGET_HMR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=root_dir)
    lab = Lab(f"http://127.0.0.1:{port}/", token, root_dir, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited: {(root_dir / 'jupyter-lab.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{lab.url}api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    return lab
        except OSError:
            time.sleep(0.3)
    stop_lab(lab)
    raise RuntimeError("jupyter lab did not answer within {timeout:.0f} s")


def stop_lab(lab: Lab) -> None:
    """Stop the server and every kernel it started (its whole process group)."""
    try:
        os.killpg(lab.process.pid, signal.SIGTERM)
        lab.process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(lab.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells with the python3 kernel."""
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {},
                   "outputs": [], "source": source} for i, source in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


def launch_browser(playwright):
    """Headless system Chromium (never a downloaded one)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def open_notebook(page, lab: Lab, name: str, timeout: float = 90_000) -> None:
    """Open a notebook and wait until its kernel is idle."""
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout)
    # the status bar reads "Python 3 (ipykernel) | Idle" once the kernel answers
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-StatusBar-TextItem, .jp-StatusBar-Item')]
                 .some((e) => /Python.*\\| Idle/.test(e.textContent))""", timeout=timeout)
    news = page.locator(".jp-toast-button", has_text="No")  # "get notified about Jupyter news?"
    if news.count():
        news.first.click()


def run_all_cells(page, timeout: float = 180_000) -> None:
    """Run > Run All Cells, then wait until no cell shows [*]."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
    page.wait_for_function(
        """() => { const p = [...document.querySelectorAll('.jp-InputPrompt')];
                   return p.length > 0 && p.every((e) => !e.textContent.includes('*'))
                          && p.every((e) => /\\[\\d+\\]/.test(e.textContent)); }""", timeout=timeout)


def chromium_available() -> bool:
    return CHROMIUM.exists() or shutil.which("chromium") == str(CHROMIUM)
