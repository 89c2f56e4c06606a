"""Disk cache of `BatchCost` builds: a warm simulation skips the sympy work of `from_report`.

`BatchCost.from_report` classifies and sums every costed node's time expression and rewrites
the sum in T (sympy rebuilding `Max`/`Piecewise` terms): seconds for a large model, once per
(trace, device, deployment) and per pipeline stage, the same every time. Its result — the
token-linear expression in T, the per-sequence expression in (B, S, C, T), the T table, the
launch count and the MoE share's expression and table — is stored as a side entry of kind
"step_cost" beside the traces (`cache/store.py`) and rebuilt by `lambdify` on a hit (the expressions come back unevaluated, as records do, so the
generated functions are the same source: the same numbers).

Key: the content it is built from — a SHA-256 of the nodes' time terms and launch counts,
the multiplicities (a stage's or the whole model's), the table size — plus batch_cost.py's own
source (the serving package is outside the trace cache's source fingerprint) and what every
cache key holds (versions, source fingerprint). The cache is off where the trace cache is
(`TENSOR_CAST_CACHE=0`).

It must not decide what a step costs (batch_cost.py) or which stages exist (pipeline.py).
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..cache.store import CacheStore, cache_enabled, make_key
from .batch_cost import BatchCost

KIND = "step_cost"


@lru_cache(maxsize=1)
def _builder_source() -> str:
    return hashlib.sha256(Path(__file__).with_name("batch_cost.py").read_bytes()).hexdigest()[:16]


def step_cost_key(sym: Any, table_tokens: int, multiplicities: Sequence[int] | None) -> str:
    nodes = sym._costed.nodes
    times = tuple((t.compute_s, t.memory_s, t.comm_s, t.overhead_s, t.latency_s, t.stall_s, t.floor_s)
                  for t in (n.time for n in nodes))  # what `OpTime.time_s` is built of (not built here)
    content = pickle.dumps((times, tuple(int(n.counts.launches) for n in nodes),
                            tuple(int(m) for m in sym._mult),
                            None if multiplicities is None else tuple(int(m) for m in multiplicities)),
                           protocol=pickle.HIGHEST_PROTOCOL)
    return make_key([KIND, hashlib.sha256(content).hexdigest(), int(table_tokens), _builder_source()])


def batch_cost(sym: Any, table_tokens: int = 16384, multiplicities: Sequence[int] | None = None) -> BatchCost:
    """`BatchCost.from_report(sym, table_tokens, multiplicities)`, through the disk cache."""
    if not cache_enabled() or not sym.symbolic:
        return BatchCost.from_report(sym, table_tokens=table_tokens, multiplicities=multiplicities)
    store = CacheStore()
    key = step_cost_key(sym, table_tokens, multiplicities)
    found = store.load_side(KIND, key)
    if isinstance(found, tuple) and len(found) == 6 and isinstance(found[2], np.ndarray) \
            and found[2].shape == (table_tokens + 1,) == getattr(found[5], "shape", None):
        linear, group, table, launches, shared, shared_table = found
        return BatchCost.from_parts(linear, group, table, int(launches), shared=(shared, shared_table, None))
    cost = BatchCost.from_report(sym, table_tokens=table_tokens, multiplicities=multiplicities)
    try:
        store.store_side(KIND, key, (cost.linear_expr, cost.group_expr, cost.linear_table, cost.launches,
                                        cost.shared_expr, cost.shared_table))
    except OSError as exc:
        print(f"tensor-cast: warning: step-cost cache not written ({exc}); TENSOR_CAST_CACHE=0 skips it",
              file=sys.stderr)
    return cost
