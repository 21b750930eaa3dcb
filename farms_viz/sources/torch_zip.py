"""A torch checkpoint (``torch.save``'s zip archive) parsed once, its tensors located, not read.

The archive holds ``data.pkl`` (the pickled object, tensors as references to storages) and
one uncompressed record ``data/<key>`` per storage. The pickle is parsed once by a
restricted unpickler that resolves only the names a plain state dict uses (tensor and
parameter rebuilds, typed storages, ``OrderedDict``) into position records; anything else
stops it before it is called (:class:`NeedsTorchLoader`), and the caller hands the file to
``torch.load(weights_only=True)``, which refuses code. Each tensor then becomes a
:class:`StoredTensor` at its storage record's offset in the file.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from .stored_tensor import StoredTensor, element_span

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length
_LOCAL_SIGNATURE = b"PK\x03\x04"


class NeedsTorchLoader(Exception):
    """The archive uses something beyond a plain state dict: let torch's own loader read it."""


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _Storage:
    dtype: torch.dtype
    offset: int  # byte offset of the storage's data in the file
    nbytes: int


# Typed-storage class names in torch.save's pickles -> the dtype of their elements.
_STORAGE_TYPES = {name: _StorageType(dtype) for name, dtype in {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
}.items()}
_UNTYPED = _StorageType(torch.uint8)  # torch.storage.UntypedStorage: bytes, the tensor names its dtype


class _Unpickler(pickle.Unpickler):
    """Resolves only plain state-dict names; every storage becomes a position in the file."""

    def __init__(self, data: bytes, locate):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self._locate = locate
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _tensor_record
        if module == "torch._utils" and name == "_rebuild_tensor_v3":
            return _tensor_record_v3
        if module == "torch.storage" and name == "UntypedStorage":
            return _UNTYPED
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _parameter_record
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise NeedsTorchLoader(f"{module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and type(pid[4]) is int):
            raise NeedsTorchLoader(f"storage reference {pid!r}")
        _, kind, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = self._locate(key, kind.dtype, numel)
        return self._storages[key]


def _tensor_record(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                   metadata=None) -> _TensorRecord:
    """Stands in for ``torch._utils._rebuild_tensor_v2``: the storage's dtype is the tensor's."""
    if not isinstance(storage, _Storage):
        raise NeedsTorchLoader("a tensor without a storage record")
    return _record(storage, storage.dtype, storage_offset, size, stride, metadata)


def _tensor_record_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                      metadata=None) -> _TensorRecord:
    """Stands in for ``torch._utils._rebuild_tensor_v3``: bytes, and the tensor's dtype."""
    if not (isinstance(storage, _Storage) and isinstance(dtype, torch.dtype)):
        raise NeedsTorchLoader("a tensor without a storage record")
    return _record(storage, dtype, storage_offset, size, stride, metadata)


def _record(storage: _Storage, dtype: torch.dtype, storage_offset, size, stride, metadata) -> _TensorRecord:
    if metadata:
        raise NeedsTorchLoader("a tensor with extra metadata")
    shape, strides = tuple(size), tuple(stride)
    if not (type(storage_offset) is int and storage_offset >= 0 and len(shape) == len(strides)
            and all(type(v) is int and v >= 0 for v in shape + strides)):
        raise ValueError(f"a tensor with invalid geometry (size {size}, stride {stride}, offset {storage_offset})")
    itemsize = dtype.itemsize
    if (storage_offset + element_span(shape, strides)) * itemsize > storage.nbytes:
        raise ValueError(f"a tensor of size {list(shape)} reaches beyond its storage ({storage.nbytes} bytes)")
    return _TensorRecord(dtype, storage.offset + storage_offset * itemsize, shape, strides)


def _parameter_record(data, requires_grad=False, backward_hooks=None, state=None):
    return data


@dataclass(frozen=True)
class _TensorRecord:
    dtype: torch.dtype
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _data_pickle(names: list[str]) -> str:
    candidates = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
    if not candidates:
        raise ValueError("no data.pkl record: not a torch.save archive")
    return min(candidates, key=len)


def read_archive(file: Path) -> object:
    """The archive's pickled object with every tensor replaced by a :class:`StoredTensor`.

    Raises
    ------
    NeedsTorchLoader
        The pickle names something other than a plain state dict's parts (code, a module, a
        sparse or quantized tensor, ...), a storage record is compressed, or the archive's
        byte order differs from this machine's. Nothing from the pickle was called.
    ValueError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError
        A corrupt or truncated archive.

    Examples
    --------
    >>> import tempfile, torch
    >>> path = Path(tempfile.mkdtemp()) / "m.pt"
    >>> torch.save({"w": torch.arange(6.0).reshape(2, 3).t()}, path)
    >>> entry = read_archive(path)["w"]
    >>> entry.shape, entry.strides, entry.read().tolist()
    ((3, 2), (1, 3), [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]])
    """
    size = file.stat().st_size
    with zipfile.ZipFile(file) as archive, open(file, "rb") as raw:
        records = {info.filename: info for info in archive.infolist()}
        pickle_name = _data_pickle(list(records))
        prefix = pickle_name[: -len("data.pkl")]
        order = records.get(prefix + "byteorder")
        if order is not None and archive.read(order).decode(errors="replace").strip() != sys.byteorder:
            raise NeedsTorchLoader("a byte order other than this machine's")

        def locate(key: str, dtype: torch.dtype, numel: int) -> _Storage:
            info = records.get(f"{prefix}data/{key}")
            if info is None:
                raise ValueError(f"the storage record data/{key} is missing")
            if info.compress_type != zipfile.ZIP_STORED:
                raise NeedsTorchLoader("a compressed storage record")
            if numel * dtype.itemsize > info.file_size:
                raise ValueError(f"the storage record data/{key} is shorter than its tensors")
            raw.seek(info.header_offset)
            signature, name_length, extra_length = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
            if signature != _LOCAL_SIGNATURE:
                raise ValueError(f"the storage record data/{key} has no local header")
            start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
            if start + info.file_size > size:
                raise ValueError(f"the storage record data/{key} ends beyond the end of the file")
            return _Storage(dtype, start, info.file_size)

        obj = _Unpickler(archive.read(records[pickle_name]), locate).load()
    return _to_stored(obj, file)


def _to_stored(obj: object, file: Path) -> object:
    if isinstance(obj, _TensorRecord):
        return StoredTensor(file, obj.offset, obj.dtype, obj.shape, obj.strides)
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _to_stored(value, file)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_stored(v, file) for v in obj)
    return obj
