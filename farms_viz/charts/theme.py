"""An altair theme for notebook charts that follows JupyterLab's light or dark theme.

Notebook charts drawn in the kernel (``alt.renderers.enable("svg")``) are pictures: they cannot
follow the page's colours the way the Explorer does. :func:`use_theme` registers and enables the
``farms_viz`` altair theme: a transparent background, text and grid colours for the theme
JupyterLab shows (read from its user settings: ``"auto"``), or for either (``"neutral"``: mid-grey
text that reads on white and on black), and a default category palette without the method
colours, so orange and blue mean "standard ESD" and "FARMS" and nothing else.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import altair as alt

from .style import OTHER_COLORS

THEME = "farms_viz"
MODES = ("auto", "light", "dark", "neutral")
# text, muted text, grid, axis line
_INKS = {
    "light": ("#1f1f1f", "#616161", "#e0e0e0", "#9e9e9e"),
    "dark": ("#e6e6e6", "#b0b0b0", "#3a3a3a", "#8a8a8a"),
    "neutral": ("#7d7d7d", "#7d7d7d", "#8080804d", "#8a8a8a"),  # ~4:1 on white and on #111
}
_THEMES_SETTINGS = Path("@jupyterlab") / "apputils-extension" / "themes.jupyterlab-settings"


def _settings_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("JUPYTERLAB_SETTINGS_DIR"):
        dirs.append(Path(os.environ["JUPYTERLAB_SETTINGS_DIR"]))
    try:
        from jupyter_core.paths import jupyter_config_dir
    except ImportError:  # no Jupyter here: nothing to read
        return dirs
    return dirs + [Path(jupyter_config_dir()) / "lab" / "user-settings"]


def jupyterlab_theme(settings_dirs: list[Path] | None = None) -> str | None:
    """"light" or "dark" as JupyterLab's user settings say; None when they say nothing.

    JupyterLab writes the theme chosen in Settings > Theme to ``themes.jupyterlab-settings``
    (JSON with comments) under its user-settings folder (``$JUPYTERLAB_SETTINGS_DIR``, else
    ``~/.jupyter/lab/user-settings``); a theme whose name says "Dark" is dark.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> jupyterlab_theme([folder]) is None
    True
    >>> (folder / _THEMES_SETTINGS).parent.mkdir(parents=True)
    >>> _ = (folder / _THEMES_SETTINGS).write_text('{\\n  // chosen in the menu\\n  "theme": "JupyterLab Dark"\\n}')
    >>> jupyterlab_theme([folder])
    'dark'
    """
    for folder in settings_dirs if settings_dirs is not None else _settings_dirs():
        path = folder / _THEMES_SETTINGS
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        text = re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)  # JSON with line comments
        try:
            name = json.loads(text).get("theme")
        except (ValueError, AttributeError):
            continue
        if isinstance(name, str):
            return "dark" if "dark" in name.lower() else "light"
    return None


def theme_config(mode: str = "neutral") -> dict:
    """The altair/Vega-Lite config of the ``farms_viz`` theme for ``mode`` ("light", "dark", "neutral").

    Examples
    --------
    >>> theme_config("dark")["config"]["axis"]["labelColor"]
    '#b0b0b0'
    """
    if mode not in _INKS:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _INKS))}; got {mode!r}")
    text, muted, grid, domain = _INKS[mode]
    axis = {"labelColor": muted, "titleColor": text, "gridColor": grid, "domainColor": domain, "tickColor": domain}
    return {"config": {
        "background": "transparent",
        "view": {"stroke": grid},
        "axis": axis,
        "legend": {"labelColor": muted, "titleColor": text},
        "header": {"labelColor": text, "titleColor": text},
        "title": {"color": text, "subtitleColor": muted},
        "text": {"color": text},
        # a single series is no method: green, never the methods' orange or blue
        "mark": {"color": OTHER_COLORS[0]},
        "range": {"category": list(OTHER_COLORS)},
    }}


def use_theme(mode: str = "auto") -> str:
    """Register and enable the ``farms_viz`` altair theme; returns the mode used.

    Parameters
    ----------
    mode : "auto" (JupyterLab's theme from its user settings, "neutral" when they say nothing),
        "light", "dark" or "neutral" (grey text that reads on either background).

    Examples
    --------
    >>> use_theme("dark")
    'dark'
    >>> alt.theme.active
    'farms_viz'
    >>> alt.theme.enable("default").name  # back to altair's own
    'default'
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    resolved = (jupyterlab_theme() or "neutral") if mode == "auto" else mode
    config = theme_config(resolved)
    alt.theme.register(THEME, enable=True)(lambda: alt.theme.ThemeConfig(**config))
    return resolved
