"""The ``farms-viz`` command: an offline HTML report of a checkpoint, or JupyterLab on the notebooks.

    farms-viz report MODEL --out report.html [--window 100 --q 1 --windows-per-dim 10 ...]
    farms-viz report ckpt-1000 ckpt-2000 ... --out run.html    (alpha over the checkpoints)
    farms-viz lab [--dry-run]

Every failure ends with one line on stderr (``farms-viz: error: ...``) and a non-zero exit
code, never a traceback, and leaves no partial output behind (Ctrl+C and SIGTERM included).
Outputs never replace an input, a device, a FIFO or a link.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from .engine import params as _params
from .engine.progress import TqdmProgress
from .safe_output import Terminated, check_target, signals_as_exceptions, write_atomically

PROG = "farms-viz"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM


class CommandError(Exception):
    """A bad input to the command line, with a message that says what to do."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``farms-viz`` command line.

    Parameters
    ----------
    argv : the arguments after the program name; None reads ``sys.argv``.

    Returns
    -------
    int : the exit code (0 on success, 1 on an error, 2 on a usage error, 130 if interrupted,
        143 on SIGTERM).

    Examples
    --------
    >>> main(["report", "demo", "--out", "report.html"])    # doctest: +SKIP
    0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse has printed usage and the error already
        return int(stop.code or 0)
    try:
        with signals_as_exceptions():
            return args.run(args)
    except KeyboardInterrupt:
        _say("interrupted; no output written")
        return EXIT_INTERRUPTED
    except Terminated:
        _say("terminated; no output written")
        return EXIT_TERMINATED
    except Exception as error:  # the command's contract: one line, no traceback
        if os.environ.get("FARMS_VIZ_DEBUG"):
            raise
        _say(f"error: {_one_line(error)}")
        return EXIT_ERROR


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _one_line(error: BaseException) -> str:
    from .engine.analysis import NothingToAnalyzeError
    from .engine.windows import TooManyEigenvaluesError
    from .sources.checkpoints import CheckpointError

    if isinstance(error, TooManyEigenvaluesError):  # name the command's options, not analyze's
        return error.describe("--stride", "--windows-per-dim", "--max-eigenvalues")
    text = " ".join(str(error).split())
    if isinstance(error, (CommandError, CheckpointError, NothingToAnalyzeError, ValueError)):
        return text
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.strerror or text}: {error.filename}"
    return (f"{type(error).__name__}: {text} (this looks like a bug in farms_viz; set FARMS_VIZ_DEBUG=1 "
            "for the traceback and report it)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="FARMS and standard-ESD spectra of a model's weights, without a notebook.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{report,lab}")

    report = commands.add_parser(
        "report", help="write an offline HTML report and a CSV of every layer's spectra",
        description="Analyse every weight matrix of MODEL and write an offline HTML report (charts "
                    "and table, no network needed to view it) and a CSV of the same rows next to it.")
    report.add_argument("model", metavar="MODEL", nargs="+",
                        help="a .safetensors file, a folder of safetensors shards (Hugging Face layout), "
                             "a torch state-dict file (.pt/.pth/.bin), or 'demo' (random layers of many "
                             "shapes; 'demo:heavy-tailed' for Student-t entries). Several checkpoints "
                             "(ckpt-1000 ckpt-2000 ...) give alpha over training: the step is each name's "
                             "trailing number, else the order given")
    report.add_argument("--out", required=True, type=Path, metavar="PATH",
                        help="the HTML report to write (e.g. report.html)")
    report.add_argument("--csv", type=Path, metavar="PATH",
                        help="the CSV to write (default: the report's path with .csv)")
    report.add_argument("--method", choices=_params.METHODS, default=_params.DEFAULT_METHOD,
                        help=f"standard ESD, FARMS, or both (default: {_params.DEFAULT_METHOD})")
    report.add_argument("--window", type=int, default=_params.DEFAULT_WINDOW, metavar="M",
                        help=f"rows of a FARMS window (default: {_params.DEFAULT_WINDOW})")
    report.add_argument("--q", type=float, default=_params.DEFAULT_Q, metavar="Q",
                        help=f"aspect ratio of every window, columns per row (default: {_params.DEFAULT_Q:g})")
    report.add_argument("--windows-per-dim", type=int, default=_params.DEFAULT_WINDOWS_PER_DIM, metavar="K",
                        help=f"windows along each dimension (default: {_params.DEFAULT_WINDOWS_PER_DIM})")
    report.add_argument("--stride", type=int, default=None, metavar="S",
                        help="explicit window stride in entries, instead of --windows-per-dim")
    report.add_argument("--fit", choices=_params.FITS, default=_params.DEFAULT_FIT,
                        help=f"power-law fit (default: {_params.DEFAULT_FIT})")
    report.add_argument("--conv-norm", type=float, default=_params.DEFAULT_CONV_NORM, metavar="C",
                        help="factor for the eigenvalues of convolution slices "
                             f"(default: {_params.DEFAULT_CONV_NORM:g}, as WeightWatcher)")
    report.add_argument("--include", action="append", metavar="GLOB",
                        help="analyse only layers whose name matches (repeatable), e.g. 'model.layers.*.mlp.*'")
    report.add_argument("--exclude", action="append", metavar="GLOB",
                        help="skip layers whose name matches (repeatable)")
    report.add_argument("--device", default=None, help="compute device, e.g. cuda (default: cpu)")
    report.add_argument("--max-eigenvalues", type=int, default=None, metavar="N",
                        help="refuse settings whose FARMS windows pool more than N eigenvalues on one layer "
                             "(default: farms_viz.engine.windows.MAX_POOLED_EIGENVALUES, 20 million: 160 MB)")
    report.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    report.set_defaults(run=_report)

    lab = commands.add_parser("lab", help="open JupyterLab on the bundled notebooks",
                              description="Start JupyterLab on farms_viz's notebooks. Arguments after "
                                          "-- go to JupyterLab.")
    lab.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    lab.add_argument("jupyter_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    lab.set_defaults(run=_lab)
    return parser


# --- report ----------------------------------------------------------------------------

def _report(args: argparse.Namespace) -> int:
    from . import analyze
    from .engine.analysis import NothingToAnalyzeError
    from .sources.demo import DEMOS

    params = _params.AnalysisParams(method=args.method, window=args.window, q=args.q,
                                    windows_per_dim=args.windows_per_dim, stride=args.stride, fit=args.fit,
                                    conv_norm=args.conv_norm)
    _params.check_device(args.device)  # before a long load
    inputs = [Path(name).expanduser() for name in args.model if name not in DEMOS]
    _outputs(args.out, args.csv, inputs)
    if len(args.model) > 1:
        return _report_series(args, params, inputs)
    start = time.perf_counter()
    bar = TqdmProgress(desc=PROG, unit="layer", file=sys.stderr, leave=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _load_model(args.model[0])
        # again with every file read: a shard may be a link to a file elsewhere
        html_path, csv_path = _outputs(args.out, args.csv, inputs + list(getattr(model, "files", ())))
        try:
            analysis = analyze(model, **params.as_dict(), include=args.include, exclude=args.exclude,
                               device=args.device, progress=False if args.no_progress else bar,
                               max_eigenvalues=args.max_eigenvalues)
        except NothingToAnalyzeError as error:
            raise CommandError(_nothing_message(model, args.include, args.exclude, error)) from None
        finally:
            bar.close()
    for warning in _unique(caught):
        _say(f"warning: {' '.join(str(warning.message).split())}")
    _write_atomically(analysis, html_path, csv_path)
    skipped = f", {len(analysis.skipped)} skipped (listed in the report)" if analysis.skipped else ""
    _say(f"{len(analysis.layers)} layers analysed{skipped} in {time.perf_counter() - start:.1f} s; "
         f"wrote {html_path} and {csv_path}")
    return 0


def _outputs(out: Path, csv: Path | None, inputs: list[Path]) -> tuple[Path, Path]:
    """The report's and the CSV's paths, refused if writing them could destroy something."""
    html_path = out.expanduser()
    csv_path = (csv.expanduser() if csv is not None else html_path.with_suffix(".csv"))
    if html_path.resolve() == csv_path.resolve():
        raise CommandError(f"--out and the CSV would be the same file ({html_path}); give --out a .html name")
    return (check_target(html_path, inputs, option="--out"),
            check_target(csv_path, inputs, option="--csv" if csv is not None else "the CSV (--out's name with .csv)"))


def _load_model(name: str):
    from .sources.checkpoints import open_checkpoint
    from .sources.demo import DEMOS

    if name in DEMOS:
        return DEMOS[name]()
    return open_checkpoint(name)


def _unique(caught: list) -> list:
    seen, out = set(), []
    for warning in caught:
        key = str(warning.message)
        if key not in seen:
            seen.add(key)
            out.append(warning)
    return out


def _nothing_message(model, include, exclude, error: Exception) -> str:
    """One line: which filter matched nothing, or why every weight was skipped."""
    from .engine.matrices import _matches, iter_layers

    names = [item.name for item in iter_layers(model)]
    examples = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "")
    if include and not any(_matches(n, include) for n in names):
        return (f"--include {' '.join(repr(p) for p in include)} matches none of the {len(names)} weight "
                f"names ({examples}); patterns are globs on layer names, e.g. '*.mlp.*'")
    if include or exclude:
        return (f"no analysable layer is left after --include/--exclude (weights: {examples}); "
                "loosen the patterns")
    return " ".join(str(error).split())


def _write_atomically(analysis, html_path: Path, csv_path: Path) -> None:
    """Both files through exclusive temporary files beside them, then renamed into place:
    no partial output on an error, Ctrl+C or SIGTERM."""
    from .widget import export

    page = export.analysis_html(analysis).encode("utf-8")
    write_atomically({csv_path: lambda f: export.write_csv(analysis, f), html_path: lambda f: f.write(page)})


def _report_series(args: argparse.Namespace, params: _params.AnalysisParams, inputs: list[Path]) -> int:
    """Several checkpoints: a CSV of every (checkpoint, layer, method) row with its step, and a
    static page of alpha against step."""
    from .charts.time import time_view_html
    from .engine.analysis import NothingToAnalyzeError
    from .tracking.compare import checkpoint_names, compare, step_from_name
    from .widget import export

    if len(set(args.model)) != len(args.model):
        raise CommandError(f"a checkpoint is named twice: {' '.join(args.model)}")
    start = time.perf_counter()
    names = checkpoint_names(args.model)
    models = {name: _load_model(path) for name, path in zip(names, args.model)}
    # again with every file read: a shard may be a link to a file elsewhere
    html_path, csv_path = _outputs(args.out, args.csv,
                                   inputs + [f for m in models.values() for f in getattr(m, "files", ())])
    bar = TqdmProgress(desc=PROG, unit="checkpoint layer", file=sys.stderr, leave=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            comparison = compare(models, **params.as_dict(), include=args.include, exclude=args.exclude,
                                 device=args.device, progress=False if args.no_progress else bar,
                                 max_eigenvalues=args.max_eigenvalues)
        except NothingToAnalyzeError as error:
            raise CommandError(" ".join(str(error).split())) from None
        finally:
            bar.close()
    for warning in _unique(caught):
        _say(f"warning: {' '.join(str(warning.message).split())}")
    if list(comparison.steps.values()) != [step_from_name(n) for n in names]:
        _say("note: not every checkpoint name ends in a distinct step number; steps are the order given (0, 1, ...)")
    history = comparison.history()
    p = comparison.params
    sampling = f"stride {p.stride}" if p.stride else f"k = {p.windows_per_dim}"
    subtitle = f"{len(names)} checkpoints · window m = {p.window}, Q = {p.q:g}, {sampling}, {p.fit} fit"

    page = time_view_html(history, subtitle=subtitle).encode("utf-8")
    write_atomically({csv_path: lambda f: export.write_frame_csv(history, f), html_path: lambda f: f.write(page)})
    _say(f"{len(names)} checkpoints, {len(comparison.layers)} layers analysed in "
         f"{time.perf_counter() - start:.1f} s; wrote {html_path} and {csv_path}")
    return 0



# --- lab -------------------------------------------------------------------------------

def notebooks_folder() -> Path:
    """The bundled notebooks: the package's copy (installed wheel) or the repository's."""
    package = Path(__file__).resolve().parent
    for folder in (package / "notebooks", package.parent / "notebooks"):
        if folder.is_dir():
            return folder
    raise CommandError("no bundled notebooks found (looked in farms_viz/notebooks and ../notebooks); "
                       "reinstall farms_viz or run from a source checkout")


def _lab(args: argparse.Namespace) -> int:
    folder = notebooks_folder()
    extra = [a for a in args.jupyter_args if a != "--"]
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}", *extra]
    if args.dry_run:
        print(shlex.join(command))
        return 0
    if importlib.util.find_spec("jupyterlab") is None:
        raise CommandError("JupyterLab is not installed: pip install 'farms_viz[lab]'")
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
