"""Coastline traces: display window, seam handling and clipping."""

import numpy as np
import pytest

from core.errors import DataError
from core.geo import line_trace_xy, polylines, to_display_lon


def _segments(x, y):
    idx = np.flatnonzero(np.isnan(x))
    start = 0
    for end in idx:
        yield x[start:end], y[start:end]
        start = end + 1


def test_shipped_layers_load():
    assert len(polylines("coastline")) > 100
    assert len(polylines("borders")) > 100


def test_display_window():
    np.testing.assert_allclose(to_display_lon(np.array([-80.0, -90.0, 0.0, 10.0, 350.0]), 280.0), [280.0, 630.0, 360.0, 370.0, 350.0])


def test_global_traces_never_jump_across_the_seam():
    x, y = line_trace_xy(("coastline", "borders"))
    assert np.nanmin(x) >= 0.0 and np.nanmax(x) < 360.0
    for sx, _ in _segments(x, y):
        assert np.all(np.abs(np.diff(sx)) < 180.0)


def test_seam_crossing_region_is_contiguous_and_clipped():
    # North Atlantic 280°E -> 20°E: drawn as 280..380 in display longitude.
    x, y = line_trace_xy(("coastline",), (280.0, 20.0), (0.0, 80.0), margin=6.0)
    assert np.nanmin(x) >= 274.0 and np.nanmax(x) <= 386.0
    assert np.nanmin(y) >= -6.0 and np.nanmax(y) <= 86.0
    # Britain (about 355°E / -5°E, 50-58°N) appears near display x = 355, Norway near 365..375.
    near_uk = (x > 350) & (x < 362) & (y > 50) & (y < 58)
    near_norway = (x > 365) & (x < 380) & (y > 58) & (y < 71)
    assert near_uk.any() and near_norway.any()
    for sx, _ in _segments(x, y):
        assert np.all(np.abs(np.diff(sx)) < 180.0)


def test_unknown_layer_is_a_clear_error():
    with pytest.raises(DataError, match="unknown map layer"):
        polylines("rivers")
