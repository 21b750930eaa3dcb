"""Per-layer spectral metrics under WeightWatcher's names (docs/spec.md, section 4)."""

from __future__ import annotations

import math

import numpy as np

from .fits import PowerLawFit


def spectral_metrics(eigenvalues: np.ndarray, fit: PowerLawFit) -> dict[str, float]:
    """lambda_max, norms, stable rank and alpha_weighted of a sorted ESD and its fit.

    For FARMS these describe the pooled window sample, not the whole matrix.
    """
    x = eigenvalues
    lambda_max = float(x[-1]) if x.size else float("nan")
    norm = float(x.sum())
    log_lambda_max = math.log10(lambda_max) if lambda_max > 0 else float("nan")
    return {
        "lambda_max": lambda_max,
        "spectral_norm": lambda_max,
        "norm": norm,
        "log_norm": math.log10(norm) if norm > 0 else float("nan"),
        "log_spectral_norm": log_lambda_max,
        "stable_rank": norm / lambda_max if lambda_max > 0 else float("nan"),
        "alpha_weighted": fit.alpha * log_lambda_max,
        "num_eigs": int(x.size),
    }
