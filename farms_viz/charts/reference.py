"""What the alpha charts compare against, and the y range they show.

- The random baseline (``alpha_baseline``): drawn beside each point for the median and peak fits.
- The rules at alpha 2 and 6: drawn for the KS fit only, whose reading they come from.
- The plausible range: an alpha axis spans the bulk of the values (quartiles widened by three
  interquartile ranges); a value beyond it is drawn at the edge, marked, its tooltip exact. One
  layer at alpha 38 (a KS fit that chose a tiny tail) no longer squashes every other layer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .style import KS_RULE_FIT

# The range spans the quartiles widened by this many interquartile ranges ...
RANGE_IQRS = 3.0
# ... and never less than this on either side (a model whose alphas all agree).
MIN_HALF_SPAN = 0.5
ABOVE, BELOW = "above", "below"


def plausible_range(values: np.ndarray | pd.Series) -> tuple[float, float]:
    """(low, high) of an alpha axis: the finite values, their outliers left out.

    Examples
    --------
    >>> plausible_range(np.array([2.1, 2.5, 3.0, 3.3, 4.0, 38.0]))
    (2.1, 7.425)
    >>> plausible_range(np.array([2.0, 2.0]))
    (1.5, 2.5)
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 1.0, 6.0
    q1, q3 = np.percentile(x, [25, 75])
    spread = max(q3 - q1, MIN_HALF_SPAN / RANGE_IQRS)
    low = max(float(x.min()), q1 - RANGE_IQRS * spread)
    high = min(float(x.max()), q3 + RANGE_IQRS * spread)
    if high - low < 2 * MIN_HALF_SPAN:
        middle = (high + low) / 2
        low, high = middle - MIN_HALF_SPAN, middle + MIN_HALF_SPAN
    return float(low), float(high)


def clipped(values: pd.Series, low: float, high: float) -> tuple[pd.Series, pd.Series]:
    """Values held within [low, high], and where each was held ("above", "below" or None).

    Examples
    --------
    >>> shown, where = clipped(pd.Series([1.0, 5.0, 50.0]), 2.0, 10.0)
    >>> shown.tolist(), where.tolist()
    ([2.0, 5.0, 10.0], ['below', None, 'above'])
    """
    shown = values.clip(lower=low, upper=high)
    where = pd.Series([ABOVE if v > high else BELOW if v < low else None for v in values], index=values.index,
                      dtype=object)
    return shown, where


def with_plot_columns(frame: pd.DataFrame, fit: str) -> pd.DataFrame:
    """``frame`` (one row per layer and method, with alpha and alpha_baseline) plus what the charts draw.

    Adds alpha_shown and alpha_clip (the alpha held in the plausible range, and where it was
    held), baseline_shown and baseline_clip (the same for the random baseline; empty under the KS
    fit, where the rules at 2 and 6 are drawn instead), y_low and y_high (the range).
    """
    out = frame.copy()
    draw_baseline = fit != KS_RULE_FIT
    values = pd.concat([out["alpha"], out["alpha_baseline"]]) if draw_baseline else out["alpha"]
    low, high = plausible_range(values.to_numpy())
    out["alpha_shown"], out["alpha_clip"] = clipped(out["alpha"], low, high)
    if draw_baseline:
        out["baseline_shown"], out["baseline_clip"] = clipped(out["alpha_baseline"], low, high)
    else:
        out["baseline_shown"], out["baseline_clip"] = np.nan, None
    out["y_low"], out["y_high"] = low, high
    return out
