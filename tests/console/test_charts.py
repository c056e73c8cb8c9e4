"""The console's inline loss curve: points scaled into its box, y upwards."""

from __future__ import annotations

from serving.console.charts import polyline


def test_points_fill_the_box_with_y_upwards() -> None:
    assert polyline([(0, 2.0), (5, 1.0), (10, 1.5)], width=100, height=10) == (
        "0.0,0.0 50.0,10.0 100.0,5.0"
    )
    assert polyline([(3, 1.0), (4, 1.0)], width=10, height=10) == "0.0,10.0 10.0,10.0"
    assert polyline([(1, 1.0)]) == ""  # no line through one point
