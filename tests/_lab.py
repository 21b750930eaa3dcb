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
    """A running Jupyter server: base URL (ends with /), token and the folder it serves.

    ``app`` is "lab" (JupyterLab) or "notebook" (Notebook 7).
    """

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen
    app: str = "lab"

    def notebook_url(self, name: str) -> str:
        page = "notebooks" if self.app == "notebook" else "lab/tree"
        return f"{self.url}{page}/{name}?token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root_dir: Path, timeout: float = 90.0, app: str = "lab") -> Lab:
    """Start ``jupyter lab`` (or ``jupyter notebook``, Notebook 7) in its own process group;
    wait until its API answers. Its user settings (theme...) live under ``root_dir``."""
    port, token = free_port(), secrets.token_hex(16)
    log = open(root_dir / f"jupyter-{app}.log", "wb")  # noqa: SIM115 (lives as long as the server)
    # the settings folder as an environment variable too: kernels inherit it, so code in a notebook
    # (farms_viz.charts.theme) reads the theme this JupyterLab shows
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JUPYTERLAB_SETTINGS_DIR": str(root_dir / ".user-settings")}
    env.pop("ANYWIDGET_HMR", None)
    app_class = "JupyterNotebookApp" if app == "notebook" else "LabApp"
    extra = ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"] if app == "lab" else []
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
         f"--{app_class}.user_settings_dir={root_dir / '.user-settings'}",
         f"--{app_class}.workspaces_dir={root_dir / '.workspaces'}", *extra],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=root_dir)
    lab = Lab(f"http://127.0.0.1:{port}/", token, root_dir, process, app)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter {app} exited: {(root_dir / f'jupyter-{app}.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{lab.url}api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    return lab
        except OSError:
            time.sleep(0.3)
    stop_lab(lab)
    raise RuntimeError(f"jupyter {app} did not answer within {timeout:.0f} s")


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


KERNEL_IDLE = {
    "lab": """() => [...document.querySelectorAll('.jp-StatusBar-TextItem, .jp-StatusBar-Item')]
                    .some((e) => /Python.*\\| Idle/.test(e.textContent))""",
    # Notebook 7: no status bar; the toolbar names the kernel and says "Kernel status: Idle"
    "notebook": """() => [...document.querySelectorAll('.jp-Toolbar-item')]
                           .some((e) => /Kernel status: Idle/.test(e.textContent))
                      && [...document.querySelectorAll('.jp-KernelName')].some((e) => /Python/.test(e.textContent))""",
}


def open_notebook(page, lab: Lab, name: str, timeout: float = 90_000) -> None:
    """Open a notebook and wait until its kernel is idle.

    The saved workspaces go first: JupyterLab would reopen the notebooks of earlier tests beside
    this one, in hidden tabs whose cells and outputs the selectors would find first.
    """
    forget_workspaces(lab)
    page.goto(lab.notebook_url(name))
    # a cell of the notebook shown (JupyterLab may reopen earlier notebooks in hidden tabs)
    page.wait_for_selector(".jp-Notebook .jp-Cell >> visible=true", timeout=timeout)
    # JupyterLab's status bar reads "Python 3 (ipykernel) | Idle" once the kernel answers
    page.wait_for_function(KERNEL_IDLE[lab.app], timeout=timeout)
    news = page.locator(".jp-toast-button", has_text="No")  # "get notified about Jupyter news?"
    if news.count():
        news.first.click()


def run_all_cells(page, timeout: float = 180_000) -> None:
    """Run > Run All Cells, then wait until no cell of the notebook shown shows [*].

    Only the visible notebook counts: JupyterLab reopens the notebooks of earlier tests in
    background tabs (their workspace), whose cells never run.
    """
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
    page.wait_for_function(
        """() => { const p = [...document.querySelectorAll('.jp-InputPrompt')].filter((e) => e.offsetParent !== null);
                   return p.length > 0 && p.every((e) => !e.textContent.includes('*'))
                          && p.every((e) => /\\[\\d+\\]/.test(e.textContent)); }""", timeout=timeout)


def chromium_available() -> bool:
    return CHROMIUM.exists() or shutil.which("chromium") == str(CHROMIUM)


def lab_api(lab: Lab, method: str, path: str):
    """One call of the server's REST API (``path`` without the leading /); the JSON answer or None."""
    request = urllib.request.Request(f"{lab.url}{path}?token={lab.token}", method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else None


def forget_workspaces(lab: Lab) -> None:
    """Delete the saved workspaces: JupyterLab would reopen earlier notebooks beside the next one."""
    for workspace in lab_api(lab, "GET", "lab/api/workspaces").get("workspaces", {}).get("ids", []):
        lab_api(lab, "DELETE", f"lab/api/workspaces/{workspace}")


def stop_kernels(lab: Lab, notebook: str | None = None) -> None:
    """Shut down the kernel of ``notebook`` (every kernel when None)."""
    for session in lab_api(lab, "GET", "api/sessions"):
        if notebook is None or session.get("path", "").endswith(notebook):
            lab_api(lab, "DELETE", f"api/sessions/{session['id']}")
