"""The front end as shipped: the committed bundle is current, offline, linted, type-checked, tested.

These run the JS tool chain (node, npm) the README's test command installs; they fail, never
skip, when it is missing, because a stale or broken bundle is what users would load.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from farms_viz.widget.explorer import STATIC

REPO = Path(__file__).resolve().parent.parent
JS = REPO / "js"
BUNDLE = ("widget.js", "widget.css")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """js/node_modules, installed with `npm ci` if absent (the test setup installs it)."""
    assert shutil.which("node") and shutil.which("npm"), "node and npm are needed: run bash scripts/setup.sh --test"
    if not (JS / "node_modules" / "esbuild").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=JS, check=True, timeout=600)
    return JS / "node_modules"


def test_the_bundle_loads_no_url():
    source = (STATIC / "widget.js").read_text(encoding="utf-8")
    css = (STATIC / "widget.css").read_text(encoding="utf-8")
    assert not re.search(r"""\bimport\s*\(?\s*["'`](https?:)?//""", source)
    assert not re.search(r"""\bfrom\s*["'`](https?:)?//""", source)
    assert not re.search(r"esm\.sh|cdn\.jsdelivr|unpkg\.com|skypack", source)
    assert "url(" not in css and "@import" not in css


def test_the_committed_bundle_is_built_from_the_sources(node_modules, tmp_path):
    """A fresh build into a temporary folder equals the bundle in the package; nothing is overwritten."""
    before = {name: (STATIC / name).read_bytes() for name in BUNDLE}
    subprocess.run(["node", "build.mjs", f"--outdir={tmp_path}"], cwd=JS, check=True, timeout=300)
    stale = [name for name in BUNDLE if (tmp_path / name).read_bytes() != before[name]]
    assert not stale, (f"the bundle farms_viz/widget/static/{', '.join(stale)} is stale: js/src changed without a "
                       "rebuild. Run `npm run build` in js/ and commit the bundle.")
    assert {name: (STATIC / name).read_bytes() for name in BUNDLE} == before


def test_the_front_end_is_linted_and_type_checked(node_modules):
    result = subprocess.run(["npm", "run", "--silent", "lint"], cwd=JS, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_front_end_module_against_a_fake_model(node_modules):
    result = subprocess.run(["node", "--test", "test/"], cwd=JS, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_node_is_the_pinned_version():
    pinned = (JS / ".nvmrc").read_text().strip()
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert version.lstrip("v").split(".")[0] == pinned, f"node {version}; the front end is built with node {pinned}"


@pytest.mark.slow
def test_the_wheel_ships_the_front_end(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(REPO),
                    "-w", str(tmp_path)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("farms_viz-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"farms_viz/widget/static/{name}" for name in BUNDLE} <= set(names)
    assert "farms_viz/py.typed" in names
