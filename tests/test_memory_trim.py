"""The heap is given back only once the resident size has grown by the slack since the last trim."""

from __future__ import annotations

import pytest

from farms_viz.engine import memory as _memory


def test_trims_only_after_the_slack_has_been_used(monkeypatch):
    resident = [500 * 2**20]
    trims = []

    def fake_trim(pad):
        trims.append(pad)
        resident[0] -= 10 * 2**20  # the trim gives some pages back
        return 1

    monkeypatch.setattr(_memory, "_TRIM", fake_trim)
    monkeypatch.setattr(_memory, "_resident_bytes", lambda: resident[0])
    monkeypatch.setattr(_memory, "_resident_after_trim", 0)
    _memory.release_free_memory()  # first call: no reference yet, trims and records one
    assert len(trims) == 1 and _memory._resident_after_trim == 490 * 2**20
    resident[0] += _memory.HEAP_SLACK_BYTES  # grown by exactly the slack: kept for reuse
    _memory.release_free_memory()
    assert len(trims) == 1
    resident[0] += 1
    _memory.release_free_memory()
    assert len(trims) == 2


def test_force_trims_within_the_slack(monkeypatch):
    trims = []
    monkeypatch.setattr(_memory, "_TRIM", lambda pad: trims.append(pad) or 1)
    monkeypatch.setattr(_memory, "_resident_bytes", lambda: 100 * 2**20)
    monkeypatch.setattr(_memory, "_resident_after_trim", 100 * 2**20)
    _memory.release_free_memory()
    assert trims == []
    _memory.release_free_memory(force=True)
    assert trims == [0]


@pytest.mark.skipif(_memory._TRIM is None, reason="glibc only")
def test_real_trim_runs_and_reads_the_resident_size():
    _memory.release_free_memory()
    assert _memory._resident_bytes() > 0
