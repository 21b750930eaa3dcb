"""Checkpoints on disk: every format opens lazily, every bad file gives a clear CheckpointError."""

from __future__ import annotations

import gc
import json
import os
import pickle
import struct
import sys
import threading
import time
import weakref
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch
from safetensors.torch import save_file

import farms_viz
from farms_viz.sources.checkpoints import CheckpointError, LazyStateDict, open_checkpoint


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "embed.weight": torch.randn(300, 32, generator=g),
        "layers.2.proj.weight": torch.randn(96, 48, generator=g),
        "layers.2.proj.bias": torch.randn(96, generator=g),
        "layers.10.proj.weight": torch.randn(48, 96, generator=g),
        "conv.weight": torch.randn(24, 16, 3, 3, generator=g),
        "norm.weight": torch.ones(48),
    }


def _frame(model) -> pd.DataFrame:
    return farms_viz.analyze(model, window=16, windows_per_dim=3, progress=False).to_pandas()


def _in_order_of(lazy: LazyStateDict, state: dict) -> dict:
    return {k: state[k] for k in lazy}


def _same_tensors(lazy: LazyStateDict, state: dict[str, torch.Tensor]) -> None:
    assert set(lazy) == set(state)
    for key, tensor in state.items():
        assert torch.equal(lazy[key], tensor), key


# --- formats ---------------------------------------------------------------------------

def test_safetensors_file_opens_lazily_and_analyses_like_the_state_dict(tmp_path):
    state = _state()
    save_file(state, tmp_path / "model.safetensors")
    lazy = open_checkpoint(tmp_path / "model.safetensors")
    assert lazy.format == "safetensors" and lazy.reads == 0 and len(lazy) == len(state)
    _same_tensors(lazy, state)
    pd.testing.assert_frame_equal(_frame(lazy), _frame(_in_order_of(lazy, state)))


def test_safetensors_keys_come_in_natural_order(tmp_path):
    save_file(_state(), tmp_path / "model.safetensors")
    keys = list(open_checkpoint(tmp_path / "model.safetensors"))
    assert keys.index("layers.2.proj.weight") < keys.index("layers.10.proj.weight")


def test_safetensors_keeps_the_stored_dtype(tmp_path):
    save_file({"w.weight": torch.randn(64, 32).to(torch.bfloat16)}, tmp_path / "half.safetensors")
    assert open_checkpoint(tmp_path / "half.safetensors")["w.weight"].dtype == torch.bfloat16
    assert len(farms_viz.analyze(open_checkpoint(tmp_path / "half.safetensors"), window=16,
                                 progress=False).layers) == 1


def _shard(state: dict, names: list[str]) -> dict:
    return {k: state[k] for k in names}


def test_sharded_folder_with_index(tmp_path):
    state = _state()
    keys = list(state)
    save_file(_shard(state, keys[:3]), tmp_path / "model-00001-of-00002.safetensors")
    save_file(_shard(state, keys[3:]), tmp_path / "model-00002-of-00002.safetensors")
    weight_map = {k: f"model-0000{1 if i < 3 else 2}-of-00002.safetensors" for i, k in enumerate(keys)}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (tmp_path / "config.json").write_text("{}")
    lazy = open_checkpoint(tmp_path)
    assert lazy.format == "safetensors-sharded"
    _same_tensors(lazy, state)
    pd.testing.assert_frame_equal(_frame(lazy), _frame(_in_order_of(lazy, state)))


def test_sharded_folder_without_index_reads_every_safetensors_file(tmp_path):
    state = _state()
    keys = list(state)
    save_file(_shard(state, keys[:2]), tmp_path / "a.safetensors")
    save_file(_shard(state, keys[2:]), tmp_path / "b.safetensors")
    _same_tensors(open_checkpoint(tmp_path), state)


def test_index_naming_a_missing_shard_is_an_error(tmp_path):
    save_file({"a.weight": torch.randn(16, 16)}, tmp_path / "model-00001-of-00002.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(CheckpointError, match="missing: model-00002-of-00002"):
        open_checkpoint(tmp_path)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_torch_state_dict_file(tmp_path, suffix):
    state = _state()
    torch.save(state, tmp_path / f"model{suffix}")
    lazy = open_checkpoint(tmp_path / f"model{suffix}")
    assert lazy.format == "torch" and list(lazy) == list(state)  # the state dict's (model) order
    _same_tensors(lazy, state)
    pd.testing.assert_frame_equal(_frame(lazy), _frame(state))


@pytest.mark.parametrize("wrap", [
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
    lambda sd: {"epoch": 1, "model": {"state_dict": sd}},
    lambda sd: {"step": torch.tensor(5), "model": sd},
], ids=["state_dict", "model", "nested", "beside-a-tensor"])
def test_torch_checkpoint_wrappers_are_unwrapped(tmp_path, wrap):
    state = _state()
    torch.save(wrap(state), tmp_path / "checkpoint.pt")
    _same_tensors(open_checkpoint(tmp_path / "checkpoint.pt"), state)


def test_torch_tensors_are_memory_mapped(tmp_path):
    torch.save(_state(), tmp_path / "model.pt")
    lazy = open_checkpoint(tmp_path / "model.pt")
    first, again = lazy["embed.weight"], lazy["embed.weight"]
    # each lookup maps the file afresh: two lookups, two mappings, no cached copy
    assert first.untyped_storage().data_ptr() != again.untyped_storage().data_ptr()
    assert lazy.reads == 2


def test_a_torch_file_beyond_plain_tensors_is_read_whole_and_its_odd_tensors_skipped(tmp_path):
    dense = torch.randn(32, 32)
    torch.save({"sparse.weight": torch.eye(32).to_sparse(), "dense.weight": dense}, tmp_path / "mixed.pt")
    lazy = open_checkpoint(tmp_path / "mixed.pt")
    result = farms_viz.analyze(lazy, window=16, progress=False)
    assert result.layers == ["dense"] and "sparse" in {s.name: s.reason for s in result.skipped}["sparse"]
    assert torch.equal(lazy["dense.weight"], dense)


def test_legacy_torch_format_is_read_whole_with_a_warning(tmp_path):
    state = _state()
    torch.save(state, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.warns(UserWarning, match="legacy"):
        lazy = open_checkpoint(tmp_path / "old.pt")
    _same_tensors(lazy, state)


def test_format_is_recognised_from_content_not_name(tmp_path):
    save_file({"a.weight": torch.randn(16, 16)}, tmp_path / "weights.bin")
    assert open_checkpoint(tmp_path / "weights.bin").format == "safetensors"
    torch.save({"a.weight": torch.randn(16, 16)}, tmp_path / "weights.data")
    assert open_checkpoint(tmp_path / "weights.data").format == "torch"


# --- bad input -------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.safetensors"):
        open_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("name", ["empty.safetensors", "empty.pt"])
def test_empty_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty \\(0 bytes\\)"):
        open_checkpoint(tmp_path / name)


def test_truncated_safetensors(tmp_path):
    save_file(_state(), tmp_path / "full.safetensors")
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors.*Re-download"):
        open_checkpoint(tmp_path / "cut.safetensors")


def test_corrupt_safetensors_header(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        open_checkpoint(tmp_path / "junk.safetensors")


def test_truncated_torch_file(tmp_path):
    torch.save(_state(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated torch checkpoint"):
        open_checkpoint(tmp_path / "cut.pt")


class _RunsCode:
    """Unpickling this runs code: it would create ``marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_pickle_that_would_run_code_is_refused_and_not_run(tmp_path, how):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save({"w.weight": torch.randn(8, 8), "payload": _RunsCode(str(marker))}, path)
    else:
        path.write_bytes(pickle.dumps({"payload": _RunsCode(str(marker))}, protocol=2))
    with pytest.raises(CheckpointError, match="could execute code"):
        open_checkpoint(path)
    assert not marker.exists()


def test_whole_pickled_module_is_refused(tmp_path):
    torch.save(torch.nn.Linear(8, 8), tmp_path / "module.pt")
    with pytest.raises(CheckpointError, match="state_dict"):
        open_checkpoint(tmp_path / "module.pt")


def test_torch_file_without_a_state_dict(tmp_path):
    torch.save([torch.randn(4, 4)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        open_checkpoint(tmp_path / "list.pt")
    torch.save({}, tmp_path / "empty_dict.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        open_checkpoint(tmp_path / "empty_dict.pt")


def test_unknown_format(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x04onnx" + os.urandom(64))
    with pytest.raises(CheckpointError, match="unknown checkpoint format.*Expected a .safetensors file"):
        open_checkpoint(tmp_path / "model.onnx")


def test_folder_with_no_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no weights in folder"):
        open_checkpoint(tmp_path)


def test_folder_with_only_torch_files_points_at_them(tmp_path):
    torch.save(_state(), tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin.*pass one of them directly"):
        open_checkpoint(tmp_path)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# --- streaming -------------------------------------------------------------------------

def test_each_weight_is_read_once_and_released_once_analysed(tmp_path, monkeypatch):
    """The model is never materialised: a layer's tensor (and its mapping) is gone once done."""
    state = {f"blocks.{i}.weight": torch.randn(64, 48) for i in range(6)}
    state.update({f"blocks.{i}.bias": torch.randn(64) for i in range(6)})
    save_file(state, tmp_path / "model.safetensors")
    lazy = open_checkpoint(tmp_path / "model.safetensors")

    read = LazyStateDict.__getitem__
    handed_out: dict[str, weakref.ref] = {}

    def tracked(self, key):
        tensor = read(self, key)
        handed_out[key] = weakref.ref(tensor)
        return tensor

    monkeypatch.setattr(LazyStateDict, "__getitem__", tracked)
    still_alive_when_done: list[int] = []

    def progress(done, total, layer):
        gc.collect()
        finished = [f"blocks.{i}.weight" for i in range(done)]
        still_alive_when_done.append(sum(handed_out[k]() is not None for k in finished))

    farms_viz.analyze(lazy, window=16, progress=progress)
    assert lazy.reads == 6 and sorted(handed_out) == sorted(k for k in state if k.endswith("weight"))
    assert still_alive_when_done == [0] * 6


@pytest.mark.slow
def test_peak_memory_stays_near_one_layer(tmp_path):
    layers, rows, cols = 16, 1024, 4096  # 16 x 16 MiB float32 = 256 MiB checkpoint
    g = torch.Generator().manual_seed(0)
    save_file({f"layers.{i}.weight": torch.randn(rows, cols, generator=g) for i in range(layers)},
              tmp_path / "big.safetensors")
    size = (tmp_path / "big.safetensors").stat().st_size
    lazy = open_checkpoint(tmp_path / "big.safetensors")
    process = psutil.Process()
    gc.collect()
    baseline = process.memory_info().rss
    peak = baseline
    running = True

    def sample():
        nonlocal peak
        while running:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        farms_viz.analyze(lazy, method="farms", window=64, windows_per_dim=2, progress=False)
    finally:
        running = False
        sampler.join()
    # all in memory would add the whole file; streaming adds a few copies of one 16 MiB layer
    assert peak - baseline < 0.4 * size, f"peak {(peak - baseline) / 2**20:.0f} MiB of {size / 2**20:.0f} MiB"


# --- reading by position ---------------------------------------------------------------

def _many(count: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(count)
    return {f"layers.{i}.weight": torch.randn(4, 4, generator=g) for i in range(count)}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_thousands_of_small_tensors_are_read_in_linear_time(tmp_path, suffix):
    """Reading every tensor once costs about the same per tensor whatever their count
    (re-parsing the index per tensor made 1,200 tensors take minutes)."""
    state = _many(3000)
    path = tmp_path / f"model{suffix}"
    torch.save(state, path) if suffix == ".pt" else save_file(state, path)
    start = time.perf_counter()
    lazy = open_checkpoint(path)
    read = {key: lazy[key] for key in lazy}
    seconds = time.perf_counter() - start
    assert len(read) == 3000 and torch.equal(read["layers.2999.weight"], state["layers.2999.weight"])
    assert seconds < 20, f"{seconds:.1f} s for 3000 tensors"


def test_a_torch_file_is_unpickled_once_not_per_tensor(tmp_path, monkeypatch):
    state = _state()
    torch.save(state, tmp_path / "model.pt")
    lazy = open_checkpoint(tmp_path / "model.pt")

    def no_more_unpickling(*args, **kwargs):
        raise AssertionError("the checkpoint's pickle was parsed again")

    monkeypatch.setattr(torch, "load", no_more_unpickling)
    monkeypatch.setattr(pickle, "Unpickler", no_more_unpickling)
    monkeypatch.setattr(pickle, "load", no_more_unpickling)
    monkeypatch.setattr(pickle, "loads", no_more_unpickling)
    _same_tensors(lazy, state)


def _mapped_bytes(path) -> int:
    """Bytes of this process's address space mapped from ``path`` (Linux)."""
    total, target = 0, str(path)
    with open("/proc/self/maps") as maps:
        for line in maps:
            if line.rstrip("\n").endswith(target):
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                total += end - start
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux's /proc/self/maps")
def test_held_tensors_map_no_more_of_the_file_than_they_hold(tmp_path):
    state = {f"layers.{i}.weight": torch.randn(64, 64) for i in range(40)}
    save_file(state, tmp_path / "model.safetensors")
    lazy = open_checkpoint(tmp_path / "model.safetensors")
    held = [lazy[key] for key in lazy]
    page = os.sysconf("SC_PAGE_SIZE")
    budget = sum(t.numel() * t.element_size() + 2 * page for t in held)
    assert _mapped_bytes(tmp_path / "model.safetensors") <= budget  # not one whole-file mapping per tensor


def _sparse_safetensors(path, size: int, tensors: dict[str, torch.Tensor]) -> None:
    """A safetensors file of ``size`` bytes whose first and last tensors hold data and whose
    middle is a hole (a 1-D byte tensor), written sparsely: it takes almost no disk."""
    (first, a), (last, b) = tensors.items()
    a_bytes, b_bytes = a.numpy().tobytes(), b.numpy().tobytes()
    header: dict = {}
    text = b""
    for _ in range(2):  # the header's own length shifts the offsets: settle it
        data = size - 8 - len(text)
        gap = data - len(a_bytes) - len(b_bytes)
        header = {
            first: {"dtype": "F32", "shape": list(a.shape), "data_offsets": [0, len(a_bytes)]},
            "padding.bytes": {"dtype": "U8", "shape": [gap], "data_offsets": [len(a_bytes), len(a_bytes) + gap]},
            last: {"dtype": "F32", "shape": list(b.shape), "data_offsets": [data - len(b_bytes), data]},
        }
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + a_bytes)
        f.seek(size - len(b_bytes))
        f.write(b_bytes)


@pytest.mark.skipif(sys.platform != "linux", reason="sparse files and RAM size as on Linux")
def test_a_safetensors_file_larger_than_ram_is_analysed(tmp_path):
    memory = psutil.virtual_memory().total + psutil.swap_memory().total
    size = memory + 2**30
    g = torch.Generator().manual_seed(3)
    tensors = {"first.weight": torch.randn(64, 48, generator=g), "last.weight": torch.randn(48, 64, generator=g)}
    path = tmp_path / "huge.safetensors"
    try:
        _sparse_safetensors(path, size, tensors)
        if path.stat().st_blocks * 512 > 2**26:
            pytest.skip("this file system does not keep sparse files sparse")
        lazy = open_checkpoint(path)
        assert path.stat().st_size > memory
        assert torch.equal(lazy["last.weight"], tensors["last.weight"])
        expected = _frame(tensors)
        pd.testing.assert_frame_equal(_frame(lazy), expected)
    finally:
        path.unlink(missing_ok=True)


# --- sharded folders: confined, unambiguous ----------------------------------------------

def _index(folder, weight_map) -> None:
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.mark.parametrize("where", ["parent", "absolute", "etc-passwd", "down-and-up"])
def test_index_paths_outside_the_folder_are_refused(tmp_path, where):
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({"a.weight": torch.randn(16, 16)}, folder / "model-00001-of-00002.safetensors")
    save_file({"b.weight": torch.randn(16, 16)}, tmp_path / "outside.safetensors")
    shard = {"parent": "../outside.safetensors", "absolute": str(tmp_path / "outside.safetensors"),
             "etc-passwd": "/etc/passwd", "down-and-up": "sub/../../outside.safetensors"}[where]
    _index(folder, {"a.weight": "model-00001-of-00002.safetensors", "b.weight": shard})
    outside = r"weight_map\['b.weight'\] in .*model.safetensors.index.json names .*outside the folder"
    with pytest.raises(CheckpointError, match=outside):
        open_checkpoint(folder)


def test_symlinked_shards_as_in_the_hugging_face_cache_keep_working(tmp_path):
    """snapshots/<rev>/*.safetensors are links into ../../blobs: the index names them by file name."""
    state = _state()
    keys = list(state)
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc123"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    for i, (name, part) in enumerate(zip(names, (keys[:3], keys[3:]))):
        save_file(_shard(state, part), blobs / f"blob{i}")
        (snapshot / name).symlink_to(Path("..", "..", "blobs", f"blob{i}"))
    (blobs / "index").write_text(json.dumps({"weight_map": {k: names[0 if i < 3 else 1] for i, k in enumerate(keys)}}))
    (snapshot / "model.safetensors.index.json").symlink_to(Path("..", "..", "blobs", "index"))
    _same_tensors(open_checkpoint(snapshot), state)


@pytest.mark.parametrize("with_index", [True, False])
def test_a_tensor_in_two_shards_is_an_error_naming_both(tmp_path, with_index):
    save_file({"a.weight": torch.randn(16, 16), "b.weight": torch.randn(16, 16)}, tmp_path / "one.safetensors")
    save_file({"b.weight": torch.randn(16, 16)}, tmp_path / "two.safetensors")
    if with_index:
        _index(tmp_path, {"a.weight": "one.safetensors", "b.weight": "two.safetensors"})
    with pytest.raises(CheckpointError, match=r"'b.weight' is in both .*one.safetensors and .*two.safetensors"):
        open_checkpoint(tmp_path)


# --- unclear inputs get errors that say what to do ---------------------------------------

@pytest.mark.parametrize("weight_map, message", [
    (["model.safetensors"], r"weight_map .* must be a JSON object .* got a list"),
    ({"a.weight": 5}, r"weight_map\['a.weight'\] .* must be a shard file name .* got 5"),
    ({"a.weight": None}, r"weight_map\['a.weight'\] .* must be a shard file name .* got None"),
    ({}, r"weight_map .* is empty"),
])
def test_a_malformed_index_is_an_error_naming_the_index(tmp_path, weight_map, message):
    save_file({"a.weight": torch.randn(16, 16)}, tmp_path / "model.safetensors")
    _index(tmp_path, weight_map)
    with pytest.raises(CheckpointError, match=message) as info:
        open_checkpoint(tmp_path)
    assert "model.safetensors.index.json" in str(info.value) and "delete" in str(info.value)


def test_a_torch_file_named_safetensors_opens_with_a_warning(tmp_path):
    state = _state()
    torch.save(state, tmp_path / "model.safetensors")
    with pytest.warns(UserWarning, match=r"model.safetensors is a torch checkpoint.*rename it"):
        lazy = open_checkpoint(tmp_path / "model.safetensors")
    assert lazy.format == "torch"
    _same_tensors(lazy, state)


def test_a_torch_shard_named_safetensors_in_a_folder_is_an_error_saying_what_to_do(tmp_path):
    save_file({"a.weight": torch.randn(16, 16)}, tmp_path / "model-1.safetensors")
    torch.save({"b.weight": torch.randn(16, 16)}, tmp_path / "model-2.safetensors")
    with pytest.raises(CheckpointError, match=r"model-2.safetensors is a torch checkpoint.*rename it to .pt"):
        open_checkpoint(tmp_path)


def test_non_string_keys_in_a_torch_state_dict_are_an_error_naming_the_key(tmp_path):
    torch.save({0: torch.randn(16, 16), 1: torch.randn(16, 16)}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"model.pt.*keys must be layer names \(str\); found 0 \(int\)"):
        open_checkpoint(tmp_path / "model.pt")


def test_duplicate_names_in_a_safetensors_header_are_an_error(tmp_path):
    text = (b'{"a.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
            b'"a.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}}')
    text += b" " * (-len(text) % 8)
    (tmp_path / "dup.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + bytes(32))
    with pytest.raises(CheckpointError, match=r"dup.safetensors.*'a.weight' appears twice"):
        open_checkpoint(tmp_path / "dup.safetensors")
