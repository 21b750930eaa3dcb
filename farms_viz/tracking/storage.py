"""A table on disk with the parameters that made it: Parquet (with pyarrow) or CSV, written atomically.

Parquet files carry the parameters as JSON in the schema metadata (key ``farms_viz``); CSV
files in a first line ``# farms_viz {...}`` (read them elsewhere with
``pandas.read_csv(path, skiprows=1)``). A file is written to a temporary name beside the
target and renamed over it, so a crash never leaves half a file; symbolic links, devices
and folders are never written through, and neither is a file named as an input.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

METADATA_KEY = "farms_viz"
CSV_PREFIX = "# farms_viz "
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
# pandas 3 reads floats back exactly by default (and deprecates the option); pandas 2 needs asking
_ROUND_TRIP = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def parquet_available() -> bool:
    """Whether pyarrow (Parquet support) is installed."""
    return importlib.util.find_spec("pyarrow") is not None


def resolve_path(path: str | os.PathLike) -> tuple[Path, str]:
    """The file to write and its format: from the suffix, else Parquet if pyarrow is installed, else CSV.

    Examples
    --------
    >>> resolve_path("history.csv")
    (PosixPath('history.csv'), 'csv')
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix in SUFFIXES:
        kind = SUFFIXES[suffix]
    elif suffix:
        raise ValueError(f"unknown table format {path.suffix!r} for {path}: use a .parquet or .csv name "
                         "(or no suffix: Parquet when pyarrow is installed, else CSV)")
    else:
        kind = "parquet" if parquet_available() else "csv"
        path = path.with_name(path.name + ("." + kind))
    if kind == "parquet" and not parquet_available():
        raise ImportError(f"writing {path} needs pyarrow: pip install pyarrow, or save to a .csv name")
    return path, kind


def _check_target(path: Path, inputs: Iterable[Path]) -> None:
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link: farms_viz does not write through links; "
                         "give the link's target or another name")
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} exists and is not a regular file (a folder or a device); give a file name")
    if not path.parent.is_dir():
        raise ValueError(f"output folder does not exist: {path.parent}; create it first")
    resolved = path.resolve()
    for source in inputs:
        if Path(source).resolve() == resolved:
            raise ValueError(f"{path} is the file these results were read from; save to another name "
                             "(an input is never overwritten)")


def write_table(frame: pd.DataFrame, path: str | os.PathLike, metadata: dict[str, Any],
                inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Write ``frame`` and ``metadata`` (JSON-able) to ``path`` atomically; returns the path written.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> out = write_table(pd.DataFrame({"step": [0, 1]}), tempfile.mkdtemp() + "/h.csv", {"every": 1})
    >>> read_table(out)[1]
    {'every': 1}
    """
    path, kind = resolve_path(path)
    _check_target(path, [Path(p) for p in inputs])
    text = json.dumps(metadata, allow_nan=False, sort_keys=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never follows or reuses anything; mode 0o666 less the umask, like any new file
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if kind == "parquet":
            os.close(handle)
            _write_parquet(frame, temp, text)
        else:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(CSV_PREFIX + text + "\n")
                frame.to_csv(out, index=False)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def _write_parquet(frame: pd.DataFrame, path: Path, metadata: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY.encode(): metadata.encode()})
    pq.write_table(table, path)


def read_table(path: str | os.PathLike, text_columns: Iterable[str] = ()) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame and the metadata :func:`write_table` wrote to ``path``.

    ``text_columns`` are read as strings from a CSV (a layer named ``0`` stays ``"0"``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return _read_parquet(path)
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline()
        if not first.startswith(CSV_PREFIX):
            raise ValueError(f"{path} is not a farms_viz table: its first line does not start with "
                             f"{CSV_PREFIX.strip()!r} (Parquet files start with PAR1)")
        metadata = json.loads(first[len(CSV_PREFIX):])
        header = next(csv.reader([f.readline()]), [])
        f.seek(0)
        f.readline()
        text = [c for c in text_columns if c in header]
        # text cells are read as written (an empty note stays "", a layer named "NA" stays "NA");
        # only an empty numeric cell is a missing value
        missing = {c: [""] for c in header if c not in text}
        frame = pd.read_csv(f, dtype=dict.fromkeys(text, str), keep_default_na=False, na_values=missing,
                            **_ROUND_TRIP)
        return frame, metadata


def _read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    if not parquet_available():
        raise ImportError(f"{path} is a Parquet file: reading it needs pyarrow (pip install pyarrow)")
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY.encode())
    if raw is None:
        raise ValueError(f"{path} is a Parquet file without farms_viz metadata: not written by farms_viz")
    return table.to_pandas(), json.loads(raw)
