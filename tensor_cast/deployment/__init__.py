"""Deployments: parallelism (TP, EP, DP, PP), quantization, and what they do to cost and memory.

- `config.py`: the user's `Deployment`, checked and resolved against a model and a device;
- `quantization.py`: quantization schemes, KV-cache dtypes, checkpoint `quantization_config`s;
- `sharding.py`: the per-rank model spec (before capture); `tp_plan.py`: which modules are
  row-parallel;
- `pipeline.py`: pipeline-stage transfers and per-stage time/memory; `fit.py`: does it fit.

Graph rewrites live in `passes/` (insert_tp_collectives, insert_ep_collectives, quantize_linears,
quantize_kv_cache); collective, expert-parallel exchange and quantization ops in `tensor_cast/ops/`, their costs in `backends/formulas/`, the
interconnect model in `backends/communication.py`. This package must stay importable without
the ops (only `config` and `quantization` are imported here).
"""

from .config import Deployment, ResolvedDeployment, TraceDeployment, resolve
from .quantization import SCHEMES, QuantScheme

__all__ = ["SCHEMES", "Deployment", "QuantScheme", "ResolvedDeployment", "TraceDeployment", "resolve"]
