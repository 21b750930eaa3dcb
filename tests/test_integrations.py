"""Monitor adapters for Hugging Face's Trainer and PyTorch Lightning, on tiny models that really train."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from torch import nn

import farms_viz
from farms_viz.tracking import Monitor
from farms_viz.tracking.integrations import lightning_callback, trainer_callback

FAST = {"window": 16, "windows_per_dim": 3}


def _last_rows(monitor: Monitor) -> pd.DataFrame:
    history = monitor.history
    last = history[history.step == history.step.max()]
    return last.drop(columns=["step", "wall_time"]).reset_index(drop=True)


@pytest.mark.slow
def test_trainer_callback_records_each_epoch_of_a_gpt2_trainer(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=16,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    initial = copy.deepcopy(model)
    tokens = torch.randint(0, 64, (16, 16), generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": t, "labels": t} for t in tokens]
    callback = trainer_callback(when_busy="wait", **FAST)  # every epoch recorded, however slow the machine
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=4, learning_rate=1e-2,
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
    transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
    monitor = callback.monitor
    assert monitor.steps == [0, 4, 8]  # the start, then each epoch's end (4 batches per epoch)
    history = monitor.history
    assert history.groupby("step").size().nunique() == 1
    first = history[history.step == 0].drop(columns=["step", "wall_time"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, farms_viz.analyze(initial, progress=False, **FAST).to_pandas())
    pd.testing.assert_frame_equal(_last_rows(monitor), farms_viz.analyze(model, progress=False, **FAST).to_pandas())
    assert not history[history.step == 8].alpha.equals(history[history.step == 0].alpha)


@pytest.mark.slow
def test_trainer_callback_every_n_steps_into_a_given_monitor(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))

        def forward(self, x, y):
            return {"loss": nn.functional.mse_loss(self.body(x), y)}

    torch.manual_seed(0)
    model = Regressor()
    monitor = Monitor(model, when_busy="wait", **FAST)
    data = [{"x": torch.randn(16), "y": torch.randn(16)} for _ in range(24)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=4, report_to=[],
        save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True)
    callback = trainer_callback(monitor, every_n_steps=2, record_start=False)
    transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
    assert callback.monitor is monitor and monitor.steps == [2, 4, 6]


@pytest.mark.slow
def test_lightning_callback_records_each_epoch():
    pytest.importorskip("lightning")
    import lightning.pytorch as pl

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.mse_loss(self.body(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    module = Module()
    data = torch.utils.data.TensorDataset(torch.randn(16, 16), torch.randn(16, 16))
    callback = lightning_callback(when_busy="wait", **FAST)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
    monitor = callback.monitor
    assert monitor.steps == [0, 4, 8]
    assert set(monitor.history.layer) == {"body.0", "body.2"}
    pd.testing.assert_frame_equal(_last_rows(monitor), farms_viz.analyze(module, progress=False, **FAST).to_pandas())


def test_adapters_check_their_arguments():
    with pytest.raises(ValueError, match="every_n_steps must be an integer >= 1"):
        lightning_callback(every_n_steps=0)
    with pytest.raises(ValueError, match="package must be"):
        lightning_callback(package="keras")
