"""``compare``: several models (checkpoints, fine-tunes) analysed alike, layers matched by name.

Weights that are identical in consecutive models (a fine-tune's frozen layers, a checkpoint
series' untouched embeddings, the same model passed twice) are analysed once: their spectra
are shared, so their deltas are exactly zero and cost one comparison of the weights.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..engine.analysis import (
    Analysis,
    LayerSpectrum,
    NothingToAnalyzeError,
    _non_finite,
    analyze,
)
from ..engine.matrices import LayerMatrix, SkippedLayer, iter_layers
from ..engine.params import AnalysisParams
from ..sources.checkpoints import (
    SAFETENSORS_INDEX,
    SAFETENSORS_SUFFIXES,
    TORCH_SUFFIXES,
    CheckpointError,
    _natural,
    open_checkpoint,
)

Model = nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES
DELTA_COLUMNS = ["layer", "method", "alpha_a", "alpha_b", "delta"]
# In a checkpoint folder holding several torch files (optimizer.pt, scheduler.pt, ...), the weights.
_WEIGHT_FILES = ("pytorch_model.bin", "model.pt", "model.pth", "model.bin", "model.ckpt")
_SHARD = re.compile(r"-\d+-of-\d+\.safetensors$")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass
class Comparison:
    """Several models analysed with the same parameters, layers matched by name.

    Attributes
    ----------
    analyses : model name -> :class:`~farms_viz.Analysis`, in the order given.
    params : the analysis parameters (the same for every model).
    reused : model name -> layers whose weights equal the previous model's, so whose spectra
        were taken from it rather than recomputed.
    """

    analyses: dict[str, Analysis]
    params: AnalysisParams
    reused: dict[str, list[str]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The models' names, in the order given."""
        return list(self.analyses)

    @property
    def layers(self) -> list[str]:
        """Every layer analysed in any model: the first model's order, then the layers others add."""
        seen: dict[str, None] = {}
        for analysis in self.analyses.values():
            seen.update(dict.fromkeys(analysis.layers))
        return list(seen)

    @property
    def matched(self) -> list[str]:
        """Layers analysed in every model."""
        analysed = [set(a.layers) for a in self.analyses.values()]
        return [layer for layer in self.layers if all(layer in names for names in analysed)]

    @property
    def unmatched(self) -> list[str]:
        """Layers missing from at least one model (absent there, or not analysable)."""
        matched = set(self.matched)
        return [layer for layer in self.layers if layer not in matched]

    def missing(self) -> pd.DataFrame:
        """The unmatched layers: columns layer, model (one row per model lacking the layer)."""
        rows = [{"layer": layer, "model": name} for layer in self.unmatched
                for name, a in self.analyses.items() if layer not in set(a.layers)]
        return pd.DataFrame(rows, columns=["layer", "model"])

    def analysis(self, name: str) -> Analysis:
        """One model's :class:`~farms_viz.Analysis`."""
        try:
            return self.analyses[name]
        except KeyError:
            raise KeyError(f"no model {name!r}; models: {self.names}") from None

    def to_pandas(self) -> pd.DataFrame:
        """One row per (model, layer, method): a ``model`` column, then
        :meth:`farms_viz.Analysis.to_pandas`'s columns; models in the order given."""
        frames = []
        for name, analysis in self.analyses.items():
            frame = analysis.to_pandas()
            frame.insert(0, "model", name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    @property
    def steps(self) -> dict[str, int]:
        """model -> step: the trailing number of each name (``ckpt-1000`` -> 1000) when every
        name has a distinct one, else the position in the order given (0, 1, ...)."""
        return steps_from_names(self.names)

    def history(self) -> pd.DataFrame:
        """:meth:`to_pandas` with a ``step`` column first (see :attr:`steps`): the same shape as
        ``Monitor.history``, so a checkpoint series draws as a training run."""
        frame = self.to_pandas()
        frame.insert(0, "step", frame["model"].map(self.steps))
        return frame

    def delta(self, a: str, b: str, method: str | None = None) -> pd.DataFrame:
        """The change in alpha from model ``a`` to model ``b``, per layer and method.

        Parameters
        ----------
        a, b : model names.
        method : "esd" or "farms"; None gives both.

        Returns
        -------
        pandas.DataFrame with columns layer, method, alpha_a, alpha_b, delta (= alpha_b -
        alpha_a), one row per layer analysed in both models (``a``'s order) and method.
        """
        first, second = self.analysis(a), self.analysis(b)
        methods = [m for m in first.methods if m in second.methods and (method is None or m == method)]
        if method is not None and method not in ("esd", "farms"):
            raise ValueError(f"method must be 'esd', 'farms' or None (both); got {method!r}")
        rows = []
        for layer in first.layers:
            for m in methods:
                if (layer, m) in first.spectra and (layer, m) in second.spectra:
                    alpha_a, alpha_b = first.spectra[(layer, m)].fit.alpha, second.spectra[(layer, m)].fit.alpha
                    rows.append((layer, m, alpha_a, alpha_b, alpha_b - alpha_a))
        return pd.DataFrame(rows, columns=DELTA_COLUMNS)

    def spectra(self, layer: str, method: str = "farms") -> dict[str, LayerSpectrum]:
        """One layer's :class:`~farms_viz.LayerSpectrum` (eigenvalues and fit) from each model
        that has it, in the models' order."""
        found = {name: a.spectra[(layer, method)] for name, a in self.analyses.items() if (layer, method) in a.spectra}
        if not found:
            raise KeyError(f"no model has a {method!r} spectrum for layer {layer!r}; layers: "
                           f"{', '.join(self.layers[:5])}{' ...' if len(self.layers) > 5 else ''}")
        return found

    def __repr__(self) -> str:
        return (f"Comparison({len(self.analyses)} models: {', '.join(self.names[:4])}"
                f"{' ...' if len(self.names) > 4 else ''}; {len(self.matched)} layers matched, "
                f"{len(self.unmatched)} unmatched)")


def compare(models: Mapping[str, Model] | Sequence[str | os.PathLike] | str | os.PathLike, *,
            progress: bool | Callable[[int, int, str], None] = True, **analyze_params: Any) -> Comparison:
    """Analyse several models with the same parameters and match their layers by name.

    Parameters
    ----------
    models : name -> model, where a model is an ``nn.Module``, a state dict, an opened
        checkpoint (:func:`farms_viz.checkpoints.open_checkpoint`) or a checkpoint's path; or
        a list of checkpoint paths (named by their file or folder names); or one folder of
        checkpoints (each checkpoint file or checkpoint subfolder one model, in natural
        order: ``ckpt-2`` before ``ckpt-10``).
    progress : True for a tqdm bar, False for none, or a callback ``f(done, total, layer)``
        (``layer`` is ``"model: layer"``).
    **analyze_params : as :func:`farms_viz.analyze` takes them (method, window, q,
        windows_per_dim, stride, fit, conv_norm, device, include, exclude, executor).

    Returns
    -------
    Comparison

    Examples
    --------
    >>> import copy, torch, torch.nn as nn, farms_viz
    >>> base = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 32))
    >>> tuned = copy.deepcopy(base)
    >>> with torch.no_grad():
    ...     _ = tuned[1].weight.mul_(3).add_(torch.randn(32, 64))
    >>> comparison = compare({"base": base, "tuned": tuned}, window=16, progress=False)
    >>> delta = comparison.delta("base", "tuned", method="farms")
    >>> delta.set_index("layer")["delta"].ne(0).to_dict()
    {'0': False, '1': True}
    """
    params_in = dict(analyze_params)
    if "progress" in params_in:
        raise TypeError("progress is compare's own parameter")
    run_kwargs: dict[str, Any] = {k: params_in.pop(k) for k in ("device", "include", "exclude", "executor",
                                                                "max_eigenvalues")
                                  if k in params_in}
    params = AnalysisParams(**params_in)
    include = _patterns(run_kwargs.get("include"))
    exclude = _patterns(run_kwargs.get("exclude"))
    sources = _sources(models)

    counter = _Progress.start(progress, sources, params, include, exclude)
    analyses: dict[str, Analysis] = {}
    reused: dict[str, list[str]] = {}
    previous: tuple[dict[str, LayerMatrix], Analysis] | None = None
    try:
        for name, source in sources.items():
            same = next((analyses[n] for n, s in sources.items() if s is source and n in analyses), None)
            if same is not None:  # the same object twice: the same analysis
                analyses[name], reused[name] = same, list(same.layers)
                counter.finish(name, len(same.layers), shared=len(same.layers))
                continue
            try:
                analysis, matrices, shared = _analyze_sharing(source, previous, params, include, exclude,
                                                              run_kwargs, counter.for_model(name))
            except NothingToAnalyzeError as error:
                raise NothingToAnalyzeError(f"model {name!r}: {error}") from None
            counter.finish(name, len(matrices), shared=len(shared))
            analyses[name], reused[name] = analysis, shared
            previous = (matrices, analysis)
    finally:
        counter.close()
    return Comparison(analyses, params, reused)


def _analyze_sharing(source: Any, previous: tuple[dict[str, LayerMatrix], Analysis] | None,
                     params: AnalysisParams, include: list[str] | None, exclude: list[str] | None,
                     run_kwargs: dict[str, Any], progress: Callable[[int, int, str], None] | bool
                     ) -> tuple[Analysis, dict[str, LayerMatrix], list[str]]:
    """One model's analysis, taking the spectra of layers identical in ``previous`` from it."""
    items = list(iter_layers(source, conv_norm=params.conv_norm, include=include, exclude=exclude))
    order = {item.name: i for i, item in enumerate(items)}
    matrices = {m.name: m for m in items if isinstance(m, LayerMatrix)}
    skipped = [s for s in items if isinstance(s, SkippedLayer)]
    shared: list[str] = []
    if previous is not None:
        old_matrices, old = previous
        shared = [n for n, m in matrices.items()
                  if n in old_matrices and n in old.layers and _same_values(old_matrices[n], m)]
    new = [n for n in matrices if n not in set(shared)]
    part: Analysis | None = None
    if new:
        kwargs = {k: v for k, v in run_kwargs.items() if k not in ("include", "exclude")}
        try:
            part = analyze(source, **params.as_dict(), include=[_literal(n) for n in new], progress=progress,
                           **kwargs)
        except NothingToAnalyzeError:
            if not shared:
                raise
            skipped += [_non_finite(matrices[n], matrices[n].load()) or
                        SkippedLayer(n, matrices[n].kind, (matrices[n].rows, matrices[n].cols), "not analysed")
                        for n in new]
    spectra = {}
    layers = []
    for n in matrices:
        source_analysis = previous[1] if previous is not None and n in shared else part
        if source_analysis is not None and n in source_analysis.layers:
            layers.append(n)
            spectra.update({(n, m): source_analysis.spectra[(n, m)] for m in source_analysis.methods
                            if (n, m) in source_analysis.spectra})
    if part is not None:
        new_names = set(new)
        skipped += [s for s in part.skipped if s.name in new_names]
    if not layers:
        raise NothingToAnalyzeError("no layer could be analysed: " +
                                    "; ".join(f"{s.name}: {s.reason}" for s in skipped))
    skipped.sort(key=lambda s: order.get(s.name, len(order)))
    seconds = part.seconds if part is not None else 0.0
    return Analysis(params, layers, skipped, spectra, seconds), matrices, shared


def _same_values(old: LayerMatrix, new: LayerMatrix) -> bool:
    """Whether two layers hold identical weights (exactly), read one layer at a time."""
    if (old.kind, old.rows, old.cols, old.num_slices, old.eigenvalue_scale) != (
            new.kind, new.rows, new.cols, new.num_slices, new.eigenvalue_scale):
        return False
    with torch.no_grad():
        a, b = old.load(), new.load()
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.device == b.device and a.data_ptr() == b.data_ptr() and a.stride() == b.stride():
            return True  # the same memory
        b = b.to(a.device)
        # a first row tells most changed layers apart before the whole tensor is read
        return bool(torch.equal(a[..., :1, :], b[..., :1, :]) and torch.equal(a, b))


def _literal(name: str) -> str:
    """A glob pattern that matches exactly ``name``."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _patterns(value: Sequence[str] | str | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


# --- inputs ----------------------------------------------------------------------------

def _sources(models: Any) -> dict[str, Any]:
    if isinstance(models, (str, os.PathLike)):
        path = Path(models).expanduser()
        if not path.is_dir():
            raise ValueError(f"{path} is not a folder: compare takes a folder of checkpoints, a list of "
                             "checkpoint paths, or a mapping name -> model (analyze takes one checkpoint)")
        paths = checkpoint_paths(path)
        return {name: open_checkpoint(p) for name, p in zip(checkpoint_names(paths), paths)}
    if isinstance(models, Mapping):
        if any(isinstance(v, torch.Tensor) for v in models.values()):
            raise TypeError("models looks like one state dict (its values are tensors); pass a mapping "
                            "name -> model, e.g. {'base': base_state_dict, 'tuned': tuned_state_dict}")
        if not models:
            raise ValueError("models is empty: pass at least one model, e.g. {'base': base, 'tuned': tuned}")
        out = {}
        for name, model in models.items():
            if not isinstance(name, str):
                raise TypeError(f"model names must be strings; got {name!r}")
            out[name] = _open(name, model)
        return out
    if isinstance(models, Sequence) and models and all(isinstance(p, (str, os.PathLike)) for p in models):
        paths = [Path(p).expanduser() for p in models]
        return {name: _open(name, p) for name, p in zip(checkpoint_names(paths), paths)}
    raise TypeError(f"models must be a mapping name -> model, a list of checkpoint paths or a folder of "
                    f"checkpoints; got {type(models).__name__}")


def _open(name: str, model: Any) -> Any:
    if isinstance(model, (str, os.PathLike)):
        return open_checkpoint(model)
    if isinstance(model, (nn.Module, Mapping)):
        return model
    raise TypeError(f"model {name!r} must be an nn.Module, a state dict, an opened checkpoint or a "
                    f"checkpoint path; got {type(model).__name__}")


def checkpoint_paths(folder: str | os.PathLike) -> list[Path]:
    """The checkpoints in ``folder``, in natural order of names: every checkpoint file
    (.safetensors, .pt, .pth, .bin, .ckpt) and every subfolder that holds one (a Hugging Face
    ``checkpoint-500`` folder, a folder of shards). Hidden entries are ignored.

    Examples
    --------
    >>> checkpoint_paths("runs/my-model")                     # doctest: +SKIP
    [PosixPath('runs/my-model/checkpoint-500'), PosixPath('runs/my-model/checkpoint-1000')]
    """
    folder = Path(folder).expanduser()
    if (folder / SAFETENSORS_INDEX).is_file() or any(_SHARD.search(p.name) for p in folder.iterdir()):
        raise ValueError(f"{folder} is one sharded checkpoint, not a folder of checkpoints: analyse it with "
                         "farms_viz.analyze(open_checkpoint(folder)), or name it in a mapping")
    paths = []
    for entry in sorted(folder.iterdir(), key=lambda p: _natural(p.name)):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in CHECKPOINT_SUFFIXES:
            paths.append(entry)
        elif entry.is_dir():
            weights = _weights_in(entry)
            if weights is not None:
                paths.append(weights)
    if not paths:
        raise CheckpointError(f"no checkpoints in {folder}: expected checkpoint files "
                              f"({', '.join(CHECKPOINT_SUFFIXES)}) or subfolders holding one")
    return paths


def _weights_in(folder: Path) -> Path | None:
    if (folder / SAFETENSORS_INDEX).is_file() or any(folder.glob("*.safetensors")):
        return folder
    for name in _WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    torch_files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TORCH_SUFFIXES]
    return torch_files[0] if len(torch_files) == 1 else None


def _model_name(path: Path) -> str:
    """``ckpt-1000.safetensors`` -> ``ckpt-1000``; ``checkpoint-500/model.safetensors`` -> ``checkpoint-500``."""
    if path.name in _WEIGHT_FILES or path.name in ("model.safetensors",):
        path = path.parent
    return path.stem if path.suffix.lower() in CHECKPOINT_SUFFIXES else path.name


def checkpoint_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Short, distinct names for checkpoints: file names without the suffix (a folder's name for
    a Hugging Face weights file inside it), or the paths as given when those repeat.

    Examples
    --------
    >>> checkpoint_names(["run/ckpt-10.safetensors", "run/ckpt-2.safetensors"])
    ['ckpt-10', 'ckpt-2']
    """
    short = [_model_name(Path(p)) for p in paths]
    if len(set(short)) == len(short):
        return short
    full = [str(p) for p in paths]
    if len(set(full)) != len(full):
        raise ValueError(f"the same checkpoint is named twice: {full}")
    return full


def step_from_name(name: str) -> int | None:
    """The training step in a checkpoint's name: its trailing number, None if it has none.

    Examples
    --------
    >>> step_from_name("checkpoint-1500"), step_from_name("runs/epoch3.pt"), step_from_name("base")
    (1500, 3, None)
    """
    for part in reversed(Path(name).parts):
        stem = part[: -len(Path(part).suffix)] if Path(part).suffix.lower() in CHECKPOINT_SUFFIXES else part
        found = _TRAILING_NUMBER.search(stem)
        if found:
            return int(found.group(1))
    return None


def steps_from_names(names: Sequence[str]) -> dict[str, int]:
    """name -> step: each name's trailing number when every name has a distinct one, else
    the position (0, 1, ...) in the order given.

    Examples
    --------
    >>> steps_from_names(["ckpt-500", "ckpt-1000"]), steps_from_names(["base", "tuned"])
    ({'ckpt-500': 500, 'ckpt-1000': 1000}, {'base': 0, 'tuned': 1})
    """
    parsed = [step_from_name(n) for n in names]
    steps = [p for p in parsed if p is not None]
    if len(steps) == len(names) and len(set(steps)) == len(steps):
        return dict(zip(names, steps))
    return {n: i for i, n in enumerate(names)}


# --- progress --------------------------------------------------------------------------

class _Progress:
    """Layers done over all models, reported through one callback (or a tqdm bar, or nowhere)."""

    def __init__(self, report: Callable[[int, int, str], None] | None, total: int, bar: Any = None):
        self.report, self.total, self.bar, self.done = report, total, bar, 0

    @classmethod
    def start(cls, progress: Any, sources: dict[str, Any], params: AnalysisParams, include: list[str] | None,
              exclude: list[str] | None) -> _Progress:
        if not progress:
            return cls(None, 0)
        total = sum(isinstance(item, LayerMatrix) for source in sources.values()
                    for item in iter_layers(source, conv_norm=params.conv_norm, include=include, exclude=exclude))
        if callable(progress):
            return cls(progress, total)
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="farms_viz compare", unit="layer", leave=False)

        def update(done: int, total_: int, layer: str) -> None:
            bar.set_postfix_str(layer, refresh=False)
            bar.update(done - bar.n)

        return cls(update, total, bar)

    def for_model(self, name: str) -> Callable[[int, int, str], None] | bool:
        """analyze's progress callback for one model's layers."""
        report = self.report
        if report is None:
            return False
        base = self.done
        return lambda count, _total, layer: report(base + count, self.total, f"{name}: {layer}")

    def finish(self, name: str, layers: int, shared: int) -> None:
        self.done += layers
        if self.report is not None and shared:
            self.report(self.done, self.total, f"{name}: {shared} layer(s) identical to the previous model's")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
