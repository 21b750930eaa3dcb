"""Progress reporting: one tqdm adapter for ``analyze``, ``sweep`` and the command line.

Every long-running function takes ``progress``: True (a tqdm bar), False (none), or a callback
``f(done, total, label)`` called after each unit of work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

ProgressCallback = Callable[[int, int, str], None]


class TqdmProgress:
    """A progress callback ``f(done, total, label)`` that draws a tqdm bar, created on first call.

    Parameters
    ----------
    desc, unit : the bar's description and unit.
    file : where to draw (default: tqdm's, stderr); ``tqdm.auto`` picks a notebook bar in Jupyter
        unless ``file`` is given.
    leave : keep the finished bar on screen.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = TqdmProgress(desc="demo", unit="layer", file=out, leave=True)
    >>> bar(1, 2, "fc1"); bar(2, 2, "fc2"); bar.close()
    >>> "2/2" in out.getvalue()
    True
    """

    def __init__(self, desc: str = "farms_viz", unit: str = "layer", file: IO[str] | None = None,
                 leave: bool = False) -> None:
        self.desc, self.unit, self.file, self.leave = desc, unit, file, leave
        self._bar: Any = None
        self._done = 0

    def __call__(self, done: int, total: int, label: str) -> None:
        if self._bar is None:
            if self.file is None:
                from tqdm.auto import tqdm
            else:
                from tqdm import tqdm
            self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=self.file, leave=self.leave)
        self._bar.set_postfix_str(label, refresh=False)
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        """Close the bar (if one was drawn)."""
        if self._bar is not None:
            self._bar.close()


@contextmanager
def progress_reporter(progress: bool | ProgressCallback, desc: str = "farms_viz", unit: str = "layer"
                      ) -> Iterator[ProgressCallback | None]:
    """The callback to call for ``progress`` (None for none); a bar it made is closed on exit.

    Examples
    --------
    >>> with progress_reporter(False) as report:
    ...     report is None
    True
    """
    if callable(progress):
        yield progress
    elif not progress:
        yield None
    else:
        bar = TqdmProgress(desc=desc, unit=unit)
        try:
            yield bar
        finally:
            bar.close()
