"""A trace record re-timed on one device, from the disk cache when it was re-timed before.

Re-timing (`TracedCosts.costed`) runs the roofline backend on every node's symbolic counts:
sympy work of about a second for a large model, the same every time for the same record, device
profile and execution mode. Its result (one `OpTime` per node) is stored beside the traces as a
side entry of kind "timed" (`store.py`), keyed by the record's key, the device profile's contents
(its pickled bytes: an edited profile file is another key) and the CUDA-graph mode, plus what
every cache key holds (versions, source fingerprint: an edited backend is another key). A hit
gives the nodes the re-timing gives (same expressions, rebuilt unevaluated as records are).
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from dataclasses import replace

from ..backends.device import DeviceProfile
from ..backends.roofline import ExecutionMode, OpTime
from ..costed import CostedGraph
from .record import TracedCosts, dumps
from .store import CacheStore, make_key


def timed_key(record: TracedCosts, profile: DeviceProfile, mode: ExecutionMode) -> str:
    return make_key(["timed", record.key, hashlib.sha256(dumps(profile)).hexdigest(), mode.cuda_graphs])


def costed(record: TracedCosts, profile: DeviceProfile, mode: ExecutionMode, store: CacheStore | None) -> CostedGraph:
    """`record.costed(profile, mode)`, through the disk cache when `store` is given."""
    if store is None:
        return record.costed(profile, mode)
    key = timed_key(record, profile, mode)
    times = store.load_side("timed", key)
    if isinstance(times, tuple) and len(times) == len(record.nodes) and all(isinstance(t, OpTime) for t in times):
        nodes = [replace(n, time=t) for n, t in zip(record.nodes, times, strict=True)]
        return CostedGraph(nodes=nodes, free_ops=Counter(dict(record.free_ops)), graph=None,
                           activations=record.activations)
    graph = record.costed(profile, mode)
    try:
        store.store_side("timed", key, tuple(n.time for n in graph.nodes))
    except OSError as exc:
        print(f"tensor-cast: warning: trace cache not written ({exc}); use --no-cache to skip it", file=sys.stderr)
    return graph
