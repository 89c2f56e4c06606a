"""The roofline backend: Counts + device profile -> time, symbolically.

time = max(compute, memory, communication) + stall + latency + launches × per-kernel overhead

- compute: Σ over precision classes of FLOPs / (peak × efficiency), with the precision the
  device lacks replaced by the one engines would run (`DeviceProfile.rate`), reported as a
  fallback;
- memory: bytes / (bandwidth × efficiency) + the bandwidth ramp of a small transfer;
- communication: from the collective model when the op is a collective;
- stall: the share (`overlap`) of the shorter of compute and memory that the kernel does not
  hide behind the longer one (a GEMM near its ridge point is slower than max(compute, memory));
- latency: the kernel's fixed cost beyond its launch (pipeline fill, split-K reduction);
- overhead: the per-kernel launch gap, smaller inside CUDA graphs (engines capture graphs for
  steps of up to `graph_max_tokens` tokens: a Piecewise in B·S).

Efficiencies, stall share and latencies come from `backends/efficiency.py`, which may make them
depend on the kernel shape the cost rule returned with its counts (`Counts.kernel`): time is a
function of (counts, kernel shape, device profile) only, never of the op's arguments. Profiles without those parameters get stall = latency = 0.
All results are sympy-safe expressions in B, S, C; nothing here evaluates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy

from ..sizes import B, S, smax, smin
from .counts import Counts
from .device import DeviceProfile
from .efficiency import efficiency_for


@dataclass(frozen=True)
class OpTime:
    compute_s: Any
    memory_s: Any
    comm_s: Any
    overhead_s: Any
    fallbacks: tuple[str, ...] = ()
    latency_s: Any = 0  # fixed kernel latency beyond the launch gap
    stall_s: Any = 0  # the part of the shorter of compute / memory not overlapped
    floor_s: Any = 0  # eager launches: the call's host-side floor (time = max(floor, work + overhead))

    @property
    def kernel_latency_s(self) -> Any:
        """Time beyond the roofline bound and the launch gap: fixed latency + non-overlapped part."""
        return self.latency_s + self.stall_s

    # computed once per op (a symbolic max is costly to build; rows and totals both read it)
    @cached_property
    def work_s(self) -> Any:
        """The kernel's own time: the roofline bound, plus what it does not overlap, plus latency."""
        if _symbolic(self.compute_s, self.memory_s, self.comm_s):
            # unevaluated: sympy's simplification of a Max of symbolic parts (tens of ms an op, most of
            # a serving simulator's setup) never changes its value at any point
            bound = sympy.Max(self.compute_s, self.memory_s, self.comm_s, evaluate=False)
        else:
            bound = max(self.compute_s, self.memory_s, self.comm_s)
        return bound + self.stall_s + self.latency_s

    @cached_property
    def time_s(self) -> Any:
        if isinstance(self.floor_s, (int, float)) and self.floor_s == 0:
            return self.work_s + self.overhead_s
        return smax(self.work_s + self.overhead_s, self.floor_s)


def _symbolic(*values: Any) -> bool:
    return any(isinstance(v, sympy.Basic) and not v.is_number for v in values)


@dataclass(frozen=True)
class ExecutionMode:
    """How kernels are launched: CUDA graphs for small steps ('auto'), always, or never."""

    cuda_graphs: str = "auto"  # auto | always | never


def kernel_overhead_s(profile: DeviceProfile, launches: int, mode: ExecutionMode, tokens: Any = None) -> Any:
    if launches == 0:
        return 0
    graph, eager = profile.graph_kernel_us * 1e-6, profile.kernel_launch_us * 1e-6
    if mode.cuda_graphs == "always":
        per = graph
    elif mode.cuda_graphs == "never":
        per = eager
    else:
        tokens = B * S if tokens is None else tokens
        per = sympy.Piecewise((graph, sympy.Le(tokens, profile.graph_max_tokens)), (eager, True))
    return launches * per


def eager_share(profile: DeviceProfile, mode: ExecutionMode, tokens: Any = None) -> Any:
    """1 where kernels launch eagerly, 0 inside a CUDA graph (a Piecewise in B·S for 'auto')."""
    if mode.cuda_graphs == "always":
        return 0
    if mode.cuda_graphs == "never":
        return 1
    tokens = B * S if tokens is None else tokens
    return sympy.Piecewise((0, sympy.Le(tokens, profile.graph_max_tokens)), (1, True))


def op_time(counts: Counts, kind: str, profile: DeviceProfile, mode: ExecutionMode = ExecutionMode()) -> OpTime:
    """Time of one op from its counts (and the kernel shape they carry), its kind and the device."""
    compute: Any = 0
    fallbacks: list[str] = []
    eff = efficiency_for(kind, counts, profile)
    for precision, flops in counts.flops.items():
        rate, used = profile.rate(precision)
        if used != precision and precision != "vector":
            fallbacks.append(f"{precision}->{used}")
        unit_eff = eff.compute_for("vector" if precision == "vector" else used)
        compute = compute + flops / (rate * unit_eff)
    memory: Any = 0
    if counts.bytes:
        memory = counts.bytes / (profile.memory_bandwidth_gbps * 1e9 * eff.memory) + eff.memory_latency_s
    comm: Any = 0
    if counts.comm is not None:
        from .communication import collective_time_s

        comm = collective_time_s(counts, profile)
    stall = eff.overlap * smin(compute, memory) if eff.overlap and counts.flops and counts.bytes else 0
    latency = eff.latency_s if counts.launches else 0
    return OpTime(compute_s=compute, memory_s=memory, comm_s=comm,
                  overhead_s=kernel_overhead_s(profile, counts.launches, mode), fallbacks=tuple(fallbacks),
                  latency_s=latency, stall_s=stall,
                  floor_s=eff.call_floor_s * eager_share(profile, mode) if eff.call_floor_s else 0)
