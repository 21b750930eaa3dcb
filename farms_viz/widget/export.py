"""Static exports of an analysis: one offline HTML page, or the charts as a PNG image.

The HTML page inlines the widget's own front-end bundle (vega included) and the state the
widget would receive, then runs the same renderer against a small in-page model: the
report looks and behaves like the widget (tooltips, zoom, sortable table, clicking a layer
shows its spectrum) with no kernel and no network.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import pandas as pd

from .._version import __version__
from ..engine.analysis import Analysis
from ..safe_output import check_target, write_atomically, write_file
from .state import explorer_state

STATIC = Path(__file__).parent / "static"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="farms_viz {version}">
<title>{title}</title>
<style>
body {{ margin: 24px; background: #fff; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #111; color-scheme: dark; }} }}
{css}
</style>
</head>
<body>
<div id="farms-viz-root"><noscript>This report draws its charts with JavaScript; enable it to see them.</noscript></div>
<script type="application/json" id="farms-viz-state">{state}</script>
<script type="text/plain" id="farms-viz-bundle">{bundle}</script>
<script type="module">
const text = (id) => document.getElementById(id).textContent;
const url = URL.createObjectURL(new Blob([text("farms-viz-bundle")], {{ type: "text/javascript" }}));
const {{ default: widget, staticModel }} = await import(url);
const model = staticModel(JSON.parse(text("farms-viz-state")));
widget.render({{ model, el: document.getElementById("farms-viz-root") }});
document.body.dataset.farmsVizReady = "true";
</script>
</body>
</html>
"""


# JSON escapes for the characters that could end, comment out or re-open the <script> element
# holding the state (``<!--<script>`` in a layer name), or end a line in older JavaScript.
_SCRIPT_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}


def _script_safe(json_text: str) -> str:
    """JSON text that parses to the same value and holds no character HTML treats as markup.

    These characters occur only inside JSON strings, where ``\\uXXXX`` escapes mean the same.
    """
    return json_text.translate(_SCRIPT_ESCAPES)


# A spreadsheet runs a cell starting with one of these as a formula (``=HYPERLINK(...)``).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells that could start a formula begin with ``'`` (shown as text).

    Numbers are left alone (a negative number is not a formula).

    Examples
    --------
    >>> spreadsheet_safe(pd.DataFrame({"layer": ["=1+1", "fc"], "alpha": [-1.5, 2.0]})).values.tolist()
    [["'=1+1", -1.5], ['fc', 2.0]]
    """
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)
    return out


def write_csv(analysis: Analysis, file) -> None:
    """The rows of :meth:`Analysis.to_pandas`, spreadsheet-safe, as UTF-8 CSV into a binary file.

    Text cells are quoted, so a line break or tab inside a layer name stays inside its cell.
    """
    write_frame_csv(analysis.to_pandas(), file)


def write_frame_csv(frame: pd.DataFrame, file) -> None:
    """Any frame as spreadsheet-safe, quoted UTF-8 CSV into a binary file (see :func:`write_csv`)."""
    text = spreadsheet_safe(frame).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)
    file.write(text.encode("utf-8"))


def save_csv(analysis: Analysis, path: str | Path) -> Path:
    """Write :func:`write_csv` to ``path`` (atomically; never onto a device, folder or link).

    Examples
    --------
    >>> import tempfile, torch.nn as nn, farms_viz
    >>> out = save_csv(farms_viz.analyze(nn.Linear(64, 32), window=16, progress=False),
    ...                tempfile.mkdtemp() + "/layers.csv")
    >>> pd.read_csv(out).columns[:3].tolist()
    ['layer', 'method', 'kind']
    """
    target = check_target(path)
    write_atomically({target: lambda f: write_csv(analysis, f)})
    return target


def analysis_html(analysis: Analysis, selected_layer: str | None = None, spectrum_units: str = "normalised",
                  spectrum_methods: str = "both") -> str:
    """One self-contained, offline HTML page with every chart and the layer table.

    Parameters
    ----------
    analysis : the result of :func:`farms_viz.analyze` (both methods for the full picture).
    selected_layer : the layer whose spectrum is shown first (default: the largest
        FARMS/ESD alpha gap). Every layer's spectrum is embedded: clicking one shows it.
    spectrum_units, spectrum_methods : the spectrum's view at first (the page can switch them).

    Returns
    -------
    str : the HTML page (no network access needed to view it).

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> page = analysis_html(farms_viz.analyze(nn.Linear(64, 32), window=16, progress=False))
    >>> page.startswith("<!doctype html>")
    True
    """

    state = explorer_state(analysis, selected_layer, spectrum_units=spectrum_units,
                           spectrum_methods=spectrum_methods)
    p = analysis.params
    sampling = f"stride {p.stride}" if p.stride else f"k = {p.windows_per_dim}"
    state["status"] = f"window m = {p.window}, Q = {p.q:g}, {sampling}, {p.fit} fit · {state['status']}"
    bundle = (STATIC / "widget.js").read_text(encoding="utf-8")
    if "</script" in bundle.lower() or "<!--" in bundle:
        raise RuntimeError("the front-end bundle contains '</script' or '<!--' and cannot be inlined; rebuild it")
    return _PAGE.format(
        version=__version__, title=html.escape(f"farms_viz report: {len(analysis.layers)} layers"),
        css=(STATIC / "widget.css").read_text(encoding="utf-8"),
        state=_script_safe(json.dumps(state, allow_nan=False, separators=(",", ":"))),
        bundle=bundle)


def save_html(analysis: Analysis, path: str | Path, selected_layer: str | None = None, **view: str) -> Path:
    """Write :func:`analysis_html` to ``path`` (UTF-8, atomically; never onto a device, folder
    or link); returns the path. ``view``: spectrum_units, spectrum_methods, as for
    :func:`analysis_html`.

    Examples
    --------
    >>> import tempfile, torch.nn as nn, farms_viz
    >>> out = save_html(farms_viz.analyze(nn.Linear(64, 32), window=16, progress=False),
    ...                 tempfile.mkdtemp() + "/report.html")
    >>> out.suffix
    '.html'
    """
    return write_file(path, analysis_html(analysis, selected_layer, **view).encode("utf-8"))


def save_png(analysis: Analysis, path: str | Path, selected_layer: str | None = None, scale: float = 2.0,
             spectrum_units: str = "normalised", spectrum_methods: str = "both") -> Path:
    """Render every chart (alpha per layer, alpha vs aspect ratio, the spectrum) to one PNG.

    Parameters
    ----------
    analysis : the analysis to draw.
    path : where to write the image.
    selected_layer : the layer whose spectrum is drawn (default: the largest alpha gap).
    scale : pixel density (2 gives sharp text on high-DPI screens and in slides).
    spectrum_units, spectrum_methods : the spectrum's view (see :func:`~farms_viz.charts.spectrum_chart`).

    Returns
    -------
    pathlib.Path
    """
    import vl_convert

    from ..charts.report import report_chart

    spec = report_chart(analysis, selected_layer, units=spectrum_units, methods=spectrum_methods).to_dict(
        validate=False)
    check_target(path)  # before the rendering, which takes a while
    return write_file(path, vl_convert.vegalite_to_png(spec, scale=scale))
