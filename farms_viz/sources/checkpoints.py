"""Open a checkpoint on disk as a lazy state dict, each tensor read by its position.

``open_checkpoint`` parses the checkpoint's index once (a safetensors header; a torch zip
archive's pickle, with a restricted unpickler) and learns where every tensor's bytes lie.
Each ``state[name]`` then reads exactly that tensor's bytes into fresh memory, so opening
costs time linear in the tensor count, memory follows the tensors the caller keeps (about
one layer while analysing), and the file's size does not matter: a checkpoint larger than
RAM reads like a small one. A pickle that would run code is refused, never executed.
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
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import torch

from .safetensors_header import HeaderError, read_header
from .stored_tensor import StoredTensor
from .torch_zip import NeedsTorchLoader, read_archive

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

    Each lookup reads the tensor's bytes afresh into new memory (nothing is cached), so memory
    follows the tensors the caller keeps alive, not the checkpoint's size. Keys keep the
    file's order (torch files) or natural order of names (safetensors, whose headers are sorted).

    Attributes
    ----------
    path : the file or folder opened.
    format : "safetensors", "safetensors-sharded" or "torch".
    files : every file the tensors are read from (the shards, in order).
    reads : how many tensors have been read so far.
    """

    def __init__(self, path: Path, format: str, entries: Mapping[str, StoredTensor | torch.Tensor],
                 files: tuple[Path, ...] = ()):
        self.path = path
        self.format = format
        self.files = files or (path,)
        self.reads = 0
        self._entries = entries

    def _entry(self, key: str) -> StoredTensor | torch.Tensor:
        try:
            return self._entries[key]
        except KeyError:
            raise KeyError(f"no tensor {key!r} in {self.path}") from None

    def __getitem__(self, key: str) -> torch.Tensor:
        entry = self._entry(key)
        self.reads += 1
        if isinstance(entry, torch.Tensor):  # read whole when opened (legacy or unusual torch files)
            return entry
        try:
            return entry.read()
        except (EOFError, OSError) as error:
            raise CheckpointError(f"cannot read tensor {key!r} from {entry.file}: {error}. The file changed or was "
                                  "truncated after it was opened; re-download or re-save it.") from None

    def describe(self, key: str) -> torch.Tensor:
        """``key``'s shape, dtype and layout without reading it: a tensor on the meta device (or
        the tensor itself, for a file that was read whole)."""
        entry = self._entry(key)
        return entry if isinstance(entry, torch.Tensor) else entry.meta()

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"LazyStateDict({str(self.path)!r}, format={self.format!r}, tensors={len(self)})"


def open_checkpoint(path: str | os.PathLike) -> LazyStateDict:
    """Open a checkpoint lazily: names and positions now, each tensor read when it is looked up.

    Parameters
    ----------
    path : a ``.safetensors`` file; a folder of safetensors shards (its
        ``model.safetensors.index.json``, or else every ``*.safetensors`` file in it); or a
        torch state-dict file (``.pt``, ``.pth``, ``.bin``), also wrapped as
        ``{"state_dict": ...}`` or ``{"model": ...}``. The format is recognised from the
        file's first bytes, so a misnamed file still opens (with a warning). An index may
        name shards inside its folder only (they may be links elsewhere, as in the Hugging
        Face cache); a tensor in two shards is an error.

    Returns
    -------
    LazyStateDict

    Raises
    ------
    CheckpointError
        Missing or empty file, truncated or corrupt file, a pickle that would run code, an
        unknown format, a folder with no weights, a malformed index or one naming files
        outside its folder, a tensor in two shards, or state-dict keys that are not names.

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
        return LazyStateDict(path, "safetensors", _natural_order(_safetensors_entries(path), path))
    if kind == "torch":
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            warnings.warn(f"{path} is a torch checkpoint (torch.save), not safetensors: it is read as one, weights "
                          "only; rename it to .pt to say what it is.", stacklevel=2)
        return LazyStateDict(path, "torch", _torch_entries(path))
    raise CheckpointError(
        f"unknown checkpoint format: {path} is neither safetensors nor a torch state dict "
        f"(first bytes {_head(path)!r}). Expected {_FORMATS_HINT}.")


def _head(path: Path, n: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _sniff(path: Path) -> str | None:
    head = _head(path, 9)
    # safetensors first: its u64 header length may start with byte 0x80, as a pickle does
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: u64 header length, then JSON
        return "safetensors"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch zip archive / legacy pickle
        return "torch"
    # Unrecognised bytes under a known suffix: let that reader say what is wrong with them.
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    return None


# --- safetensors -----------------------------------------------------------------------

def _safetensors_entries(file: Path) -> dict[str, StoredTensor]:
    try:
        return read_header(file)
    except (HeaderError, OSError, struct.error) as error:
        raise CheckpointError(
            f"corrupt or truncated safetensors file: {file} ({file.stat().st_size} bytes): {error}. "
            "Re-download or re-save it (an interrupted download or copy leaves such files).") from None


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _natural_order(entries: dict[str, StoredTensor], where: Path) -> dict[str, StoredTensor]:
    if not entries:
        raise CheckpointError(f"no tensors in {where}: the checkpoint is empty.")
    return {k: entries[k] for k in sorted(entries, key=_natural)}


def _shards_entries(folder: Path, files: list[Path], wanted: Mapping[str, Path] | None = None
                    ) -> dict[str, StoredTensor]:
    """Every tensor of the shards; with an index, those it lists, each from the shard it names."""
    entries: dict[str, StoredTensor] = {}
    for file in files:
        if file.stat().st_size == 0:
            raise CheckpointError(f"checkpoint shard is empty (0 bytes): {file}. Re-download it.")
        if _sniff(file) == "torch":
            raise CheckpointError(f"{file} is a torch checkpoint (torch.save), not safetensors, among safetensors "
                                  "shards: rename it to .pt and pass it on its own, or convert it with "
                                  "safetensors.torch.save_file.")
        for key, entry in _safetensors_entries(file).items():
            if key in entries:
                raise CheckpointError(f"tensor {key!r} is in both {entries[key].file} and {file}: the checkpoint "
                                      "is ambiguous. Remove one copy, or fetch the shards again.")
            entries[key] = entry
    if wanted is not None:
        missing = [k for k, f in wanted.items() if k not in entries or entries[k].file != f]
        if missing:
            raise CheckpointError(
                f"{len(missing)} tensor(s) listed in {SAFETENSORS_INDEX} are not in the shard it names "
                f"(first: {missing[0]!r}, in {wanted[missing[0]].name}). The download is incomplete: "
                "fetch the missing shards.")
        entries = {k: entries[k] for k in wanted}
    return _natural_order(entries, folder)


_INDEX_HINT = "Re-download the index, or delete it to read every *.safetensors file in the folder."


def _confined(index: Path, key: str, name: object) -> str:
    """A shard name from the index: a relative path inside the index's folder, else an error."""
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"weight_map[{key!r}] in {index} must be a shard file name such as "
                              f"'model-00001-of-00002.safetensors'; got {name!r}. {_INDEX_HINT}")
    windows = PureWindowsPath(name)
    if PurePosixPath(name).is_absolute() or windows.is_absolute() or windows.drive or ".." in windows.parts:
        raise CheckpointError(f"weight_map[{key!r}] in {index} names {name!r}, outside the folder: an index "
                              f"names shards in its own folder only. {_INDEX_HINT}")
    return name


def _read_index(index: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"corrupt {index}: {error!s}. Re-download it, or delete it to read every "
                              "*.safetensors file in the folder.") from None
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"weight_map in {index} must be a JSON object (tensor name -> shard file); got a "
                              f"{type(weight_map).__name__}. {_INDEX_HINT}")
    if not weight_map:
        raise CheckpointError(f"weight_map in {index} is empty: it lists no tensors. {_INDEX_HINT}")
    return {key: _confined(index, key, name) for key, name in weight_map.items()}


def _open_folder(folder: Path) -> LazyStateDict:
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        weight_map = _read_index(index)
        names = sorted(set(weight_map.values()), key=_natural)
        absent = [n for n in names if not (folder / n).is_file()]
        if absent:
            raise CheckpointError(f"{index} lists shard(s) that are missing: {', '.join(absent)}. "
                                  "Download the missing shards.")
        files = [folder / n for n in names]
        wanted = {key: folder / name for key, name in weight_map.items()}
        return LazyStateDict(folder, "safetensors-sharded", _shards_entries(folder, files, wanted), tuple(files))
    files = sorted(folder.glob("*.safetensors"), key=lambda p: _natural(p.name))
    if files:
        return LazyStateDict(folder, "safetensors-sharded", _shards_entries(folder, files), tuple(files))
    others = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in TORCH_SUFFIXES)
    hint = (f" It holds torch file(s) ({', '.join(others[:3])}): pass one of them directly."
            if others else "")
    raise CheckpointError(f"no weights in folder {folder}: no {SAFETENSORS_INDEX} and no *.safetensors files."
                          f"{hint} Expected {_FORMATS_HINT}.")


# --- torch state dicts -----------------------------------------------------------------

def _is_legacy_torch(file: Path) -> bool:
    return _head(file, 1) == b"\x80"  # a bare pickle stream, not torch's zip archive


def _torch_load(file: Path) -> object:
    """The whole object, by ``torch.load(weights_only=True)``: legacy files, and archives holding
    more than plain tensors (sparse or quantized ones, say). Code in the pickle is refused."""
    legacy = _is_legacy_torch(file)
    # a zip archive is memory-mapped; torch.load hands a path named *.safetensors to the
    # safetensors reader, so such a file goes in as a file object (read whole)
    by_path = not legacy and file.suffix.lower() not in SAFETENSORS_SUFFIXES
    try:
        with warnings.catch_warnings(), open(file, "rb") as f:
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(file if by_path else f, map_location="cpu", weights_only=True, mmap=by_path)
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
        warnings.warn(f"{file} uses torch's legacy (pre-1.6) format, whose tensors cannot be read one by one: "
                      "it is read whole. Re-save it with torch.save to stream it.", stacklevel=3)
    return obj


# What a corrupt archive or pickle raises while it is parsed.
_CORRUPT = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, RecursionError, struct.error, OSError, zipfile.BadZipFile)


def _read_torch(file: Path) -> object:
    """The checkpoint's object, tensors as positions (:class:`StoredTensor`) where possible."""
    if _is_legacy_torch(file):
        return _torch_load(file)
    try:
        return read_archive(file)
    except NeedsTorchLoader as reason:
        log.info("%s holds %s: read whole by torch.load(weights_only=True)", file, reason)
        return _torch_load(file)
    except _CORRUPT as error:
        raise _corrupt_torch(file, error) from None


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
    if any(_is_tensor(v) for v in obj.values()):
        return wrapper
    return None


def _unwrap(obj: Any, wrapper: tuple[str, ...]) -> Mapping:
    for key in wrapper:
        obj = obj[key]
    return obj


def _is_tensor(value: object) -> bool:
    return isinstance(value, (torch.Tensor, StoredTensor))


def _torch_entries(file: Path) -> dict[str, StoredTensor | torch.Tensor]:
    """Tensor name -> its position in the file (or the tensor, for files read whole)."""
    obj = _read_torch(file)
    wrapper = _find_state_dict(obj)
    if wrapper is None:
        found = type(obj).__name__ if not isinstance(obj, Mapping) else f"a dict with keys {list(obj)[:5]}"
        raise CheckpointError(
            f"{file} holds no state dict of tensors (found {found}). Save `model.state_dict()`, or a "
            f"dict with it under one of {list(_WRAPPER_KEYS)}.")
    state = _unwrap(obj, wrapper)
    unnamed = next((k for k, v in state.items() if not isinstance(k, str) and _is_tensor(v)), None)
    if unnamed is not None:
        raise CheckpointError(
            f"{file}: the state dict's keys must be layer names (str); found {unnamed!r} "
            f"({type(unnamed).__name__}) holding a tensor. Re-save it with names, e.g. "
            "torch.save({str(k): v for k, v in state.items()}, path), or model.state_dict().")
    entries = {k: v for k, v in state.items() if _is_tensor(v)}
    if not entries:
        raise CheckpointError(f"no tensors in {file}: the state dict is empty.")
    if wrapper:
        log.info("%s: state dict found under %s", file, "/".join(wrapper))
    return entries
