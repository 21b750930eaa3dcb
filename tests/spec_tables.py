"""The worked values of docs/spec.md, read from its marked tables: the one place they are written.

A table follows a line ``<!-- table: NAME -->``; cells holding several numbers separate them with
spaces; "-" is an empty cell.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

SPEC = Path(__file__).resolve().parent.parent / "docs" / "spec.md"


def _cell(text: str) -> object:
    text = text.strip()
    if text == "-":
        return None
    parts = text.split()
    numbers = []
    for part in parts:
        try:
            numbers.append(int(part) if re.fullmatch(r"-?\d+", part) else float(part))
        except ValueError:
            return text
    return numbers[0] if len(numbers) == 1 else numbers


@functools.cache
def _tables() -> dict[str, list[dict]]:
    tables: dict[str, list[dict]] = {}
    lines = SPEC.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = re.fullmatch(r"<!-- table: ([\w-]+) -->", line.strip())
        if not match:
            continue
        rows = []
        for row in lines[i + 1:]:
            if not row.startswith("|"):
                break
            rows.append(row.strip().strip("|").split("|"))
        header = [h.strip() for h in rows[0]]
        tables[match.group(1)] = [dict(zip(header, map(_cell, r))) for r in rows[2:]]
    return tables


def table(name: str) -> list[dict]:
    """The rows of the table marked ``name`` in docs/spec.md, as dicts keyed by the header."""
    try:
        return _tables()[name]
    except KeyError:
        raise KeyError(f"docs/spec.md has no table marked {name!r}; it has {sorted(_tables())}") from None


def as_list(value: object) -> list:
    """A cell as a list (a single number becomes a one-element list)."""
    return value if isinstance(value, list) else [value]
