"""One set of parameter rules: AnalysisParams enforces them, the front end checks typed values with them."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from farms_viz.engine.params import PARAMETER_RULES, AnalysisParams
from farms_viz.widget.contract import slider_limits

JS = Path(__file__).resolve().parent.parent / "js"
TYPED = ["2.5", "0", "-5", "1", "2", "3", "2.0", "1e3", "abc", "", "0.1", "-0.5", "Infinity", "NaN", " 7 ", "1.5e1"]


def _accepted(name: str, value) -> bool:
    try:
        AnalysisParams(**{name: value})
    except ValueError:
        return False
    return True


def _as_sent(text: str):
    """What the front end would send for ``text`` (JSON turns 2.0 into 2), or None for no number."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else value


@pytest.mark.parametrize("name", sorted(PARAMETER_RULES))
def test_analysis_params_enforce_each_rule_at_its_boundary(name):
    rule = PARAMETER_RULES[name]
    if "min" in rule:
        assert _accepted(name, rule["min"]) and not _accepted(name, rule["min"] - 1)
    if "above" in rule:
        assert not _accepted(name, rule["above"]) and _accepted(name, rule["above"] + 0.05)
    if rule["integer"]:
        assert not _accepted(name, rule.get("min", 1) + 0.5) and _accepted(name, float(rule.get("min", 1) + 1))
    assert _accepted(name, None) == bool(rule.get("nullable"))
    assert slider_limits([64])["rules"][name] == rule  # what the front end receives


def test_the_front_end_accepts_exactly_what_analyze_accepts():
    script = (
        "import('./src/validate.js').then(({checkValue, DEFAULT_RULES}) => console.log(JSON.stringify({"
        "defaults: DEFAULT_RULES, checks: Object.fromEntries(Object.keys(DEFAULT_RULES).map((name) => [name, "
        f"{json.dumps(TYPED)}.map((text) => checkValue(name, text, DEFAULT_RULES[name]))]))}})))")
    result = subprocess.run(["node", "--input-type=module", "-e", script], cwd=JS, capture_output=True, text=True,
                            check=True, timeout=60)
    js = json.loads(result.stdout)
    assert js["defaults"] == PARAMETER_RULES  # the offline default equals the engine's rules
    for name, checks in js["checks"].items():
        for text, check in zip(TYPED, checks):
            sent = None if text.strip() == "" else _as_sent(text)
            expected = _accepted(name, sent) if (sent is not None or text.strip() == "") else False
            assert ("error" not in check) == expected, (name, text, check)
            if expected:
                assert check["value"] == sent
