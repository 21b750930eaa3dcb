"""Writing output files without destroying anything: the report, its CSV, exported pages.

- A target is checked first: never an input (the checkpoint, a file inside the checkpoint's
  folder), never a folder, device, FIFO, socket or symbolic link.
- Contents go to a temporary file created exclusively (``tempfile.mkstemp``: ``O_EXCL``, a
  random name, never through a link) in the target's folder, then replace the target in one
  rename: a reader sees the old file or the new one, never half of one.
- Temporary files are removed on any error, on Ctrl+C and, inside :func:`signals_as_exceptions`
  (the command line), on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


class OutputError(ValueError):
    """An output path that must not be written; the message says what to do instead."""


class Terminated(BaseException):
    """SIGTERM arrived (raised only inside :func:`signals_as_exceptions`)."""


_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_target(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), *, option: str = "output"
                 ) -> Path:
    """The path to write, after refusing anything that writing there would destroy.

    Parameters
    ----------
    path : the file to create or replace.
    inputs : files and folders being read (a checkpoint, its shards, its folder): the target
        may not be one of them, a link to one, or inside one of the folders.
    option : how the user gave the path (e.g. ``"--out"``), for the message.

    Returns
    -------
    pathlib.Path : ``path`` with ``~`` expanded.

    Raises
    ------
    OutputError
        The target is an input or inside an input folder, is a folder, device, FIFO, socket or
        symbolic link, or its folder does not exist.

    Examples
    --------
    >>> try:
    ...     check_target("/dev/null", option="--out")
    ... except OutputError as error:
    ...     print(error)
    --out /dev/null is a character device, not a regular file: refusing to replace it; give a file name, ...
    """
    target = Path(path).expanduser()
    if target.is_symlink():
        raise OutputError(f"{option} {target} is a symbolic link (to {os.readlink(target)}): refusing to write "
                          "through it or replace it; give the real file's path or another name")
    if target.exists():
        mode = target.stat().st_mode
        if stat.S_ISDIR(mode):
            raise OutputError(f"{option} {target} is a folder; give a file name, e.g. {target / 'report.html'}")
        if not stat.S_ISREG(mode):
            raise OutputError(f"{option} {target} is {_kind(mode)}, not a regular file: refusing to replace it; "
                              "give a file name, e.g. report.html")
    if not target.parent.is_dir():
        raise OutputError(f"output folder does not exist: {target.parent}; create it first")
    resolved = target.parent.resolve() / target.name
    for source in inputs:
        source = Path(source).expanduser()
        real = source.resolve()
        if source.is_dir() and _inside(resolved, real):
            raise OutputError(f"{option} {target} is inside the input folder {source}: refusing to write into a "
                              "checkpoint's folder; write the report elsewhere")
        if resolved == real or (target.exists() and source.exists() and os.path.samefile(target, source)):
            raise OutputError(f"{option} {target} is the input {source}: refusing to overwrite it; write the "
                              "report elsewhere, e.g. report.html")
    return target


# --- signals -----------------------------------------------------------------------------

class _SignalState(threading.local):
    deferring = 0
    pending: BaseException | None = None


_STATE = _SignalState()


def _raise_for(signum: int, frame) -> None:
    error: BaseException = KeyboardInterrupt() if signum == signal.SIGINT else Terminated()
    if threading.current_thread() is threading.main_thread() and _STATE.deferring:
        _STATE.pending = error  # inside a few statements that must finish: raised right after them
        return
    raise error


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt and SIGTERM raises :class:`Terminated` in the main thread,
    so ``finally`` blocks (temporary files removed) run on both. Restored on exit; does nothing
    outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_for) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    _STATE.deferring += 1
    try:
        yield
    finally:
        _STATE.deferring -= 1
        pending, _STATE.pending = _STATE.pending, None
        if pending is not None and not _STATE.deferring:
            raise pending


# --- writing -----------------------------------------------------------------------------

def _umask() -> int:
    try:
        with open("/proc/self/status") as status:  # Linux: read it without changing it
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(writers: Mapping[Path, Callable[[BinaryIO], object]]) -> None:
    """Write every target through a temporary file beside it, then put them all in place.

    Parameters
    ----------
    writers : target path -> a function writing its bytes to the file object it is given.
        Targets should have passed :func:`check_target`; they are checked again (regular
        file or absent, no link) right before they are replaced.

    Nothing is replaced until every temporary file is complete; on any error or interrupt
    the temporary files are removed and the targets are untouched.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "a.txt"
    >>> write_atomically({out: lambda f: f.write(b"hello")})
    >>> out.read_bytes(), sorted(p.name for p in out.parent.iterdir())
    (b'hello', ['a.txt'])
    """
    temps: list[tuple[str, Path]] = []
    mode = 0o666 & ~_umask()
    try:
        for target, write in writers.items():
            with _signals_deferred():  # no interrupt between creating the file and recording it
                handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
                temps.append((temp, target))
            with os.fdopen(handle, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(temp, stat.S_IMODE(target.stat().st_mode) if target.is_file() else mode)
        for _, target in temps:
            check_target(target)  # still not a link, device or folder
        for temp, target in temps:
            os.replace(temp, target)
    finally:
        for temp, _ in temps:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass


def write_file(path: str | os.PathLike, data: bytes) -> Path:
    """:func:`check_target` then :func:`write_atomically` for one file of ``data``; returns its path.

    Examples
    --------
    >>> import tempfile
    >>> write_file(Path(tempfile.mkdtemp()) / "page.html", b"<p>hi</p>").read_bytes()
    b'<p>hi</p>'
    """
    target = check_target(path)
    write_atomically({target: lambda f: f.write(data)})
    return target
