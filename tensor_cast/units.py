"""Human-readable units for the summaries: seconds and bytes.

Owns `seconds(value)` and `gib(value)`; imports nothing from the project, so the report and the
deployment views over it (fit, pipeline stages) share them without importing each other.
"""

from __future__ import annotations


def seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.3f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3f} ms"
    return f"{value * 1e6:.1f} us"


def gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB ({value / 1e9:.2f} GB)"
