"""Input statistics of Linear-like layers from calibration data (SPEC section 10).

Activation-aware pruners (Wanda, SparseGPT) need, for each layer, statistics of the inputs X
(tokens x in-features) it sees on a few batches of real data: the per-feature squared norms
sum_t X_tj^2 (Wanda) or the Hessian X^T X (SparseGPT). They are collected with forward
pre-hooks, one layer (or one group of layers that read the very same input tensor, such as an
attention block's query/key/value) at a time, in the order the forward pass reaches them.

Later layers see the pruned outputs of earlier ones, as in the Wanda and SparseGPT papers:
:func:`layer_statistics` is a generator, and the caller prunes each group before asking for the
next one, whose calibration pass then runs through the partly pruned model. Keeping only one
layer's statistics in memory (no cached activations, no dense copy) means one calibration pass
per group whichever inputs are used, so the sequential reading costs nothing extra over the
dense one. Each pass stops as soon as the group's input has been seen (when the calibration is
an iterable of batches and the layer runs once per batch), so on average it costs about half a
forward pass; one more full pass (the census) first finds the execution order, the groups, and
any layer the calibration never reaches.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..engine.names import ROOT_NAME, named_modules, resolve_layer

logger = logging.getLogger(__name__)

# Where a layer's input comes from: the first argument of its own forward ("input"), the
# query/key/value argument of an nn.MultiheadAttention (packed in_proj rows), or the attention
# context an nn.MultiheadAttention feeds to its out_proj through the functional API ("context").
_ATTENTION_ARGUMENTS = {"query": 0, "key": 1, "value": 2}

# Execution order of the targets one module serves (an attention's q/k/v before its out_proj).
_SOURCE_ORDER = {"query": 0, "key": 1, "value": 2, "input": 3, "context": 4}

Calibration = Iterable | Callable[[nn.Module], object] | torch.Tensor | Mapping


@dataclass(frozen=True, eq=False)
class CalibrationTarget:
    """One layer to calibrate: the module whose forward sees its input, and its weight.

    ``weight`` is a view (out_features, in_features) into the model's parameter: writing into it
    prunes the model (for Hugging Face's ``Conv1D``, stored in x out, it is the transposed view).
    ``source`` is ``"input"``, ``"query"``, ``"key"``, ``"value"`` or ``"context"``.
    """

    name: str
    module: nn.Module
    source: str
    weight: torch.Tensor
    parameter: str

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])


@dataclass
class InputStatistics:
    """What one calibration pass saw at a layer's input (float64, on the layer's device).

    tokens : number of input rows (every position of every batch, padding included).
    squared_norms : sum over tokens of X_j^2 per input feature j (Wanda's ||X_j||_2 squared).
    hessian : X^T X (in x in), or None when not asked for.
    """

    tokens: int
    squared_norms: torch.Tensor
    hessian: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).to(self.squared_norms.device, torch.float64)
        self.tokens += x.shape[0]
        self.squared_norms += x.square().sum(0)
        if self.hessian is not None:
            self.hessian.addmm_(x.T, x)


def _is_hf_conv1d(module: nn.Module) -> bool:
    # Hugging Face's Conv1D (GPT-2 style): a Linear whose weight is stored (in, out).
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def _refusal(name: str, module: nn.Module) -> ValueError:
    kind = type(module).__name__
    if isinstance(module, nn.Embedding):
        why = "its input is token ids, not features, so activation norms do not apply"
    elif isinstance(module, nn.modules.conv._ConvNd):
        why = "convolutions are not supported by the activation-aware pruners"
    elif isinstance(module, nn.MultiheadAttention):
        return ValueError(f"layer {name!r} is an nn.MultiheadAttention: name its parts instead, "
                          f"'{name}.q', '{name}.k', '{name}.v' and '{name}.out_proj'")
    else:
        why = "only nn.Linear, Hugging Face Conv1D and nn.MultiheadAttention parts are supported"
    return ValueError(f"layer {name!r} ({kind}) cannot be pruned with calibration data: {why}. "
                      "Prune it with farms_viz.prune.magnitude, or leave it out of the sparsities")


def _target(modules: Mapping[str, nn.Module], name: str) -> CalibrationTarget:
    module = modules.get(name)
    if module is not None:
        parent_name, _, own = name.rpartition(".")
        parent = modules.get(parent_name or ROOT_NAME) if name != ROOT_NAME else None
        if isinstance(module, nn.Linear):
            if isinstance(parent, nn.MultiheadAttention) and own == "out_proj" and parent.out_proj is module:
                # nn.MultiheadAttention applies out_proj through F.linear, never calling the module.
                return CalibrationTarget(name, parent, "context", module.weight.data, "weight")
            return CalibrationTarget(name, module, "input", module.weight.data, "weight")
        if _is_hf_conv1d(module):
            return CalibrationTarget(name, module, "input", module.get_parameter("weight").data.T, "weight")
        raise _refusal(name, module)
    parent_name, _, part = name.rpartition(".")
    attention = modules.get(parent_name)
    if part in ("q", "k", "v") and isinstance(attention, nn.MultiheadAttention):
        source = {"q": "query", "k": "key", "v": "value"}[part]
        if attention.in_proj_weight is not None:
            e = attention.embed_dim
            i = "qkv".index(part)
            return CalibrationTarget(name, attention, source, attention.in_proj_weight.data[i * e:(i + 1) * e],
                                     "in_proj_weight")
        parameter = f"{part}_proj_weight"
        return CalibrationTarget(name, attention, source, getattr(attention, parameter).data, parameter)
    resolve_layer(modules, name).weight()  # raises the analysis's "no layer ..." message with similar names
    raise ValueError(f"no layer {name!r} in the model")  # pragma: no cover (the line above raises)


def calibration_targets(model: nn.Module, names: Iterable[str]) -> list[CalibrationTarget]:
    """Resolve layer names (as the analysis names them) to :class:`CalibrationTarget` s.

    Names are module qualified names (the root module is ``"(model)"``), and ``<attention>.q``,
    ``.k``, ``.v`` for the query/key/value rows of an ``nn.MultiheadAttention``. Raises a
    ``ValueError`` naming the layer for unknown names, layers without calibration support
    (embeddings, convolutions) and two names for the same (tied) weight.

    Examples
    --------
    >>> import torch.nn as nn
    >>> targets = calibration_targets(nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)), ["2", "0"])
    >>> [(t.name, t.in_features) for t in targets]
    [('2', 4), ('0', 6)]
    """
    modules = named_modules(model)
    targets = []
    regions: dict[tuple, str] = {}
    for name in names:
        target = _target(modules, name)
        w = target.weight
        region = (w.untyped_storage().data_ptr(), w.storage_offset(), tuple(w.shape), w.stride())
        if region in regions:
            raise ValueError(f"layers {regions[region]!r} and {name!r} are the same weight (tied): "
                             "give it one sparsity, under one name")
        regions[region] = name
        targets.append(target)
    return targets


class _StopForward(BaseException):
    """Raised by a hook once the layer of interest has its input; the rest of the batch is skipped.

    A BaseException so that a model's own ``except Exception`` cannot swallow it.
    """


def reiterable(calibration: Calibration) -> Calibration:
    """Check ``calibration`` and return it in a form that can be run once per layer group.

    A single tensor or dict becomes a list of one batch, a one-shot iterator (a generator) is read
    into a list, a callable ``f(model)`` or a re-iterable collection (a list, a DataLoader) is
    returned as it is. Anything else raises a ``TypeError`` that says what to give.

    Examples
    --------
    >>> import torch
    >>> len(reiterable(torch.zeros(2, 3))), len(reiterable(x for x in [torch.zeros(2, 3)] * 3))
    (1, 3)
    """
    if isinstance(calibration, (torch.Tensor, Mapping)):
        return [calibration]
    if isinstance(calibration, (str, bytes)) or not (isinstance(calibration, Iterable) or callable(calibration)):
        raise TypeError("calibration must be an iterable of model inputs (tensors, tuples of positional "
                        "arguments, or dicts of keyword arguments) or a callable f(model) that runs the "
                        f"forward passes; got {type(calibration).__name__}")
    if isinstance(calibration, Iterable) and iter(calibration) is calibration:
        return list(calibration)
    return calibration


def _to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(v.to(device) if isinstance(v, torch.Tensor) else v for v in batch)
    return batch


def _forward(model: nn.Module, batch) -> None:
    if isinstance(batch, torch.Tensor):
        model(batch)
    elif isinstance(batch, Mapping):
        model(**batch)
    elif isinstance(batch, (tuple, list)):
        model(*batch)
    else:
        raise TypeError(f"a calibration batch must be a tensor, a tuple of positional arguments or a dict "
                        f"of keyword arguments; got {type(batch).__name__}")


def _argument(args: tuple, kwargs: dict, position: int, names: Sequence[str]) -> torch.Tensor | None:
    if len(args) > position:
        return args[position]
    for key in names:
        if key in kwargs:
            return kwargs[key]
    return None


def _context_module(attention: nn.MultiheadAttention) -> nn.MultiheadAttention:
    """A copy of ``attention`` whose out_proj is the identity: its output is out_proj's input."""
    twin = copy.deepcopy(attention).eval()  # not part of the model: set its mode here (no attention dropout)
    with torch.no_grad():
        e = twin.out_proj.weight.shape[1]
        twin.out_proj.weight.copy_(torch.eye(e, dtype=twin.out_proj.weight.dtype))
        if twin.out_proj.bias is not None:
            twin.out_proj.bias.zero_()
    return twin


def _layer_input(target: CalibrationTarget, args: tuple, kwargs: dict,
                 twin: nn.MultiheadAttention | None) -> torch.Tensor:
    if target.source == "input":
        x = _argument(args, kwargs, 0, ("input", "x", "hidden_states"))
    elif target.source == "context":
        x = twin(*args, **kwargs)[0] if twin is not None else _argument(args, kwargs, 0, ("query",))
    else:
        x = _argument(args, kwargs, _ATTENTION_ARGUMENTS[target.source], (target.source,))
    if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[-1] != target.in_features:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"layer {target.name!r}: expected an input with {target.in_features} features in "
                         f"the last dimension, got {shape}; activation-aware pruning supports layers "
                         "called as module(x); prune this one with farms_viz.prune.magnitude")
    return x


@dataclass
class _Census:
    """What one full calibration pass says about the targets."""

    order: list[CalibrationTarget] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)
    calls: dict[str, list[int]] = field(default_factory=dict)  # per batch
    follows: dict[str, set] = field(default_factory=dict)  # names of the target whose input each call shared
    batches: int = 0


def _tensor_identity(x: torch.Tensor) -> tuple:
    return (x.data_ptr(), tuple(x.shape), x.stride(), x.dtype, x.device, x._version)


@contextlib.contextmanager
def _calibration_mode(model: nn.Module):
    """Eval mode (no dropout) and no fused attention fast path, which bypasses module hooks."""
    training = [(m, m.training) for m in model.modules()]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for module, mode in training:
            module.training = mode


def _model_device(model: nn.Module) -> torch.device | None:
    for p in model.parameters():
        return p.device
    return None


class _Runner:
    """Runs the calibration through the model with hooks on some targets."""

    def __init__(self, model: nn.Module, calibration: Calibration):
        self.model = model
        calibration = reiterable(calibration)
        self.calibration = calibration
        self.batches = calibration if isinstance(calibration, Iterable) else None
        self.device = _model_device(model)

    def run(self, targets: Sequence[CalibrationTarget], on_input: Callable[[CalibrationTarget, tuple, dict], None],
            after_batch: Callable[[], None] = lambda: None) -> int:
        """One pass; ``on_input(target, args, kwargs)`` for each target at each call of its module.

        Returns the number of batches (0 for a callable calibration).
        """
        by_module: dict[int, list[CalibrationTarget]] = {}
        for target in sorted(targets, key=lambda t: _SOURCE_ORDER[t.source]):
            by_module.setdefault(id(target.module), []).append(target)

        def hook(module, args, kwargs):
            for target in by_module[id(module)]:
                on_input(target, args, kwargs)

        handles = [t.module.register_forward_pre_hook(hook, with_kwargs=True)
                   for t in {id(t.module): t for t in targets}.values()]
        try:
            with _calibration_mode(self.model):
                if self.batches is None:
                    self.calibration(self.model)  # type: ignore[operator]
                    return 0
                count = 0
                for batch in self.batches:
                    if self.device is not None:
                        batch = _to_device(batch, self.device)
                    try:
                        _forward(self.model, batch)
                    except _StopForward:
                        pass
                    after_batch()
                    count += 1
                return count
        finally:
            for handle in handles:
                handle.remove()


def _census(runner: _Runner, targets: Sequence[CalibrationTarget]) -> _Census:
    census = _Census(tokens={t.name: 0 for t in targets}, calls={t.name: [0] for t in targets},
                     follows={t.name: set() for t in targets})
    seen: set[str] = set()
    previous: list = [None, None, None]  # name, identity, and the tensor (kept so its memory is not reused)

    def on_input(target, args, kwargs):
        x = _layer_input(target, args, kwargs, None)
        if target.name not in seen:
            seen.add(target.name)
            census.order.append(target)
        census.tokens[target.name] += x.numel() // target.in_features
        census.calls[target.name][-1] += 1
        identity = None if target.source == "context" else _tensor_identity(x)
        shared = identity is not None and identity == previous[1]
        census.follows[target.name].add(previous[0] if shared else None)
        previous[:] = [target.name, identity, x if identity is not None else None]

    def after_batch():
        previous[:] = [None, None, None]
        for counts in census.calls.values():
            counts.append(0)

    census.batches = runner.run(targets, on_input, after_batch)
    if census.batches:  # the count opened after the last batch
        for counts in census.calls.values():
            counts.pop()
    return census


def _check_reached(census: _Census, targets: Sequence[CalibrationTarget], callable_calibration: bool) -> None:
    if not callable_calibration and census.batches == 0:
        raise ValueError("the calibration yielded no batches: give a few batches of real model inputs")
    reached = {t.name for t in census.order}
    for target in targets:
        if target.name not in reached:
            raise ValueError(f"layer {target.name!r} was never reached by the calibration forward passes "
                             "(a branch the inputs do not take, or a weight used without calling its module): "
                             "calibrate with inputs that reach it, or prune it with farms_viz.prune.magnitude")
        if census.tokens[target.name] == 0:
            raise ValueError(f"the calibration yields no tokens for layer {target.name!r} (empty batches): "
                             "give batches with at least one token")


def _groups(census: _Census) -> list[list[CalibrationTarget]]:
    """Consecutive targets whose every call read the same input tensor as the one before."""
    groups: list[list[CalibrationTarget]] = []
    for target in census.order:
        if groups and census.follows[target.name] == {groups[-1][-1].name}:
            groups[-1].append(target)
        else:
            groups.append([target])
    return groups


def layer_statistics(model: nn.Module, targets: Sequence[CalibrationTarget], calibration: Calibration, *,
                     hessian: bool) -> Iterator[tuple[list[CalibrationTarget], InputStatistics]]:
    """Yield (group of targets, their input statistics), one group at a time, in execution order.

    A group is one layer, or consecutive layers that read the very same input tensor (an attention
    block's query/key/value); its statistics hold for each of them. The statistics of a group are
    collected when the caller asks for it, by a calibration pass through the model as it is then:
    prune a group before asking for the next, and later layers see the pruned outputs.

    Parameters
    ----------
    model : the model the targets belong to (run in eval mode; training flags are restored).
    targets : from :func:`calibration_targets`.
    calibration : an iterable of model inputs, each a tensor (``model(x)``), a tuple of positional
        arguments (``model(*args)``) or a dict of keyword arguments (``model(**batch)``, e.g. a
        Hugging Face tokenizer's output); a single tensor or dict is one batch; tensors are moved to
        the model's device. Or a callable ``f(model)`` that runs the forward passes itself. It is
        run once, then once per group (a one-shot iterator is read into a list first, see
        :func:`reiterable`). Every token
        position counts, padding included: calibrate with unpadded or equal-length sequences.
    hessian : also accumulate X^T X (SparseGPT), not only the per-feature squared norms (Wanda).

    Raises
    ------
    ValueError
        When a target is never reached by the forward passes, or sees no tokens, or its inputs are
        not finite.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    >>> targets = calibration_targets(model, ["0", "2"])
    >>> x = torch.ones(4, 3)
    >>> [([t.name for t in group], stats.tokens, tuple(stats.squared_norms.shape))
    ...  for group, stats in layer_statistics(model, targets, [x, x], hessian=False)]
    [(['0'], 8, (3,)), (['2'], 8, (5,))]
    """
    if not targets:
        return
    runner = _Runner(model, calibration)
    census = _census(runner, targets)
    _check_reached(census, targets, runner.batches is None)
    groups = _groups(census)
    logger.debug("calibration: %d batches, %d layers in %d groups: %s", census.batches, len(targets), len(groups),
                 [[t.name for t in g] for g in groups])
    for group in groups:
        first = group[0]
        device = first.weight.device
        stats = InputStatistics(0, torch.zeros(first.in_features, dtype=torch.float64, device=device),
                                torch.zeros(first.in_features, first.in_features, dtype=torch.float64, device=device)
                                if hessian else None)
        # Stop each batch right after the group's input when the layer runs exactly once per batch.
        stop_early = runner.batches is not None and all(c == 1 for c in census.calls[first.name])
        twin = _context_module(first.module) if first.source == "context" else None  # type: ignore[arg-type]

        def on_input(target, args, kwargs, stats=stats, twin=twin, stop_early=stop_early):
            stats.add(_layer_input(target, args, kwargs, twin))
            if stop_early:
                raise _StopForward

        runner.run([first], on_input)
        del twin
        finite = bool(torch.isfinite(stats.squared_norms).all()) and (
            stats.hessian is None or bool(torch.isfinite(stats.hessian).all()))
        if not finite:
            raise ValueError(f"the inputs of layer {first.name!r} on the calibration data are not finite "
                             "(inf or NaN): check the calibration inputs and the layers before it")
        if stats.tokens != census.tokens[first.name]:
            logger.warning("layer %r saw %d calibration tokens, %d in the first pass: the calibration is not the "
                           "same on every pass (a shuffling loader?)", first.name, stats.tokens,
                           census.tokens[first.name])
        yield group, stats
        del stats
