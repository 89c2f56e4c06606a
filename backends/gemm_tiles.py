"""Which tile an engine's GEMM kernel picks for a shape: the kernel-switch tables of vLLM's CUTLASS
fp8 scaled-mm dispatch, by architecture.

Owns the tables (data, not code paths), `tile_rules(architecture)` and `rule_condition(rule, m, n)`
(symbolic-safe: a sympy condition when M is a size expression). It reads no profile and
produces no seconds: `backends/efficiency.py` uses the tile for tile counts, wave quantization and
the per-SM load limit of small tiles when a section sets `gemm_<variant>_tile_switch` to 1.

Sources: vLLM `csrc/quantization/w8a8/cutlass/c3x/scaled_mm_sm90_fp8_dispatch.cuh` (Hopper) and
`scaled_mm_sm100_fp8_dispatch.cuh` (Blackwell). Small-M kernels swap A and B (the weight's N rows
fill the MMA's M side), so their tile over M is the small side; tile sizes are given as (rows of
M, columns of N) whatever the swap, with the CTA cluster's extent along M (row tiles are launched
in whole clusters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy

from ..errors import InvalidProfileError
from ..sizes import as_expr


@dataclass(frozen=True)
class Tile:
    m: int  # rows of the output per tile
    n: int  # columns of the output per tile
    cluster_m: int = 1  # CTAs per cluster along M
    mma_m: int = 0  # rows of M one CTA's MMA covers when they differ from m (Blackwell's 2-SM MMA)
    cluster_n: int = 1  # CTAs per cluster along N (a swap-AB kernel's cluster over the weight's rows)

    @property
    def rows_per_cta(self) -> int:
        """Rows of M one CTA computes whether M fills them or not (tile quantization along M)."""
        return self.mma_m or self.m


@dataclass(frozen=True)
class Rule:
    max_m: float  # the rule applies to M <= max_m (the first matching rule wins)
    tile: Tile
    max_n: float = float("inf")  # ... and N <= max_n
    min_m: float = 0  # ... and M >= min_m
    max_k: float = float("inf")  # ... and K <= max_k


INF = float("inf")
# vLLM 0.24 cutlass_scaled_mm, per-tensor fp8 (first matching rule wins).
TILE_TABLES: dict[str, tuple[Rule, ...]] = {
    "hopper": (
        Rule(16, Tile(16, 64), max_n=1280),  # M16_N1280: swap AB, 64x16x256, cluster 1x2
        Rule(16, Tile(16, 64)),  # M16_N8192: swap AB, 64x16x256
        Rule(64, Tile(16, 64), max_n=1280),  # M64_N1280: swap AB, 64x16x256, cluster 1x4
        Rule(64, Tile(64, 64)),  # M64_N8192: swap AB, 64x64x256
        Rule(128, Tile(64, 128, 2)),  # M128: 64x128x128, cluster 2x1
        Rule(INF, Tile(128, 128, 2)),  # default: 128x128x128, cluster 2x1, ping-pong
    ),
    "blackwell": (
        Rule(16, Tile(32, 128, cluster_n=4)),  # M16 swap AB: 128x32x128, cluster 4x1 (along N after the swap)
        Rule(64, Tile(64, 64), min_m=64, max_k=4095),  # M = 64 with K < 4096: no swap, 64x64x128, cluster 1x1
        Rule(64, Tile(64, 128, cluster_n=4)),  # M64 swap AB: 128x64x256, cluster 4x1 (along N after the swap)
        Rule(256, Tile(128, 128, 2)),  # M256: 128x128x128, cluster 2x1
        # default: 256x128x128, cluster 2x2: a 2-SM MMA (tcgen05 cta_group::2), 128 rows per CTA.
        # A one-CTA tcgen05 MMA covers M = 64 or 128 rows only (PTX ISA, tcgen05.mma shapes), so a
        # 256-row tile is the pair form, whose two CTAs on paired SMs each hold half of M (CUTLASS
        # docs, 'Blackwell SM100 GEMMs': 2-SM kernels; tilus tutorial 'matmul-blackwell' v6)
        Rule(INF, Tile(256, 128, 2, mma_m=128)),
    ),
}


def tile_rules(architecture: str) -> tuple[Rule, ...]:
    """The architecture's rules; an error for one without a table (a section may not ask for it)."""
    if architecture not in TILE_TABLES:
        raise InvalidProfileError(f"gemm_<variant>_tile_switch = 1 needs a tile-switch table for the profile's "
                                  f"architecture {architecture!r}; tables exist for: {', '.join(TILE_TABLES)}")
    return TILE_TABLES[architecture]


def rule_condition(rule: Rule, m: Any, n: Any, k: Any) -> Any:
    """Whether (M, N, K) falls in the rule: a bool for sizes that are numbers, a sympy condition otherwise."""
    upper = [(m, rule.max_m), (n, rule.max_n), (k, rule.max_k)]
    lower = [(m, rule.min_m)]
    if all(isinstance(v, (int, float)) for v, _ in upper):
        return all(v <= bound for v, bound in upper) and all(v >= bound for v, bound in lower)
    return sympy.And(*[sympy.Le(as_expr(v), bound) for v, bound in upper if bound != INF],
                     *[sympy.Ge(as_expr(v), bound) for v, bound in lower if bound > 0])
