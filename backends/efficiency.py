"""Efficiency models: what fraction of a device's peak an op of a given kind and shape reaches.

Owns `efficiency_for(kind, counts, call, profile) -> Efficiency` (compute, vector, memory
fractions in (0, 1]). The parameters live in the device profile's `[efficiency]` table; a
kind-specific model may use the op's shape (sympy-safe expressions only). Kinds without their
own model use the profile's device-wide `gemm` / `vector` / `memory` fractions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .counts import Counts
from .device import DeviceProfile
from .formulas.registry import OpCall


@dataclass(frozen=True)
class Efficiency:
    compute: Any = 1.0
    vector: Any = 1.0
    memory: Any = 1.0


def efficiency_for(kind: str, counts: Counts, call: OpCall | None, profile: DeviceProfile) -> Efficiency:
    table = profile.efficiency
    compute = table.get(f"{kind}_compute", table.get("gemm", 1.0))
    return Efficiency(compute=compute, vector=table.get("vector", 1.0), memory=table.get("memory", 1.0))
