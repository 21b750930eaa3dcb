"""Record a :class:`~farms_viz.tracking.Monitor` from Hugging Face's ``Trainer`` or PyTorch Lightning.

Each adapter is made by a function that imports its framework only when called, so
farms_viz itself needs neither (``pip install "farms_viz[hf]"`` or ``"farms_viz[lightning]"``).
Both record at the start of training and at the end of every epoch (or every
``every_n_steps`` optimizer steps), on the main process only, filed under the trainer's
global step; at the end of training they wait for the pending analyses.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from .monitor import Monitor


def trainer_callback(monitor: Monitor | None = None, *, every_n_steps: int | None = None, record_start: bool = True,
                     **analyze_params: Any):
    """A ``transformers.TrainerCallback`` that records a Monitor while ``Trainer.train()`` runs.

    Parameters
    ----------
    monitor : the Monitor to record into; None creates one on the Trainer's model when
        training begins, with ``analyze_params`` (then it is ``callback.monitor``).
    every_n_steps : record every this many optimizer steps; None records at each epoch's end.
    record_start : also record the weights as training begins (the initialisation, or the
        checkpoint resumed from).
    **analyze_params : Monitor's parameters when ``monitor`` is None (window, q, fit, ...,
        and its own: background, when_busy, ...).

    Returns
    -------
    transformers.TrainerCallback, with the Monitor as ``.monitor``.

    Examples
    --------
    >>> callback = trainer_callback(window=64, windows_per_dim=5)          # doctest: +SKIP
    >>> Trainer(model, args, train_dataset=data, callbacks=[callback]).train()  # doctest: +SKIP
    >>> callback.monitor.history                                           # doctest: +SKIP
    """
    try:
        from transformers import TrainerCallback
    except ImportError as error:
        raise ImportError("trainer_callback needs Hugging Face transformers (and accelerate for its Trainer): "
                          'pip install "farms_viz[hf]"') from error
    _check_every(every_n_steps)
    return _trainer_callback_class(TrainerCallback)(monitor, every_n_steps, record_start, analyze_params)


@functools.cache
def _trainer_callback_class(base: type) -> type:
    class MonitorCallback(base):
        """Records ``self.monitor`` at the start of training and each epoch's end (or every n steps)."""

        def __init__(self, monitor, every_n_steps, record_start, analyze_params):
            self.monitor = monitor
            self.every_n_steps = every_n_steps
            self.record_start = record_start
            self._analyze_params = analyze_params
            self._last_step = None

        def _record(self, state) -> None:
            if state.global_step != self._last_step:
                self._last_step = state.global_step
                self.monitor.step(state.global_step)

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if not state.is_world_process_zero:
                return
            if self.monitor is None:
                if model is None:
                    raise RuntimeError("the Trainer passed no model to the callback; create "
                                       "Monitor(model, ...) yourself and pass it to trainer_callback")
                self.monitor = Monitor(model, **self._analyze_params)
            if self.record_start:
                self._record(state)

        def on_step_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero and self.every_n_steps and state.global_step % self.every_n_steps == 0:
                self._record(state)

        def on_epoch_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero and not self.every_n_steps:
                self._record(state)

        def on_train_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero and self.monitor is not None:
                self.monitor.wait()

    return MonitorCallback


def lightning_callback(monitor: Monitor | None = None, *, every_n_steps: int | None = None,
                       record_start: bool = True, package: str | None = None, **analyze_params: Any):
    """A PyTorch Lightning ``Callback`` that records a Monitor while ``Trainer.fit()`` runs.

    Parameters
    ----------
    monitor, every_n_steps, record_start, **analyze_params : as :func:`trainer_callback`
        (the Monitor watches the LightningModule).
    package : "lightning" (``lightning.pytorch``) or "pytorch_lightning"; the callback must
        come from the package whose Trainer you use. None: ``lightning`` if installed, else
        ``pytorch_lightning``.

    Returns
    -------
    a ``Callback`` of that package, with the Monitor as ``.monitor``.

    Examples
    --------
    >>> callback = lightning_callback(window=64)                         # doctest: +SKIP
    >>> lightning.Trainer(max_epochs=3, callbacks=[callback]).fit(module)   # doctest: +SKIP
    """
    _check_every(every_n_steps)
    return _lightning_callback_class(_lightning_base(package))(monitor, every_n_steps, record_start, analyze_params)


def _lightning_base(package: str | None) -> type:
    if package not in (None, "lightning", "pytorch_lightning"):
        raise ValueError(f"package must be 'lightning', 'pytorch_lightning' or None; got {package!r}")
    errors = []
    for name in ([package] if package else ["lightning", "pytorch_lightning"]):
        try:
            module = importlib.import_module("lightning.pytorch" if name == "lightning" else name)
            return module.Callback
        except ImportError as error:
            errors.append(error)
    raise ImportError('lightning_callback needs PyTorch Lightning: pip install "farms_viz[lightning]"') from errors[-1]


@functools.cache
def _lightning_callback_class(base: type) -> type:
    class MonitorCallback(base):
        """Records ``self.monitor`` at the start of training and each epoch's end (or every n steps)."""

        def __init__(self, monitor, every_n_steps, record_start, analyze_params):
            super().__init__()
            self.monitor = monitor
            self.every_n_steps = every_n_steps
            self.record_start = record_start
            self._analyze_params = analyze_params
            self._last_step = None

        def _record(self, trainer) -> None:
            # with gradient accumulation several batches end on one global step: record it once
            if trainer.global_step != self._last_step:
                self._last_step = trainer.global_step
                self.monitor.step(trainer.global_step)

        def on_train_start(self, trainer, pl_module):
            if not trainer.is_global_zero:
                return
            if self.monitor is None:
                self.monitor = Monitor(pl_module, **self._analyze_params)
            if self.record_start:
                self._record(trainer)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.is_global_zero and self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
                self._record(trainer)

        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.is_global_zero and not self.every_n_steps:
                self._record(trainer)

        def on_train_end(self, trainer, pl_module):
            if trainer.is_global_zero and self.monitor is not None:
                self.monitor.wait()

    return MonitorCallback


def _check_every(every_n_steps: int | None) -> None:
    if every_n_steps is not None and (isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int)
                                      or every_n_steps < 1):
        raise ValueError(f"every_n_steps must be an integer >= 1, or None to record at each epoch's end; "
                         f"got {every_n_steps!r}")
