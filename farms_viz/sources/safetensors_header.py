"""The header of a safetensors file: every tensor's name, dtype, shape and byte range.

A safetensors file is an 8-byte little-endian header length, a JSON header mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the data
that follows the header), then the data. The header is parsed once and checked against the
file's size; each tensor is then read by position (:class:`StoredTensor`).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch

from .stored_tensor import StoredTensor, contiguous_strides

# The safetensors format caps its header at 100 MB.
MAX_HEADER_BYTES = 100_000_000
METADATA_KEY = "__metadata__"

DTYPES: dict[str, torch.dtype] = {
    name: dtype for name, dtype in {
        "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
        "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
        "BOOL": torch.bool, "C64": torch.complex64,
        "F8_E4M3": getattr(torch, "float8_e4m3fn", None), "F8_E5M2": getattr(torch, "float8_e5m2", None),
        "U16": getattr(torch, "uint16", None), "U32": getattr(torch, "uint32", None),
        "U64": getattr(torch, "uint64", None),
    }.items() if dtype is not None
}


class HeaderError(ValueError):
    """What is wrong with a safetensors header (the caller adds the file and what to do)."""


def _unique_keys(pairs: list) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise HeaderError(f"tensor name {key!r} appears twice in the header")
        seen[key] = value
    return seen


def _offsets(name: str, info: object, data_bytes: int) -> tuple[torch.dtype, tuple[int, ...], int]:
    if not isinstance(info, dict):
        raise HeaderError(f"entry {name!r} is not an object with dtype, shape and data_offsets")
    dtype = DTYPES.get(info.get("dtype"))  # type: ignore[arg-type]
    if dtype is None:
        raise HeaderError(f"tensor {name!r} has an unknown dtype {info.get('dtype')!r}")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
        raise HeaderError(f"tensor {name!r} has an invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise HeaderError(f"tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end:
        raise HeaderError(f"tensor {name!r} has invalid data_offsets {offsets!r}")
    if end > data_bytes:
        raise HeaderError(f"tensor {name!r} ends at byte {end:,} of a data section of {data_bytes:,} bytes "
                          "(the file is shorter than its header says)")
    if end - begin != math.prod(shape) * dtype.itemsize:
        raise HeaderError(f"tensor {name!r} spans {end - begin} bytes, but shape {shape} of {info['dtype']} "
                          f"needs {math.prod(shape) * dtype.itemsize}")
    return dtype, tuple(shape), begin


def read_header(file: Path) -> dict[str, StoredTensor]:
    """Every tensor of a safetensors file, in header order, located but not read.

    Raises
    ------
    HeaderError
        The file is too short, the header is not valid JSON, an entry is malformed, a name
        appears twice, or a tensor lies beyond the end of the file.

    Examples
    --------
    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> path = Path(tempfile.mkdtemp()) / "m.safetensors"
    >>> save_file({"w": torch.arange(6.0).reshape(2, 3)}, path)
    >>> entry = read_header(path)["w"]
    >>> entry.shape, entry.read()[1].tolist()
    ((2, 3), [3.0, 4.0, 5.0])
    """
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise HeaderError("shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise HeaderError(f"the header length ({length:,} bytes) does not fit in the file")
        text = f.read(length)
    try:
        header = json.loads(text, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HeaderError(f"the header is not valid JSON ({error})") from None
    if not isinstance(header, dict):
        raise HeaderError("the header is not a JSON object")
    data_start = 8 + length
    entries = {}
    for name, info in header.items():
        if name == METADATA_KEY:
            continue
        dtype, shape, begin = _offsets(name, info, size - data_start)
        entries[name] = StoredTensor(file, data_start + begin, dtype, shape, contiguous_strides(shape))
    return entries
