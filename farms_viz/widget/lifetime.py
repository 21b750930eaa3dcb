"""Widgets that go away when nothing needs them: no reference in code, no view on screen.

ipywidgets keeps every widget it ever created: its registry holds it, and so does its comm's
message handler; anywidget adds a handler per widget to the class's ``_esm``/``_css`` file
watchers. Re-running ``explorer = Explorer(model)`` then leaves the old Explorer, its thread and
its model alive for the life of the kernel. Here a widget is held strongly only while
it may be on screen (from its display until the front end says its last view is gone: ipywidgets'
``_view_count``), weakly otherwise. When it is collected a finalizer closes its comm (the front
end drops the model) and calls ``release`` (the Explorer stops its worker thread).
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable
from typing import Any

from ipywidgets.widgets import widget as ipywidgets_widget

log = logging.getLogger(__name__)


class _WeakHandler:
    """A comm message handler that calls the widget's own without keeping the widget alive."""

    def __init__(self, method: Callable[[Any], Any]) -> None:
        self._method = weakref.WeakMethod(method)

    def __call__(self, message: Any) -> None:
        method = self._method()
        if method is not None:
            method(message)


def hold_weakly(widget: Any, release: Callable[[], None]) -> weakref.finalize:
    """Let ``widget`` be collected once nothing references it and no view of it is on screen.

    Parameters
    ----------
    widget : an ipywidgets widget whose comm is open.
    release : called (with no argument, so it must not reference the widget) when the widget
        is collected, after its comm is closed.

    Returns
    -------
    The finalizer; ``detach()`` it when the widget is closed explicitly.
    """
    comm = widget.comm
    model_id = widget.model_id
    comm.on_msg(_WeakHandler(widget._handle_msg))
    _registry().pop(model_id, None)
    _watch_files_weakly(widget)
    widget.observe(_follow_views, names=["_view_count"])
    widget._view_count = 0  # the front end now reports each view it adds or removes
    return weakref.finalize(widget, _collected, comm, model_id, release)


def on_screen(widget: Any) -> None:
    """The widget is being displayed: hold it until the front end reports that its views are gone."""
    if widget.comm is not None:
        _registry()[widget.model_id] = widget


def _follow_views(change: dict) -> None:
    widget = change["owner"]
    if widget.comm is None:
        return
    if change["new"]:
        _registry()[widget.model_id] = widget
    else:
        _registry().pop(widget.model_id, None)


def _watch_files_weakly(widget: Any) -> None:
    """anywidget's handler for a changed ``_esm``/``_css`` file (hot reload) holds the widget: swap it
    for a bound-method partial, which psygnal holds weakly and drops with the widget."""
    for key in ("_esm", "_css"):
        # the class the user wrote holds the watched file; anywidget's per-instance subclass, a trait
        owners = [cls.__dict__[key] for cls in type(widget).__mro__ if key in cls.__dict__]
        signal = next((o.changed for o in owners if hasattr(o, "changed")), None)
        if signal is None:
            continue
        try:
            for slot in list(getattr(signal, "_slots", ())):
                handler = slot.dereference()
                cells = getattr(handler, "__closure__", None) or ()
                defaults = getattr(handler, "__defaults__", None) or ()
                if any(getattr(c, "cell_contents", None) is widget for c in cells) or widget in defaults:
                    signal.disconnect(handler)
                    signal.connect(functools.partial(widget.set_trait, key))
        except Exception:  # another anywidget version: the widget then lives as long as the kernel
            log.debug("could not make anywidget's file watcher weak", exc_info=True)


def _registry() -> dict:
    return ipywidgets_widget._instances


def _collected(comm: Any, model_id: str, release: Callable[[], None]) -> None:
    try:
        release()
    finally:
        _registry().pop(model_id, None)
        try:
            comm.close()
        except Exception:  # the kernel may be shutting down
            log.debug("closing the comm of a collected widget failed", exc_info=True)
