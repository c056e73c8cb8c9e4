"""Small inline SVG charts drawn server-side (no chart library, nothing from another host)."""

from __future__ import annotations

from collections.abc import Sequence

WIDTH, HEIGHT = 160, 40
"""The loss curve's box, in SVG user units (the template's ``viewBox``)."""


def polyline(points: Sequence[Sequence[float]], width: int = WIDTH, height: int = HEIGHT) -> str:
    """``(x, y)`` pairs as an SVG ``points`` attribute, scaled to fill ``width`` by ``height``
    with y upwards; empty below two points (no line to draw)."""
    if len(points) < 2:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, y0 = min(xs), min(ys)
    span_x, span_y = (max(xs) - x0) or 1, (max(ys) - y0) or 1
    return " ".join(
        f"{(x - x0) / span_x * width:.1f},{height - (y - y0) / span_y * height:.1f}"
        for x, y in zip(xs, ys, strict=True)
    )
