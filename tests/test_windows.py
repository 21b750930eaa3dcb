"""FARMS window geometry: the tables of docs/spec.md section 2, and properties of every grid."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spec_tables import as_list, table

from farms_viz.engine.windows import window_grid


@pytest.mark.parametrize("row", table("geometry"), ids=lambda r: f"{r['rows']}x{r['cols']}-k{r['k']}")
def test_spec_geometry_table(row):
    grid = window_grid(row["rows"], row["cols"], row["m"], row["Q"], row["k"])
    assert grid.row_starts == tuple(as_list(row["row starts"]))
    assert grid.col_starts == tuple(as_list(row["col starts"]))
    assert grid.num_windows == row["windows"]
    assert grid.num_windows * grid.eigenvalues_per_window == row["eigenvalues"]


@pytest.mark.parametrize("row", table("geometry-strides"), ids=lambda r: f"{r['rows']}x{r['cols']}")
def test_spec_geometry_strides(row):
    grid = window_grid(row["rows"], row["cols"], row["m"], row["Q"], row["k"])
    assert grid.row_starts[1] - grid.row_starts[0] == row["row stride"]
    assert grid.col_starts[1] - grid.col_starts[0] == row["col stride"]
    assert grid.num_windows == row["windows"]
    assert grid.num_windows * grid.eigenvalues_per_window == row["eigenvalues"]


def test_spec_12x12_q2_windows_are_4_by_8():
    grid = window_grid(12, 12, 4, 2.0, 3)
    assert (grid.window_rows, grid.window_cols) == (4, 8)


def test_spec_llama_layer_strides_and_coverage():
    grid = window_grid(4096, 4096, 2000, 1.0, 10)
    assert grid.row_starts[1] == 232 and grid.col_starts[1] == 232
    assert grid.num_windows * grid.eigenvalues_per_window == 200_000
    # the grid misses the last 8 rows and columns
    assert grid.row_starts[-1] + grid.window_rows == 4088
    assert grid.coverage == pytest.approx((4088 / 4096) ** 2)


def test_window_larger_than_layer_is_one_whole_window_and_flagged():
    grid = window_grid(384, 384, 2000, 1.0, 10)
    assert grid.num_windows == 1
    assert grid.covers_whole_matrix and grid.clamped
    assert grid.coverage == 1.0


def test_single_window_at_origin_when_k_is_1():
    grid = window_grid(100, 50, 10, 1.0, 1)
    assert grid.row_starts == (0,) and grid.col_starts == (0,)


def test_wide_q_shrinks_window_until_it_fits():
    grid = window_grid(100, 30, 20, 2.0, 3)  # 20 x 40 would not fit in 30 columns
    assert grid.window_cols <= 30 and grid.window_cols == math.floor(grid.window_rows * 2.0)
    assert grid.clamped


def test_explicit_stride():
    grid = window_grid(10, 6, 4, 1.0, 99, stride=2)
    assert grid.row_starts == (0, 2, 4, 6)
    assert grid.col_starts == (0, 2)


@settings(max_examples=300, deadline=None)
@given(rows=st.integers(1, 3000), cols=st.integers(1, 3000), m=st.integers(2, 4000),
       q=st.floats(0.1, 4.0), k=st.integers(1, 20))
def test_every_window_fits_inside_the_matrix(rows, cols, m, q, k):
    grid = window_grid(rows, cols, m, q, k)
    assert 1 <= grid.window_rows <= min(rows, cols, m)
    assert 1 <= grid.window_cols <= cols
    assert 1 <= len(grid.row_starts) <= k and 1 <= len(grid.col_starts) <= k
    assert all(0 <= s <= rows - grid.window_rows for s in grid.row_starts)
    assert all(0 <= s <= cols - grid.window_cols for s in grid.col_starts)
    assert list(grid.row_starts) == sorted(set(grid.row_starts))
    assert 0 < grid.coverage <= 1
