"""The small character language model: corpus splits, training, perplexity, calibration data, the cache, the script."""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import logging
import math
from pathlib import Path

import pytest
import torch

import farms_viz
from farms_viz.sources import language_model as lm

TINY = lm.LanguageModelConfig.tiny()
# Seconds to train: enough to test the cache, the file format and determinism, not quality.
MICRO = dataclasses.replace(TINY, steps=6, warmup_steps=2)
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_language_model.py"


@pytest.fixture(scope="module")
def splits():
    return lm.corpus_splits()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder, and a list that records every training run."""
    monkeypatch.setenv(lm.CACHE_ENV, str(tmp_path / "cache"))
    runs = []
    train = lm.train_language_model

    def counting(config=None, **kwargs):
        runs.append(config)
        return train(config, **kwargs)

    monkeypatch.setattr(lm, "train_language_model", counting)
    return tmp_path / "cache", runs


def _weights(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def _unigram_perplexity(train, held_out, vocab_size):
    """Held-out perplexity of the training split's character frequencies (add-one smoothed)."""
    counts = torch.bincount(train, minlength=vocab_size).double() + 1
    log_probability = torch.log(counts / counts.sum())
    return math.exp(-log_probability[held_out].mean().item())


# --- corpus and splits ---------------------------------------------------------------------------

def test_splits_are_disjoint_whole_chapters_covering_the_corpus(splits):
    chapters = lm.corpus_chapters()
    by_split = collections.defaultdict(list)
    for index, chapter in enumerate(chapters):
        by_split[lm.split_of_chapter(index)].append(chapter)
    decode = splits.tokenizer.decode
    assert decode(splits.calibration) == "\n\n".join(by_split["calibration"])
    assert decode(splits.held_out) == "\n\n".join(by_split["held_out"])
    assert len(splits.train) == len("\n\n".join(by_split["train"]))
    total = sum(len(chapter) for chapter in chapters)
    assert sum(len(chapter) for part in by_split.values() for chapter in part) == total
    # each chapter in exactly one split, about 90 / 5 / 5 of the text
    assert sum(len(part) for part in by_split.values()) == len(chapters) == 1189
    assert 0.04 < len(splits.held_out) / total < 0.06 and 0.04 < len(splits.calibration) / total < 0.06
    # spread over the whole book, not one end of it
    held_out_indices = [i for i in range(len(chapters)) if lm.split_of_chapter(i) == "held_out"]
    assert held_out_indices[0] < 20 and held_out_indices[-1] > len(chapters) - 21


def test_corpus_is_plain_english_without_verse_numbers(splits):
    text = splits.tokenizer.decode(splits.held_out[:50_000])
    assert not any(character.isdigit() for character in splits.tokenizer.alphabet)
    assert text.count(" the ") > 500
    assert len(lm.corpus_chapters()[0]) > 3000 and lm.corpus_chapters()[0].startswith("In the beginning")


def test_tokenizer_round_trips_and_rejects_unknown_characters(splits):
    tokenizer = splits.tokenizer
    text = "And God said, Let there be light: and there was light.\n"
    tokens = tokenizer.encode(text)
    assert tokens.dtype == torch.int64 and tokens.max() < tokenizer.vocab_size
    assert tokenizer.decode(tokens) == text
    with pytest.raises(ValueError, match=r"not in the tokenizer's alphabet: \['#', 'é'\]"):
        tokenizer.encode("café #")
    unicode = lm.CharacterTokenizer("zé a")
    assert unicode.encode("a é z").tolist() == [3, 2, 1, 2, 0]


# --- model, perplexity, calibration ---------------------------------------------------------------

def test_layers_have_the_documented_shapes_and_analyze_reads_them(splits):
    config = lm.LanguageModelConfig()  # the default model, untrained: shapes only
    model = lm.CharacterLanguageModel(config, splits.tokenizer.vocab_size)
    shapes = {name: tuple(module.weight.shape) for name, module in model.named_modules()
              if isinstance(module, (torch.nn.Linear, torch.nn.Embedding))}
    assert shapes["token_embedding"] == (63, 192) and shapes["head"] == (63, 192)
    assert shapes["position_embedding"] == (128, 192)
    assert shapes["blocks.3.attention.q"] == shapes["blocks.0.attention.out"] == (192, 192)
    assert shapes["blocks.0.mlp.up"] == (768, 192) and shapes["blocks.0.mlp.down"] == (192, 768)
    assert len(shapes) == 2 + 6 * config.n_layers + 1
    # 12 d^2 per block, the embeddings, the head and the norms
    assert sum(p.numel() for p in model.parameters()) == 4 * 12 * 192**2 + (63 + 128 + 63) * 192 + 9 * 2 * 192
    assert model.head.weight.data_ptr() != model.token_embedding.weight.data_ptr()  # untied
    tiny = lm.CharacterLanguageModel(TINY, splits.tokenizer.vocab_size)
    result = farms_viz.analyze(tiny, window=32, windows_per_dim=4, progress=False)
    assert result.layers == [name for name, module in tiny.named_modules()
                             if isinstance(module, (torch.nn.Linear, torch.nn.Embedding))]


def test_forward_is_causal():
    torch.manual_seed(0)
    model = lm.CharacterLanguageModel(TINY, vocab_size=10).eval()
    tokens = torch.randint(0, 10, (1, 20))
    changed = tokens.clone()
    changed[0, 12] = (tokens[0, 12] + 1) % 10
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.equal(a[0, :12], b[0, :12])
    assert not torch.allclose(a[0, 12:], b[0, 12:])
    with pytest.raises(ValueError, match="longer than the model's context"):
        model(torch.zeros(1, TINY.context + 1, dtype=torch.long))


def test_perplexity_is_exp_of_the_mean_next_token_loss(splits):
    torch.manual_seed(1)
    model = lm.CharacterLanguageModel(TINY, splits.tokenizer.vocab_size)
    tokens = splits.held_out[:1000]
    seq_len = 50
    losses = []
    with torch.no_grad():
        for start in range(0, 1000 - seq_len, seq_len):  # 19 whole windows of 51 tokens
            window = tokens[start:start + seq_len + 1]
            losses.append(torch.nn.functional.cross_entropy(model(window[None, :-1])[0], window[1:]))
    expected = math.exp(torch.stack(losses).double().mean().item())
    assert lm.perplexity(model, tokens, seq_len=seq_len, batch_size=4) == pytest.approx(expected, rel=1e-6)
    # an untrained model is close to uniform over the alphabet
    assert abs(lm.perplexity(model, tokens) - splits.tokenizer.vocab_size) < 3
    model.train()
    lm.perplexity(model, tokens)
    assert model.training  # the flag is restored
    with pytest.raises(ValueError, match="1-D tensor of integer"):
        lm.perplexity(model, tokens.float())


def test_calibration_batches_are_seeded_windows_of_the_calibration_split(splits):
    batches = lm.calibration_batches(8, 64, batch_size=2)
    assert len(batches) == 8
    assert all(b.shape == (2, 64) and b.dtype == torch.int64 for b in batches)
    calibration = splits.tokenizer.decode(splits.calibration)
    held_out = splits.tokenizer.decode(splits.held_out)
    for row in torch.cat(batches):
        text = splits.tokenizer.decode(row)
        assert text in calibration and text not in held_out
    assert all(torch.equal(a, b) for a, b in zip(batches, lm.calibration_batches(8, 64, batch_size=2)))
    assert not torch.equal(batches[0], lm.calibration_batches(8, 64, batch_size=2, seed=1)[0])
    model = lm.CharacterLanguageModel(TINY, splits.tokenizer.vocab_size)
    with torch.no_grad():
        assert model(batches[0]).shape == (2, 64, splits.tokenizer.vocab_size)
    with pytest.raises(ValueError, match="must be positive"):
        lm.calibration_batches(0, 64)


# --- training -------------------------------------------------------------------------------------

def test_training_is_deterministic_and_keeps_the_thread_count(splits):
    threads = torch.get_num_threads()
    first = lm.train_language_model(MICRO, num_threads=1, splits=splits)
    assert torch.get_num_threads() == threads
    second = lm.train_language_model(MICRO, num_threads=1, splits=splits)
    assert _same(first.state_dict(), second.state_dict())
    third = lm.train_language_model(dataclasses.replace(MICRO, seed=1), num_threads=1, splits=splits)
    assert not _same(first.state_dict(), third.state_dict())
    assert not first.training


@pytest.mark.slow
def test_tiny_model_learns_far_better_than_untrained_and_unigram(splits):
    untrained = lm.CharacterLanguageModel(TINY, splits.tokenizer.vocab_size)
    model = lm.train_language_model(TINY, num_threads=1, splits=splits)
    held_out = splits.held_out[:40_000]
    before, after = lm.perplexity(untrained, held_out), lm.perplexity(model, held_out)
    unigram = _unigram_perplexity(splits.train, held_out, splits.tokenizer.vocab_size)
    assert before > 50 and unigram > 15
    assert after < 0.6 * unigram, (before, unigram, after)


# --- the cache ------------------------------------------------------------------------------------

def test_second_load_reads_the_cache_instead_of_training(cache):
    folder, runs = cache
    first = lm.load_language_model(MICRO, num_threads=1)
    files = list(folder.glob("language_model-*.pt"))
    assert len(runs) == 1 and len(files) == 1
    assert not list(folder.glob(".*.tmp"))  # the temporary file was moved into place
    second = lm.load_language_model(MICRO)
    assert len(runs) == 1
    assert _same(first.state_dict(), second.state_dict()) and second is not first
    lm.load_language_model(dataclasses.replace(MICRO, seed=1), num_threads=1)  # another config, another file
    assert len(runs) == 2 and len(list(folder.glob("language_model-*.pt"))) == 2


def test_a_corrupt_cache_file_is_retrained_and_replaced(cache, caplog):
    folder, runs = cache
    lm.load_language_model(MICRO, num_threads=1)
    (path,) = folder.glob("language_model-*.pt")
    path.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING, logger=lm.__name__):
        model = lm.load_language_model(MICRO, num_threads=1)
    assert len(runs) == 2 and "unreadable cached language model" in caplog.text
    assert _same(lm.read_language_model(path).state_dict(), model.state_dict())
    lm.load_language_model(MICRO)
    assert len(runs) == 2


def test_a_cache_entry_that_is_a_link_is_never_replaced(cache, tmp_path):
    folder, runs = cache
    lm.load_language_model(MICRO, num_threads=1)
    (path,) = folder.glob("language_model-*.pt")
    target = tmp_path / "not_ours.bin"
    target.write_bytes(b"someone else's file")
    path.unlink()
    path.symlink_to(target)
    model = lm.load_language_model(MICRO, num_threads=1)
    assert len(runs) == 2 and isinstance(model, lm.CharacterLanguageModel)
    assert path.is_symlink() and target.read_bytes() == b"someone else's file"


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(lm.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert lm.cache_folder() == tmp_path / "xdg" / "farms_viz"
    monkeypatch.setenv(lm.CACHE_ENV, str(tmp_path / "mine"))
    assert lm.cache_folder() == tmp_path / "mine"
    sha = "0" * 64
    assert lm.cache_key(TINY, sha) != lm.cache_key(MICRO, sha) != lm.cache_key(MICRO, "1" * 64)


# --- saving and the script ------------------------------------------------------------------------

def test_save_refuses_existing_files_links_and_folders(tmp_path, splits):
    model = lm.CharacterLanguageModel(TINY, splits.tokenizer.vocab_size)
    path = lm.save_language_model(model, tmp_path / "lm.pt")
    assert _same(lm.read_language_model(path).state_dict(), model.state_dict())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        lm.save_language_model(model, path)
    link = tmp_path / "link.pt"
    link.symlink_to(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="symbolic link"):
        lm.save_language_model(model, link, overwrite=True)
    with pytest.raises(FileExistsError, match="not a regular file"):
        lm.save_language_model(model, tmp_path, overwrite=True)
    assert path.read_bytes() == before
    with torch.no_grad():
        model.head.weight.zero_()
    lm.save_language_model(model, path, overwrite=True)
    assert torch.count_nonzero(lm.read_language_model(path).head.weight) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.pt", "lm.pt"]  # no temporary left
    with pytest.raises(ValueError, match="not a farms_viz language model"):
        torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
        lm.read_language_model(tmp_path / "other.pt")


def _script():
    spec = importlib.util.spec_from_file_location("train_language_model_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_trains_saves_and_refuses_to_overwrite(tmp_path, capsys):
    script = _script()
    path = tmp_path / "lm.pt"
    assert script.main([str(path), "--tiny", "--steps", "3", "--threads", "1"]) == 0
    assert lm.read_language_model(path).config.steps == 3
    assert "held-out perplexity" in capsys.readouterr().out
    before = path.read_bytes()
    assert script.main([str(path), "--tiny", "--steps", "3"]) == 1
    assert "--force" in capsys.readouterr().err and path.read_bytes() == before
    link = tmp_path / "link.pt"
    link.symlink_to(path)
    assert script.main([str(link), "--tiny", "--steps", "3", "--force"]) == 1
    assert "symbolic link" in capsys.readouterr().err and link.is_symlink() and path.read_bytes() == before
    assert script.main([str(path), "--tiny", "--steps", "4", "--threads", "1", "--force"]) == 0
    assert lm.read_language_model(path).config.steps == 4
