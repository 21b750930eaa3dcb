"""Built-in demo models: random layers of many shapes, where the aspect-ratio bias is plain.

Every layer's entries are i.i.d., so every layer has the same "quality": a fair metric gives
them all the same alpha. The standard ESD alpha rises with the aspect ratio; FARMS alpha does
not (docs/spec.md, section 6). Small enough to analyse in a few seconds on a laptop.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# (name, module factory) in model order: aspect ratios 1, 2, 4, 1/4 and 4, a conv and an embedding.
_SHAPES = (
    ("square_512x512", lambda: nn.Linear(512, 512, bias=False)),
    ("tall_1024x512", lambda: nn.Linear(512, 1024, bias=False)),
    ("tall_2048x512", lambda: nn.Linear(512, 2048, bias=False)),
    ("wide_512x2048", lambda: nn.Linear(2048, 512, bias=False)),
    ("tall_512x128", lambda: nn.Linear(128, 512, bias=False)),
    ("conv_128x64x3x3", lambda: nn.Conv2d(64, 128, 3, bias=False)),
    ("embedding_2000x256", lambda: nn.Embedding(2000, 256)),
)


class _Zoo(nn.Module):
    """A bag of independent layers (no forward pass: it exists to be analysed)."""

    def __init__(self, sample, seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        for name, make in _SHAPES:
            module = make()
            weight = module.weight
            cols = int(np.prod(weight.shape[1:]))  # fan-in, so every entry has variance ~1/cols
            values = sample(rng, tuple(weight.shape)) / np.sqrt(cols)
            with torch.no_grad():
                weight.copy_(torch.from_numpy(values.astype(np.float32)))
            self.add_module(name, module)


def aspect_ratio_zoo(seed: int = 0) -> nn.Module:
    """Random layers of many shapes with i.i.d. N(0, 1/cols) weights.

    Layers: Linear 512x512, 1024x512, 2048x512, 512x2048 and 512x128 (stored out x in), a
    Conv2d 128x64x3x3 and an Embedding 2000x256. Analysed together they show the standard
    ESD's alpha following the aspect ratio while FARMS alpha stays put.

    Parameters
    ----------
    seed : seed of the random weights (same seed, same weights).

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import farms_viz
    >>> from farms_viz.demo import aspect_ratio_zoo
    >>> result = farms_viz.analyze(aspect_ratio_zoo(), window=128, windows_per_dim=5, progress=False)
    >>> len(result.layers)
    7
    """
    return _Zoo(lambda rng, shape: rng.standard_normal(shape), seed)


def heavy_tailed_zoo(seed: int = 0) -> nn.Module:
    """The same layers as :func:`aspect_ratio_zoo` with Student-t(3) entries (heavy tails).

    Heavy-tailed entries give a power-law ESD tail (alpha near 2); FARMS measures the same
    alpha on every shape, the standard ESD does not.

    Parameters
    ----------
    seed : seed of the random weights.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> from farms_viz.demo import heavy_tailed_zoo
    >>> heavy_tailed_zoo().tall_2048x512.weight.shape
    torch.Size([2048, 512])
    """
    return _Zoo(lambda rng, shape: rng.standard_t(3, shape), seed)


DEMOS = {"demo": aspect_ratio_zoo, "demo:heavy-tailed": heavy_tailed_zoo}
