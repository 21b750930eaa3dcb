"""Sampling warnings: when a FARMS window grid samples a layer too thinly to be trusted.

A FARMS alpha is a fit of the pooled eigenvalues of a layer's windows. It says little when the
windows see little: a grid that covers a small part of the matrix, windows with too few
eigenvalues each to show the spectrum's shape, a single window, or a window clamped to a layer
smaller than asked (its aspect ratio then differs from the other layers'). One window covering
the whole matrix makes FARMS the standard ESD. The notes below travel with the results
(``Analysis.to_pandas()["sampling_note"]``) into the table and the spectrum's title.
"""

from __future__ import annotations

from .windows import WindowGrid

# A grid that covers less than this fraction of the matrix's entries is flagged.
LOW_COVERAGE = 0.5
# Windows that give fewer eigenvalues than this each are flagged (a spectrum needs a few points).
MIN_WINDOW_EIGENVALUES = 8


def sampling_notes(grid: WindowGrid) -> list[str]:
    """What a reader should know about how thinly ``grid`` samples its matrix; empty when nothing.

    Parameters
    ----------
    grid : the FARMS windows of one matrix (slice).

    Returns
    -------
    list of short sentences, most serious first.

    Examples
    --------
    >>> from farms_viz.engine.windows import window_grid
    >>> sampling_notes(window_grid(1536, 384, 100, 1.0, 10))
    []
    >>> sampling_notes(window_grid(30522, 384, 100, 1.0, 10))
    ['windows cover 3% of the matrix']
    >>> sampling_notes(window_grid(10, 128, 32, 1.0, 5))  # a 10-way output layer
    ['windows cover 39% of the matrix', 'window clamped to 10 x 10']
    """
    notes = []
    if grid.covers_whole_matrix:
        notes.append("one window = the whole matrix: FARMS equals the standard ESD")
    elif grid.num_windows == 1:
        notes.append("a single window per matrix")
    if grid.eigenvalues_per_window < MIN_WINDOW_EIGENVALUES:
        notes.append(f"{grid.eigenvalues_per_window} eigenvalue{'s' if grid.eigenvalues_per_window != 1 else ''} "
                     f"per window (fewer than {MIN_WINDOW_EIGENVALUES})")
    if grid.coverage < LOW_COVERAGE:
        notes.append(f"windows cover {_percent(grid.coverage)} of the matrix")
    if grid.clamped and not grid.covers_whole_matrix:
        notes.append(f"window clamped to {grid.window_rows} x {grid.window_cols}")
    return notes


def _percent(fraction: float) -> str:
    """3%, 0.4%, <0.1%: a coverage that stays readable when tiny."""
    percent = 100.0 * fraction
    if percent >= 1.0:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%" if percent >= 0.1 else "<0.1%"
