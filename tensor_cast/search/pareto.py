"""The Pareto frontier of throughput per GPU against throughput per user.

`frontier(points)`: the indices of the points no other point dominates (at least as good on both
axes and better on one), sorted by the x-axis. Both axes are maximized. O(n log n): sort by x
descending (ties: y descending) and keep each point whose y beats every y seen so far.
"""

from __future__ import annotations

from collections.abc import Sequence


def frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    kept: list[int] = []
    best_y = float("-inf")
    for i in order:
        if points[i][1] > best_y:
            kept.append(i)
            best_y = points[i][1]
    return sorted(kept, key=lambda i: (points[i][0], -points[i][1]))
