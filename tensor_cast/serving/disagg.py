"""Prefill/decode disaggregation: the pool spec and the KV transfer between pools.

Owns `parse_disagg(spec)` -> {"prefill": Pool, "decode": Pool} from text such as
"prefill: 2x tp4; decode: 1x tp8 dp8 ep8" or "decode: 1x tp4 pp2" (or a mapping {"prefill": {"workers": 2, "tp": 4},
...}); `moetp<n>` (mapping key `moe_tp`) sets the TP degree inside each routed expert (the
deployment keyword `moe_tp`: "prefill: 1x tp1 dp8 moetp8" is attention DP8 with MoE TP8);
`bs<n>` (mapping key `max_num_seqs`) caps the requests one rank of that pool runs at once
(the engine's max_num_seqs / max_running_requests / max_batch_size, per attention-DP rank), as
disaggregated recipes set it per pool (TensorRT-LLM's `max_batch_size` of the generation
servers, e.g. Dynamo's `ctx1_gen2_dep8_batch64` recipes: 64 per DP rank); without it the
engine's own default applies. `tok<n>` (mapping key `max_num_batched_tokens`) sets that pool's step
budget, the engine knob of that name (SGLang: its `--chunked-prefill-size`, which SGLang divides
among a pool's attention-DP ranks itself, engines.py "Attention-DP division"), as disaggregated
recipes set it per pool. `a2a` / `allgather` (mapping key `moe_exchange`: "all_to_all" / "allgather") set
that pool's MoE exchange under attention DP + EP (the deployment keyword `moe_exchange`,
deployment/moe_exchange.py), as recipes choose it per pool (SGLang `moe-a2a-backend: deepep`: a2a);
without it the deployment's, else the engine's default. And `kv_transfer_s(...)`: the time to move one request's KV cache from its prefill worker
to its decode worker over the interconnect model of `backends/communication.py` (alpha-beta:
latency + bytes / per-GPU bandwidth; every GPU of the prefill worker sends its own shard at once,
NIXL/Mooncake-style; the inter-node link when the two pools cannot share one node).

It must not simulate or schedule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..backends.communication import links
from ..backends.device import DeviceProfile
from ..deployment.moe_exchange import EXCHANGES
from ..errors import InvalidArgumentError

ROLES = ("prefill", "decode")
PARALLEL_KEYS = ("tp", "dp", "ep", "pp", "moe_tp")
TEXT_KEYS = {"moetp": "moe_tp"}  # text token -> parallel key
ENGINE_KEYS = {"bs": "max_num_seqs", "tok": "max_num_batched_tokens"}  # text token -> Pool field
EXCHANGE_WORDS = {"a2a": "all_to_all", "allgather": "allgather"}  # text word -> Pool.moe_exchange (EXCHANGES)
FORMAT = ('accepted: "prefill: <N>x tp<a> [dp<b>] [ep<c>] [moetp<m>] [pp<g>] [bs<s>] [tok<k>] [a2a|allgather]; '
          'decode: <M>x tp<d> [dp<e>] [ep<f>] [moetp<n>] [pp<h>] [bs<t>] [tok<l>] [a2a|allgather]"')


@dataclass(frozen=True)
class Pool:
    workers: int
    tp: int = 1
    dp: int = 1
    ep: int = 1
    pp: int = 1
    moe_tp: int | None = None  # TP degree inside each routed expert (None: the deployment's default)
    max_num_seqs: int | None = None  # requests one rank runs at once (None: the engine's default)
    max_num_batched_tokens: int | None = None  # the pool's step budget (None: the engine's default)
    moe_exchange: str | None = None  # attention DP + EP exchange (None: the deployment's / engine's)

    @property
    def gpus_per_worker(self) -> int:
        return self.tp * self.dp * self.pp

    def deployment(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tp": self.tp, "dp": self.dp, "ep": self.ep, "pp": self.pp}
        optional = (("moe_tp", self.moe_tp), ("moe_exchange", self.moe_exchange))
        return {**out, **{k: v for k, v in optional if v is not None}}


def parse_disagg(spec: str | Mapping[str, Any]) -> dict[str, Pool]:
    if isinstance(spec, Mapping):
        return _from_mapping(spec)
    if not isinstance(spec, str):
        raise InvalidArgumentError(f"disagg must be a string or a mapping, got {spec!r}; {FORMAT}")
    pools: dict[str, Pool] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        match = re.fullmatch(r"(\w+)\s*:\s*(\d+)\s*x\s*(.*)", part)
        if not match or match.group(1) not in ROLES or match.group(1) in pools:
            raise InvalidArgumentError(f"bad disagg spec {spec!r} at {part!r}; {FORMAT}")
        values: dict[str, Any] = {}
        for token in match.group(3).split():
            if token in EXCHANGE_WORDS and "moe_exchange" not in values:
                values["moe_exchange"] = EXCHANGE_WORDS[token]
                continue
            m = re.fullmatch(r"(tp|dp|ep|moetp|pp|bs|tok)(\d+)", token)
            key = ENGINE_KEYS.get(m.group(1), TEXT_KEYS.get(m.group(1), m.group(1))) if m else ""
            if not m or key in values:
                raise InvalidArgumentError(f"bad disagg spec {spec!r} at {token!r}; {FORMAT}")
            values[key] = int(m.group(2))
        pools[match.group(1)] = _pool(spec, int(match.group(2)), values)
    if set(pools) != set(ROLES):
        raise InvalidArgumentError(f"disagg spec {spec!r} needs both a prefill and a decode pool; {FORMAT}")
    return pools


def _from_mapping(spec: Mapping[str, Any]) -> dict[str, Pool]:
    if set(spec) != set(ROLES):
        raise InvalidArgumentError(f"disagg mapping needs exactly the keys prefill, decode, got {sorted(spec)}")
    pools = {}
    for role in ROLES:
        entry = dict(spec[role])
        workers = entry.pop("workers", 1)
        unknown = set(entry) - set(PARALLEL_KEYS) - set(ENGINE_KEYS.values()) - {"moe_exchange"}
        if unknown:
            raise InvalidArgumentError(f"disagg {role} has unknown keys {sorted(unknown)}; "
                                       "accepted: workers, tp, dp, ep, pp, moe_tp, max_num_seqs, "
                                       "max_num_batched_tokens, moe_exchange")
        pools[role] = _pool(str(dict(spec)), workers, entry)
    return pools


def _pool(spec: str, workers: Any, values: Mapping[str, Any]) -> Pool:
    exchange = values.get("moe_exchange")
    if exchange is not None and exchange not in EXCHANGES:
        raise InvalidArgumentError(f"disagg spec {spec!r}: moe_exchange must be {' or '.join(EXCHANGES)}, got {exchange!r}")
    for name, value in [("workers", workers), *((k, v) for k, v in values.items() if k != "moe_exchange")]:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"disagg spec {spec!r}: {name} must be an integer >= 1, got {value!r}; {FORMAT}")
    return Pool(workers=workers, **values)


def kv_transfer_s(kv_bytes_per_gpu: float, profile: DeviceProfile, total_gpus: int) -> float:
    """Seconds to move one request's KV shard (`kv_bytes_per_gpu` on each prefill GPU)."""
    link = links(profile, "the disaggregated KV transfer")
    level = link.level(1 if total_gpus <= link.gpus_per_node else 2)
    return level.latency_s + kv_bytes_per_gpu / level.bandwidth_bytes_s
