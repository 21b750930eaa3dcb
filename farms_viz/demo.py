"""Demo models of random layers (see :mod:`farms_viz.sources.demo`)."""

from .sources.demo import DEMOS, aspect_ratio_zoo, heavy_tailed_zoo

__all__ = ["DEMOS", "aspect_ratio_zoo", "heavy_tailed_zoo"]
