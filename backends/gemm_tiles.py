"""Which tile an engine's GEMM kernel picks for a shape: the kernel-switch tables of vLLM's CUTLASS
fp8 scaled-mm dispatch, by architecture.

Owns the tables (data, not code paths), `tile_rules(architecture)`, `rule_condition(rule, m, n, k)`
(symbolic-safe: a sympy condition when M is a size expression) and `Tile.ctas` (the CTAs a tile
launches for an output: whole clusters, two per 2-SM MMA tile). It reads no profile and
produces no seconds: `backends/efficiency.py` uses the tile for tile counts, wave quantization and
the per-SM load limit of small tiles when a section sets `gemm_<variant>_tile_switch` to 1.

Sources: vLLM `csrc/quantization/w8a8/cutlass/c3x/scaled_mm_sm90_fp8_dispatch.cuh` (Hopper) and
`scaled_mm_sm100_fp8_dispatch.cuh` (Blackwell). Small-M kernels swap A and B (the weight's N rows
fill the MMA's M side), so their tile over M is the small side; tile sizes are given as (rows of
M, columns of N) whatever the swap, with the CTA cluster's extent along M and N (CTAs are launched
in whole clusters). Blackwell's 2-SM MMA (CUTLASS's sm100 collective builder picks it for
`KernelScheduleAuto` when the cluster's M extent is even and the tile's M a multiple of 128) spreads
one tile over a CTA pair, half each along the (swapped) M axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy

from ..errors import InvalidProfileError
from ..sizes import as_expr, cdiv


@dataclass(frozen=True)
class Tile:
    m: int  # rows of the output per MMA tile (the CTA pair's, for a 2-SM MMA)
    n: int  # columns of the output per MMA tile (the CTA pair's, for a 2-SM MMA)
    cluster_m: int = 1  # CTAs per cluster along M (CTAs are launched in whole clusters)
    cluster_n: int = 1  # CTAs per cluster along N (a swap-AB kernel's cluster over the weight's rows)
    pair: str = ""  # "m" / "n": a 2-SM MMA whose two CTAs each hold half the tile along that axis

    def __post_init__(self) -> None:
        if self.pair not in ("", "m", "n"):
            raise ValueError(f"Tile.pair must be '', 'm' or 'n', got {self.pair!r}")

    @property
    def cta_m(self) -> int:
        """Rows of M one CTA computes whether M fills them or not (tile quantization along M)."""
        return self.m // 2 if self.pair == "m" else self.m

    @property
    def cta_n(self) -> int:
        return self.n // 2 if self.pair == "n" else self.n

    def ctas(self, m: Any, n: Any) -> Any:
        """CTAs launched for an (M, N) output: whole clusters along each axis."""
        return (cdiv(m, self.cta_m * self.cluster_m) * self.cluster_m
                * cdiv(n, self.cta_n * self.cluster_n) * self.cluster_n)


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
        # CUTLASS's sm100 builder, KernelScheduleAuto: a cluster whose M extent (the swapped M, i.e.
        # N, for swap-AB) is even and a tile M that is a multiple of 128 build the 2-SM MMA
        # (tcgen05 cta_group::2, `sm100_make_2sm_trivial_tiled_mma`): the tile is the CTA pair's,
        # each CTA holding half of it along that axis; otherwise the 1-SM MMA.
        Rule(16, Tile(32, 128, cluster_n=4, pair="n")),  # M16 swap AB: 128x32x128, cluster 4x1: 2-SM
        Rule(64, Tile(64, 64), min_m=64, max_k=4095),  # M = 64 with K < 4096: no swap, 64x64x128, cluster 1x1
        Rule(64, Tile(64, 128, cluster_n=4, pair="n")),  # M64 swap AB: 128x64x256, cluster 4x1: 2-SM
        Rule(256, Tile(128, 128, 2, pair="m")),  # M256: 128x128x128, cluster 2x1: 2-SM, 64 rows per CTA
        Rule(INF, Tile(256, 128, 2, 2, pair="m")),  # default: 256x128x128, cluster 2x2: 2-SM, 128 rows per CTA
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
