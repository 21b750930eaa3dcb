"""Open a checkpoint on disk as a lazy, memory-mapped state dict.

``open_checkpoint`` reads only the checkpoint's index (tensor names) up front. Each
``state[name]`` memory-maps that one tensor from its own handle, so once the caller drops
the tensor its pages are unmapped: analysing a checkpoint larger than RAM holds about one
layer at a time. Torch files are read with ``weights_only=True``: a pickle that would
run code is refused, never executed.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_INDEX = "model.safetensors.index.json"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
_FORMATS_HINT = ("a .safetensors file, a folder of safetensors shards (Hugging Face layout), "
                 "or a torch state-dict file (.pt, .pth, .bin)")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message says what is wrong and what to do."""


class LazyStateDict(Mapping):
    """A read-only mapping name -> tensor over a checkpoint on disk, read one tensor at a time.

    Each lookup memory-maps the tensor afresh (nothing is cached), so memory follows the
    tensors the caller keeps alive, not the checkpoint's size. Keys keep the file's order
    (torch files) or natural order of names (safetensors, whose headers are sorted).

    Attributes
    ----------
    path : the file or folder opened.
    format : "safetensors", "safetensors-sharded" or "torch".
    reads : how many tensors have been read so far.
    """

    def __init__(self, path: Path, format: str, locations: dict[str, tuple[Path, tuple[str, ...]]]):
        self.path = path
        self.format = format
        self.reads = 0
        self._locations = locations
        self._whole: object | None = None  # a legacy torch file, which cannot be mapped

    def __getitem__(self, key: str) -> torch.Tensor:
        try:
            file, wrapper = self._locations[key]
        except KeyError:
            raise KeyError(f"no tensor {key!r} in {self.path}") from None
        self.reads += 1
        if self.format != "torch":
            return _safetensors_tensor(file, key)
        if self._whole is not None:  # a legacy torch file, already read whole
            return _unwrap(self._whole, wrapper)[key]
        # Re-read the (small) pickle each time: the returned tensor alone keeps its mapping alive.
        return _unwrap(_torch_load(file), wrapper)[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._locations)

    def __len__(self) -> int:
        return len(self._locations)

    def __repr__(self) -> str:
        return f"LazyStateDict({str(self.path)!r}, format={self.format!r}, tensors={len(self)})"


def open_checkpoint(path: str | os.PathLike) -> LazyStateDict:
    """Open a checkpoint lazily: names now, each tensor memory-mapped when it is looked up.

    Parameters
    ----------
    path : a ``.safetensors`` file; a folder of safetensors shards (its
        ``model.safetensors.index.json``, or else every ``*.safetensors`` file in it); or a
        torch state-dict file (``.pt``, ``.pth``, ``.bin``), also wrapped as
        ``{"state_dict": ...}`` or ``{"model": ...}``. The format is recognised from the
        file's first bytes, so a misnamed file still opens.

    Returns
    -------
    LazyStateDict

    Raises
    ------
    CheckpointError
        Missing or empty file, truncated or corrupt file, a pickle that would run code, an
        unknown format, or a folder with no weights.

    Examples
    --------
    >>> import farms_viz
    >>> state = open_checkpoint("model.safetensors")            # doctest: +SKIP
    >>> farms_viz.analyze(state, window=100).to_pandas()        # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}. Check the path; expected {_FORMATS_HINT}.")
    if path.is_dir():
        return _open_folder(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file is empty (0 bytes): {path}. Re-save or re-download it.")
    kind = _sniff(path)
    if kind == "safetensors":
        return LazyStateDict(path, "safetensors", _safetensors_locations([path]))
    if kind == "torch":
        locations, whole = _torch_locations(path)
        state = LazyStateDict(path, "torch", locations)
        state._whole = whole
        return state
    raise CheckpointError(
        f"unknown checkpoint format: {path} is neither safetensors nor a torch state dict "
        f"(first bytes {_head(path)!r}). Expected {_FORMATS_HINT}.")


def _head(path: Path, n: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _sniff(path: Path) -> str | None:
    head = _head(path, 9)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch zip archive / legacy pickle
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: u64 header length, then JSON
        return "safetensors"
    # Unrecognised bytes under a known suffix: let that reader say what is wrong with them.
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    return None


# --- safetensors -----------------------------------------------------------------------

def _safetensors_tensor(file: Path, key: str) -> torch.Tensor:
    from safetensors import safe_open

    # A fresh handle per tensor: the returned tensor alone keeps its mapping alive.
    with safe_open(str(file), framework="pt") as handle:
        return handle.get_tensor(key)


def _safetensors_keys(file: Path) -> list[str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError, struct.error) as error:
        size = file.stat().st_size
        raise CheckpointError(
            f"corrupt or truncated safetensors file: {file} ({size} bytes): {error}. "
            "Re-download or re-save it (an interrupted download or copy leaves such files).") from None


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _safetensors_locations(files: list[Path], weight_map: dict[str, str] | None = None
                           ) -> dict[str, tuple[Path, tuple[str, ...]]]:
    locations: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for file in files:
        for key in _safetensors_keys(file):
            if weight_map is None or Path(weight_map.get(key, "")).name == file.name:
                locations.setdefault(key, (file, ()))
    if weight_map is not None:
        missing = [k for k in weight_map if k not in locations]
        if missing:
            raise CheckpointError(
                f"{len(missing)} tensor(s) listed in {SAFETENSORS_INDEX} are in no shard "
                f"(first: {missing[0]!r}). The download is incomplete: fetch the missing shards.")
    if not locations:
        raise CheckpointError(f"no tensors in {', '.join(str(f) for f in files)}: the checkpoint is empty.")
    return {k: locations[k] for k in sorted(locations, key=_natural)}


def _open_folder(folder: Path) -> LazyStateDict:
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"corrupt {index}: {error!s}. Re-download it, or delete it to read every "
                                  "*.safetensors file in the folder.") from None
        names = sorted(set(weight_map.values()), key=_natural)
        absent = [n for n in names if not (folder / n).is_file()]
        if absent:
            raise CheckpointError(f"{index} lists shard(s) that are missing: {', '.join(absent)}. "
                                  "Download the missing shards.")
        files = [folder / n for n in names]
        return LazyStateDict(folder, "safetensors-sharded", _safetensors_locations(files, weight_map))
    files = sorted(folder.glob("*.safetensors"), key=lambda p: _natural(p.name))
    if files:
        for file in files:
            if file.stat().st_size == 0:
                raise CheckpointError(f"checkpoint shard is empty (0 bytes): {file}. Re-download it.")
        return LazyStateDict(folder, "safetensors-sharded", _safetensors_locations(files))
    others = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in TORCH_SUFFIXES)
    hint = (f" It holds torch file(s) ({', '.join(others[:3])}): pass one of them directly."
            if others else "")
    raise CheckpointError(f"no weights in folder {folder}: no {SAFETENSORS_INDEX} and no *.safetensors files."
                          f"{hint} Expected {_FORMATS_HINT}.")


# --- torch state dicts -----------------------------------------------------------------

def _is_legacy_torch(file: Path) -> bool:
    return _head(file, 1) == b"\x80"  # a bare pickle stream, not torch's zip archive


def _torch_load(file: Path) -> object:
    legacy = _is_legacy_torch(file)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(file, map_location="cpu", weights_only=True, mmap=not legacy)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():
            raise CheckpointError(
                f"refusing to load {file}: it pickles Python objects other than tensors (a whole model "
                "or arbitrary code), and unpickling it could execute code from the file. If you trust "
                "it, load it yourself and save `model.state_dict()` (or convert it to safetensors), "
                "then pass that file.") from None
        raise _corrupt_torch(file, error) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise _corrupt_torch(file, error) from None
    if legacy:
        warnings.warn(f"{file} uses torch's legacy (pre-1.6) format, which cannot be memory-mapped: "
                      "it is read whole. Re-save it with torch.save to stream it.", stacklevel=3)
    return obj


def _corrupt_torch(file: Path, error: BaseException) -> CheckpointError:
    text = str(error).strip() or type(error).__name__
    first = text.splitlines()[0].split(". ")[0].rstrip(".")
    return CheckpointError(f"corrupt or truncated torch checkpoint: {file} ({file.stat().st_size} bytes): "
                           f"{first[:200]}. Re-download or re-save it with torch.save(model.state_dict(), ...).")


def _find_state_dict(obj: object, wrapper: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The key path to the state dict inside ``obj`` (``()`` when ``obj`` is one)."""
    if not isinstance(obj, Mapping):
        return None
    # Wrapper keys first: {"model": state_dict, "step": tensor(5)} is a wrapper, not a state dict.
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            found = _find_state_dict(obj[key], wrapper + (key,))
            if found is not None:
                return found
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return wrapper
    return None


def _unwrap(obj: object, wrapper: tuple[str, ...]) -> Mapping:
    for key in wrapper:
        obj = obj[key]
    return obj


def _torch_locations(file: Path) -> tuple[dict[str, tuple[Path, tuple[str, ...]]], object | None]:
    """Tensor name -> (file, wrapper keys), and the loaded object when it cannot be mapped."""
    obj = _torch_load(file)
    wrapper = _find_state_dict(obj)
    if wrapper is None:
        found = type(obj).__name__ if not isinstance(obj, Mapping) else f"a dict with keys {list(obj)[:5]}"
        raise CheckpointError(
            f"{file} holds no state dict of tensors (found {found}). Save `model.state_dict()`, or a "
            f"dict with it under one of {list(_WRAPPER_KEYS)}.")
    state = _unwrap(obj, wrapper)
    keys = [k for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)]
    if not keys:
        raise CheckpointError(f"no tensors in {file}: the state dict is empty.")
    if wrapper:
        log.info("%s: state dict found under %s", file, "/".join(wrapper))
    return dict.fromkeys(keys, (file, wrapper)), (obj if _is_legacy_torch(file) else None)
