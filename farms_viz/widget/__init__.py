"""The JupyterLab widget (:class:`Explorer`), its front-end contract, and the static HTML export.

Importing this package imports anywidget and ipywidgets; the engine never does.
"""

from .explorer import Explorer

__all__ = ["Explorer"]
