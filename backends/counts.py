"""`Counts`: what one op does, independent of any device.

A frozen value: FLOPs per precision class, bytes read and written from device memory, bytes
sent over the interconnect by a collective, persistent per-sequence state (KV cache, recurrent
state) the op keeps, and how many kernels it launches; beside them, the kernel shape an efficiency
model reads (`kernel`, see `backends/kernels.py`). Values are ints or sympy expressions in
the symbolic sizes (B, S, C). Formulas produce Counts; only the roofline backend turns them into
time with a device profile.

Precision classes name the unit that does the math: tensor-core rates (`fp4`, `fp8`, `int8`,
`bf16`, `fp16`, `tf32`) and `vector` (CUDA-core fp32, used by elementwise/reduction work).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

PRECISIONS = ("fp4", "fp8", "int8", "bf16", "fp16", "tf32", "fp32", "vector")


@dataclass(frozen=True)
class CommInfo:
    """A collective: its kind, the ranks in its group, and its payload (bytes per rank)."""

    collective: str  # all_reduce | all_gather | reduce_scatter | all_to_all | send_recv
    group_size: int
    payload_bytes: Any  # the logical message size per rank (the formula applies the algorithm)
    scope: str = "tp"  # which parallel group: tp | ep | dp | pp
    nodes: int = 1  # nodes the group spans (> 1: the collective runs at the inter-node link's speed)


@dataclass(frozen=True)
class Counts:
    flops: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    bytes_read: Any = 0
    bytes_written: Any = 0
    comm_bytes: Any = 0  # bytes each rank sends over the interconnect (after the algorithm)
    comm: CommInfo | None = None
    state_bytes: Any = 0  # persistent per-step state this op holds: KV cache, recurrent state
    launches: int = 1
    # the kernel's shape for the efficiency model (backends/kernels.py: GemmShape, AttentionShape),
    # None when the kernel has no shape model; not a count: sums and comparisons ignore it
    kernel: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.flops) - set(PRECISIONS)
        if unknown:
            raise ValueError(f"unknown precision class {sorted(unknown)}; known: {PRECISIONS}")
        if not isinstance(self.flops, MappingProxyType):
            object.__setattr__(self, "flops", MappingProxyType(dict(self.flops)))

    @property
    def total_flops(self) -> Any:
        return sum(self.flops.values(), 0)

    @property
    def bytes(self) -> Any:
        return self.bytes_read + self.bytes_written

    def __add__(self, other: Counts) -> Counts:
        flops = dict(self.flops)
        for k, v in other.flops.items():
            flops[k] = flops.get(k, 0) + v
        if self.comm and other.comm:
            raise ValueError("cannot add two collectives' counts")
        return Counts(
            flops=flops,
            bytes_read=self.bytes_read + other.bytes_read,
            bytes_written=self.bytes_written + other.bytes_written,
            comm_bytes=self.comm_bytes + other.comm_bytes,
            comm=self.comm or other.comm,
            state_bytes=self.state_bytes + other.state_bytes,
            launches=self.launches + other.launches,
        )


ZERO = Counts(launches=0)
