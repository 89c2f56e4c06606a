"""The communication model: a collective's `CommInfo` + device interconnect -> seconds.

Owns `collective_time_s(counts, profile)`, which `roofline.py` calls for every op whose Counts
carry a collective, and `links(profile)`, the interconnect hierarchy of the profile's
`[interconnect]` table (`DeviceProfile.interconnect`: per-GPU per-direction bandwidth and
per-step latency of the intra-node link — NVLink/NVSwitch, Infinity Fabric, Ascend HCCS, PCIe —
and of the inter-node link — InfiniBand, RoCE; one 400 Gb/s NIC per GPU is 50 GB/s). A group that fits in one node uses the intra-node link; a group spanning nodes runs at the
slower level — a ring through every rank is as fast as its slowest hop — except all_to_all, whose
intra- and inter-node shares travel at the same time on their own links.

Time = latency · steps + bytes / bandwidth (the alpha-beta model), per algorithm:

    ring all_reduce      2(n-1)·α + 2(n-1)/n · M/β
    tree all_reduce      2⌈log2 n⌉·α + 2 · M/β      (NCCL double binary tree: log latency, each
                                                      rank sends ~2M in total)
    all_reduce           the faster of the two (NCCL's tuner picks per message size)
    all_gather, reduce_scatter   (n-1)·α + (n-1)/n · M/β
    (a ring spanning N nodes: N - 1 of each pass's steps at the inter-node α, the others at the
     intra-node α, at least NCCL's 1 µs network post overhead; a tree spanning nodes: a chain of
     n/N - 1 intra-node steps and log2(N) inter-node ones, each way — NCCL's tuning.cc model)
    all_to_all           α + max(M·(g-1)/n / β_intra, M·(n-g)/n / β_inter)   (g ranks per node)
    send_recv            α + M/β

Bandwidths are the links' peaks times an optional `comm` fraction in the profile's
`[efficiency]` table (1.0 when absent). Results are sympy-safe expressions in B, S, C.

Measured protocols (an engine section fitted from collective measurements, e.g. NCCL's and
vLLM's custom all-reduce in `benchmarks/aic_fit.py`): a group inside one node then costs what the
library's tuner picks, the faster of its two protocol families (a group spanning nodes keeps the
alpha-beta model above plus the measured fixed cost t0 of a call),

    low-latency (LL/LL128)   t0 + steps·ts + traffic / (β·f_ll)
    bulk (Simple, NVLS)      t0 + t_simple + steps·ts + traffic / (β·f_simple)

with steps = 2(n-1) for all_reduce, n-1 otherwise, traffic the ring bytes per rank above (2(n-1)/n·M
or (n-1)/n·M; all_to_all adds s/n·M for the rank's own slice, s = `all_to_all_self_share`: NCCL
sends it to itself inside the same grouped send/recv kernel, at up to a peer's cost) and β the
intra-node link's peak: t0 (`<c>_latency_us`) is the fixed cost of a call,
ts (`<c>_step_us`) the per-step synchronisation, f_ll / f_simple (`<c>_ll_bandwidth`,
`<c>_simple_bandwidth`) the fractions of the link each protocol sustains and t_simple
(`<c>_simple_us`) the bulk protocol's extra start-up. vLLM's custom all-reduce
(`custom_all_reduce_*`, same five parameters; one-shot for small messages, two-shot for larger)
replaces NCCL for all-reduces of at most `custom_all_reduce_max_mib` MiB, as vLLM does inside
CUDA graphs. Groups spanning nodes keep the alpha-beta model (the measurements are intra-node), plus
the measured call cost t0 (`call_latency_s`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sympy

from ..sizes import smax, smin
from .counts import Counts
from .device import DeviceProfile, Link


@dataclass(frozen=True)
class Level:
    """One level of the hierarchy as the algorithms use it (SI units)."""

    name: str
    bandwidth_bytes_s: float  # per GPU, per direction
    latency_s: float


@dataclass(frozen=True)
class Links:
    gpus_per_node: int
    intra: Level
    inter: Level

    def level(self, nodes: int) -> Level:
        """The link a group spanning `nodes` nodes runs at: the slower of the two when > 1."""
        if nodes <= 1:
            return self.intra
        return Level(name=self.inter.name, bandwidth_bytes_s=min(self.intra.bandwidth_bytes_s, self.inter.bandwidth_bytes_s),
                     latency_s=max(self.intra.latency_s, self.inter.latency_s))


def _level(link: Link, efficiency: float) -> Level:
    return Level(name=link.name, bandwidth_bytes_s=link.bandwidth_gbps * 1e9 * efficiency,
                 latency_s=link.latency_us * 1e-6)


def links(profile: DeviceProfile, purpose: str = "a collective") -> Links:
    interconnect = profile.require_interconnect(purpose)
    efficiency = float(profile.efficiency.get("comm", 1.0))
    return Links(gpus_per_node=interconnect.gpus_per_node, intra=_level(interconnect.intra, efficiency),
                 inter=_level(interconnect.inter, efficiency))


NET_OVERHEAD_S = 1e-6  # NCCL getNetOverhead (tuning.cc): the network post cost every step of a multi-node ring pays


def ring_latency_s(steps: int, nodes: int, links_: Links) -> float:
    """`steps` ring steps, of which the ones that cross a node boundary (nodes - 1 per pass round the
    ring) wait for the inter-node link and the rest for the intra-node one, each at least the network
    post overhead once the ring spans nodes: NCCL's own ring latency model (src/graph/tuning.cc:
    `intraLat = max(intraLat, netOverhead)`, `(nsteps - nInterSteps) * intraLat + nInterSteps * interLat`,
    nInterSteps = nNodes - 1 per pass)."""
    if nodes <= 1:
        return steps * links_.intra.latency_s
    crossing = min(steps, nodes - 1)
    intra = max(links_.intra.latency_s, NET_OVERHEAD_S)
    return (steps - crossing) * intra + crossing * links_.level(nodes).latency_s


def ring_all_reduce_s(n: int, nodes: int, payload: Any, links_: Links) -> Any:
    link = links_.level(nodes)
    return 2 * ring_latency_s(n - 1, nodes, links_) + 2 * (n - 1) / n * payload / link.bandwidth_bytes_s


def tree_all_reduce_s(n: int, nodes: int, payload: Any, links_: Links) -> Any:
    """NCCL's double binary tree: a chain inside each node, a tree of depth log2(nodes) between nodes
    (tuning.cc: 2 * ((nRanks/nNodes - 1) * intraLat + log2i(nNodes) * interLat)); one node: log2(n)."""
    link = links_.level(nodes)
    if nodes <= 1:
        latency = 2 * math.ceil(math.log2(n)) * link.latency_s
    else:
        latency = 2 * ((n // nodes - 1) * links_.intra.latency_s + math.ceil(math.log2(nodes)) * link.latency_s)
    return latency + 2 * payload / link.bandwidth_bytes_s


def all_reduce_s(n: int, nodes: int, payload: Any, links_: Links) -> Any:
    return smin(ring_all_reduce_s(n, nodes, payload, links_), tree_all_reduce_s(n, nodes, payload, links_))


def ring_gather_s(n: int, nodes: int, payload: Any, links_: Links) -> Any:
    link = links_.level(nodes)
    return ring_latency_s(n - 1, nodes, links_) + (n - 1) / n * payload / link.bandwidth_bytes_s


def all_to_all_s(n: int, nodes: int, payload: Any, links_: Links) -> Any:
    if nodes <= 1:
        link = links_.intra
        return link.latency_s + (n - 1) / n * payload / link.bandwidth_bytes_s
    inter = links_.level(nodes)
    per_node = n // nodes  # ranks of the group on one node
    intra_s = (per_node - 1) / n * payload / links_.intra.bandwidth_bytes_s
    inter_s = (n - per_node) / n * payload / inter.bandwidth_bytes_s
    return inter.latency_s + smax(intra_s, inter_s)


def send_recv_s(n: int, nodes: int, payload: Any, links_: Links) -> Any:
    link = links_.level(nodes)
    return link.latency_s + payload / link.bandwidth_bytes_s


ALGORITHMS = {
    "all_reduce": all_reduce_s,
    "all_gather": ring_gather_s,
    "reduce_scatter": ring_gather_s,
    "all_to_all": all_to_all_s,
    "send_recv": send_recv_s,
}


MEASURED_COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "custom_all_reduce")
PROTOCOL_PARAMS = ("latency_us", "step_us", "ll_bandwidth", "simple_us", "simple_bandwidth")
SELF_SHARE = "self_share"  # optional, all_to_all only: <c>_self_share
CUSTOM_MAX_KEY = "custom_all_reduce_max_mib"
_RING_FACTOR = {"all_reduce": lambda n: 2 * (n - 1) / n, "custom_all_reduce": lambda n: 2 * (n - 1) / n,
                "all_gather": lambda n: (n - 1) / n, "reduce_scatter": lambda n: (n - 1) / n,
                "all_to_all": lambda n: (n - 1) / n}


@dataclass(frozen=True)
class Protocols:
    """The fitted protocol parameters of one collective (see the module docstring)."""

    latency_s: float
    step_s: float
    ll_bandwidth: float
    simple_s: float
    simple_bandwidth: float
    self_share: float = 0.0  # all_to_all: what moving the rank's own slice costs, as a share of a peer's


def protocols(profile: DeviceProfile, collective: str) -> Protocols | None:
    """The collective's measured-protocol parameters in the profile's efficiency section, or None."""
    table = profile.efficiency
    keys = [f"{collective}_{p}" for p in PROTOCOL_PARAMS]
    if not all(k in table for k in keys):
        return None
    lat, step, ll, simple, bulk = (float(table[k]) for k in keys)
    return Protocols(lat * 1e-6, step * 1e-6, ll, simple * 1e-6, bulk,
                     float(table.get(f"{collective}_{SELF_SHARE}", 0.0)))


def protocol_time_s(collective: str, n: int, payload: Any, bandwidth_bytes_s: float, p: Protocols) -> Any:
    """The faster of the low-latency and the bulk protocol for `payload` bytes over n ranks."""
    steps = 2 * (n - 1) if collective in ("all_reduce", "custom_all_reduce") else n - 1
    traffic = _RING_FACTOR[collective](n) * payload
    if collective == "all_to_all":  # the rank's own slice (1/n of the payload) at self_share of a peer's cost
        traffic = traffic + p.self_share / n * payload
    fixed = p.latency_s + steps * p.step_s
    return smin(fixed + traffic / (bandwidth_bytes_s * p.ll_bandwidth),
                fixed + p.simple_s + traffic / (bandwidth_bytes_s * p.simple_bandwidth))


def measured_time_s(collective: str, n: int, payload: Any, profile: DeviceProfile,
                    purpose: str = "a collective") -> Any | None:
    """Time from the engine section's measured protocols (intra-node groups), or None when absent."""
    nccl = protocols(profile, collective)
    if nccl is None:
        return None
    bandwidth = profile.require_interconnect(purpose).intra_node_bandwidth_gbps * 1e9
    time = protocol_time_s(collective, n, payload, bandwidth, nccl)
    custom = protocols(profile, "custom_all_reduce") if collective == "all_reduce" else None
    if custom is None or CUSTOM_MAX_KEY not in profile.efficiency:
        return time
    limit = float(profile.efficiency[CUSTOM_MAX_KEY]) * 2**20
    custom_time = protocol_time_s("custom_all_reduce", n, payload, bandwidth, custom)
    if isinstance(payload, sympy.Basic) and not payload.is_number:
        return sympy.Piecewise((custom_time, sympy.Le(payload, limit)), (time, True))
    return custom_time if payload <= limit else time


def collective_time_s(counts: Counts, profile: DeviceProfile) -> Any:
    comm = counts.comm
    if comm is None:
        return 0
    if comm.group_size <= 1:
        return 0
    try:
        algorithm = ALGORITHMS[comm.collective]
    except KeyError:
        raise ValueError(f"no communication model for collective {comm.collective!r}; known: "
                         f"{', '.join(ALGORITHMS)}") from None
    purpose = f"a {comm.collective} over {comm.group_size} GPUs ({comm.scope})"
    if comm.nodes <= 1 and comm.collective in MEASURED_COLLECTIVES:
        measured = measured_time_s(comm.collective, comm.group_size, comm.payload_bytes, profile, purpose)
        if measured is not None:
            return measured
    return call_latency_s(comm.collective, comm.nodes, profile) + algorithm(
        comm.group_size, comm.nodes, comm.payload_bytes, links(profile, purpose))


def call_latency_s(collective: str, nodes: int, profile: DeviceProfile) -> float:
    """The fixed cost of one library call (launch, setup: the measured protocols' t0,
    `<collective>_latency_us`), which a group spanning nodes pays as well as one inside a node
    (NCCL's tuner adds its base latency to every algorithm, tuning.cc `baseLat`); 0 for a section
    without measured protocols. Groups inside one node have it in `measured_time_s` already."""
    if nodes <= 1:
        return 0.0
    p = protocols(profile, collective)
    return p.latency_s if p is not None else 0.0
