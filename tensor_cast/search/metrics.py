"""`Metrics`: what one simulated configuration delivers, and the SLO it is judged by.

A simulated unit (one engine instance, or one prefill + decode pool pair) reports its latencies
and throughput; the deployment is `replicas` such units, so throughput scales with the replicas
and per-GPU / per-user numbers do not. `tokens_per_s_per_user` is 1 / TPOT (what one client sees
while its answer streams), the x-axis of the usual serving Pareto plot.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgumentError

SLO_STATS = ("mean", "p90", "attainment")
DEFAULT_ATTAINMENT = 0.9  # DistServe's 90 % SLO attainment


@dataclass(frozen=True)
class Metrics:
    mean_ttft_s: float
    mean_tpot_s: float
    p90_ttft_s: float
    p90_tpot_s: float
    output_tokens_per_s: float  # one simulated unit
    unit_gpus: int  # GPUs of that unit
    requests_per_s: float  # completed requests per second, one unit
    # shares of the requests within the TTFT target, the TPOT target, and both (the attainment statistic;
    # 1 where there is no target or the statistic is another)
    ttft_share: float = 1.0
    tpot_share: float = 1.0
    joint_share: float = 1.0

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.output_tokens_per_s / self.unit_gpus

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1.0 / self.mean_tpot_s if self.mean_tpot_s > 0 else float("inf")

    def ttft(self, stat: str) -> float:  # the p90 shows for `attainment` (a share is judged, not a time)
        return self.mean_ttft_s if stat == "mean" else self.p90_ttft_s

    def tpot(self, stat: str) -> float:
        return self.mean_tpot_s if stat == "mean" else self.p90_tpot_s


@dataclass(frozen=True)
class SLO:
    """Latency targets; None: unconstrained. `stat`: which statistic must meet them — the mean or the p90 of
    each, or `attainment` (`attainment:0.95`): at least that share of the requests (default 0.9) meets every
    target, each request judged on its own TTFT and TPOT (DistServe's SLO attainment; vLLM's goodput)."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    stat: str = "mean"
    attainment: float = DEFAULT_ATTAINMENT

    def __post_init__(self) -> None:
        stat, _, level = str(self.stat).partition(":")
        if stat not in SLO_STATS or (level and stat != "attainment"):
            raise InvalidArgumentError(f"SLO statistic {self.stat!r} is not one of mean, p90, attainment, "
                                       "attainment:<share> (e.g. attainment:0.95)")
        if level:
            try:
                share = float(level)
            except ValueError:
                share = float("nan")
            if not 0 < share <= 1:
                raise InvalidArgumentError(f"SLO attainment {level!r} must be a share in (0, 1], e.g. attainment:0.95")
            object.__setattr__(self, "attainment", share)
        object.__setattr__(self, "stat", stat)
        for name in ("ttft_s", "tpot_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InvalidArgumentError(f"{name} must be > 0, got {value!r}")

    def violations(self, m: Metrics) -> dict[str, float]:
        """Constraint -> how many times over its target (only the ones missed). Attainment: the required
        share over the share attained, per target, or for both together when each alone is attained."""
        out = {}
        if self.stat == "attainment":
            for name, target, share in (("ttft", self.ttft_s, m.ttft_share), ("tpot", self.tpot_s, m.tpot_share)):
                if target is not None and share < self.attainment:
                    out[name] = self.attainment / max(share, 1e-9)
            if not out and m.joint_share < self.attainment:
                out["ttft+tpot"] = self.attainment / max(m.joint_share, 1e-9)
            return out
        if self.ttft_s is not None and m.ttft(self.stat) > self.ttft_s:
            out["ttft"] = m.ttft(self.stat) / self.ttft_s
        if self.tpot_s is not None and m.tpot(self.stat) > self.tpot_s:
            out["tpot"] = m.tpot(self.stat) / self.tpot_s
        return out

    def met(self, m: Metrics) -> bool:
        return not self.violations(m)

    def miss(self, m: Metrics) -> float:
        """How far from meeting both targets: the largest ratio over a target (1: met)."""
        return max([1.0, *self.violations(m).values()])
