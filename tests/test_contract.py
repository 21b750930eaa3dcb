"""The Python/JS contract of the Explorer, and the package's layering, checked so they cannot drift."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import anywidget
import pytest

from farms_viz.charts.style import METHOD_LABELS
from farms_viz.widget import Explorer, contract

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "farms_viz"
JS = REPO / "js"


def _js_contract() -> dict:
    script = ("import('./src/contract.js').then((c) => console.log(JSON.stringify({synced: c.SYNCED_STATE, "
              "static: c.STATIC_STATE, messages: c.MESSAGES, panels: c.PANELS, tabs: c.TABS, "
              "sources: c.ALLOCATION_SOURCES, labels: c.METHOD_LABELS, units: c.SPECTRUM_UNITS, "
              "shown: c.SPECTRUM_METHODS})))")
    result = subprocess.run(["node", "--input-type=module", "-e", script], cwd=JS, capture_output=True, text=True,
                            check=True, timeout=60)
    return json.loads(result.stdout)


def _explorer_synced_traits() -> set[str]:
    return set(Explorer.class_traits(sync=True)) - set(anywidget.AnyWidget.class_traits(sync=True))


def test_the_explorer_syncs_exactly_the_contract():
    assert _explorer_synced_traits() == set(contract.SYNCED_STATE), (
        "a synced trait of Explorer is missing from farms_viz/widget/contract.py, or the reverse")


def test_the_front_end_states_the_same_contract():
    js = _js_contract()
    assert js["synced"] == list(contract.SYNCED_STATE)
    assert js["static"] == list(contract.STATIC_STATE)
    assert js["messages"] == list(contract.MESSAGES)
    assert js["panels"] == list(contract.PANELS)
    assert js["tabs"] == list(contract.TABS)
    assert js["sources"] == list(contract.ALLOCATION_SOURCES)
    assert js["labels"] == METHOD_LABELS
    assert js["units"] == list(contract.SPECTRUM_UNITS) and js["shown"] == list(contract.SPECTRUM_METHODS)


def test_the_js_typedef_documents_every_state_name():
    source = (JS / "src" / "contract.js").read_text(encoding="utf-8")
    documented = set(re.findall(r"@property \{[^}]*\} \[?(\w+)", source.split("@typedef {Object} Limits")[0]))
    assert documented == set(contract.SYNCED_STATE) | set(contract.STATIC_STATE)


def test_the_front_end_reads_and_writes_only_contract_state():
    used = set()
    messages = set()
    for path in (JS / "src").glob("*.js"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""model\.(?:get|set)\(\s*["'](\w+)["']""", text))
        used |= set(re.findall(r"""change:(\w+)""", text))
        messages |= set(re.findall(r"""send\(\s*\{\s*type:\s*["'](\w+)["']""", text))
    assert used, "no model access found: the pattern above no longer matches the front end's code"
    unknown = used - set(contract.SYNCED_STATE) - set(contract.STATIC_STATE)
    assert not unknown, f"the front end uses state the contract does not list: {sorted(unknown)}"
    assert messages == set(contract.MESSAGES)


def test_the_explorer_handles_exactly_the_contract_messages(monkeypatch):
    import torch.nn as nn

    explorer = Explorer(nn.Linear(64, 32), window=16)
    explorer.wait()
    called = []
    monkeypatch.setattr(explorer, "refresh", lambda: called.append("refresh"))
    monkeypatch.setattr(explorer, "save_allocation", lambda: called.append("save_allocation"))
    monkeypatch.setattr(explorer, "run_sweep", lambda: called.append("run_sweep"))
    monkeypatch.setattr(explorer, "stop", lambda: called.append("stop"))
    monkeypatch.setattr(explorer, "run_anyway", lambda: called.append("run_anyway"))
    monkeypatch.setattr(explorer, "run_tune", lambda: called.append("run_tune"))
    monkeypatch.setattr(explorer, "stop_tune", lambda: called.append("stop_tune"))
    monkeypatch.setattr(explorer, "apply_best_tune", lambda *args, **kwargs: called.append("apply_best_tune"))
    for name in contract.MESSAGES:
        explorer._on_custom_message(explorer, {"type": name}, [])
    assert called == list(contract.MESSAGES)
    explorer.close()


# ----- layering ---------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


_MODULES = {_module_name(p) for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """farms_viz modules imported anywhere in ``path`` (function-level imports included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("farms_viz")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("farms_viz"):
                continue
            submodules = {f"{target}.{a.name}" for a in node.names} & _MODULES  # `from pkg import submodule`
            out |= submodules
            # `from . import sibling` needs the package only as the importer's own (already running) parent
            if not (len(submodules) == len(node.names) and name.startswith(target + ".")):
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycles_among_the_package_modules():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_engine_and_decisions_never_import_the_chart_or_widget_stack():
    graph = _graph()
    for name, targets in graph.items():
        if name.startswith(("farms_viz.engine", "farms_viz.decisions", "farms_viz.sources")):
            bad = {t for t in targets if t.startswith(("farms_viz.charts", "farms_viz.widget", "farms_viz.cli"))}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_the_engine_runs_without_the_widget_stack():
    code = """
import sys
import torch.nn as nn
import farms_viz
result = farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 64)), window=16, progress=False)
farms_viz.allocate.sparsity_from_analysis(result, 0.5, 0.2)
farms_viz.prune.magnitude(nn.Linear(64, 32), {"(model)": 0.5})
farms_viz.sweep(nn.Linear(64, 32), windows=[8, 16], progress=False)
loaded = sorted(m for m in ("anywidget", "ipywidgets", "altair", "vl_convert", "traitlets") if m in sys.modules)
assert not loaded, loaded
print("ok", len(result.layers))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0 and result.stdout.startswith("ok 2"), result.stderr[-3000:]
