"""A small MLP on scikit-learn's 8x8 handwritten digits: a model trained here, offline, in seconds.

Used by the notebooks, the tests and the benchmarks (defined once, here). scikit-learn ships the
digits data; it is imported only when the data is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

# 64 -> 256 -> 256 -> 128 -> 10: aspect ratios 4, 1, 2 and 12.8 in one small network.
HIDDEN = (256, 256, 128)


@dataclass(frozen=True)
class DigitsData:
    """The digits split into training and test tensors (pixels scaled to [0, 1])."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits_data(test_size: float = 0.3, seed: int = 0) -> DigitsData:
    """The 1,797 digits, split stratified into train and test (``test_size`` of them).

    Examples
    --------
    >>> data = digits_data()
    >>> tuple(data.x_train.shape), tuple(data.x_test.shape)
    ((1257, 64), (540, 64))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(images / 16.0, labels, test_size=test_size,
                                                        random_state=seed, stratify=labels)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)
    as_y = lambda a: torch.tensor(a, dtype=torch.long)
    return DigitsData(as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test))


def digits_mlp(seed: int = 0, hidden: Sequence[int] = HIDDEN) -> nn.Sequential:
    """An untrained MLP 64 -> hidden... -> 10 with ReLUs (Linear layers at even indices).

    Examples
    --------
    >>> [tuple(m.weight.shape) for m in digits_mlp() if isinstance(m, nn.Linear)]
    [(256, 64), (256, 256), (128, 256), (10, 128)]
    """
    torch.manual_seed(seed)
    sizes = [64, *hidden, 10]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: DigitsData,
                generator: torch.Generator, batch_size: int = 64) -> float:
    """One epoch of shuffled mini-batches (cross-entropy); returns the mean training loss."""
    model.train()
    losses = []
    for batch in torch.randperm(len(data.y_train), generator=generator).split(batch_size):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return sum(losses) / len(losses)


def train_digits_mlp(data: DigitsData | None = None, *, seed: int = 0, epochs: int = 15, lr: float = 5e-3,
                     hidden: Sequence[int] = HIDDEN,
                     after_epoch: Callable[[int, nn.Module], None] | None = None) -> nn.Sequential:
    """A digits MLP trained with Adam on batches of 64: about a second on a CPU.

    Parameters
    ----------
    data : the split (default ``digits_data()``).
    seed : model initialisation and batch order.
    epochs, lr, hidden : training length, Adam's learning rate, hidden layer widths.
    after_epoch : called as ``after_epoch(epoch, model)`` after each epoch (1-based).

    Examples
    --------
    >>> model = train_digits_mlp(epochs=3)
    >>> accuracy(model, digits_data()) > 0.8
    True
    """
    data = data if data is not None else digits_data()
    model = digits_mlp(seed, hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        train_epoch(model, optimizer, data, generator)
        if after_epoch is not None:
            after_epoch(epoch, model)
    return model.eval()


def accuracy(model: nn.Module, data: DigitsData) -> float:
    """Test accuracy of ``model`` on ``data``'s test split."""
    with torch.no_grad():
        return float((model(data.x_test).argmax(1) == data.y_test).float().mean())
