"""The InferenceMAX agg launch-flags table (benchmarks/data/inferencemax_agg_flags.csv) and its semantics.

Owns reading the table, its condition and value cells, and turning one run's flags into tensor_cast
engine knobs (`engine_args`) and deployment keys. Which run a measured row is, and its variables
(CONC, ISL, OSL, TP, EP, DP_ATTN, MAX_MODEL_LEN), are the caller's (`serving_fidelity.py`,
`inferencemax_flags`); the table's README says what each column transcribes and from which script.

Lines of one key (model, system, backend, precision) apply in file order where all their conditions
(the script's variables, and the engine version the row ran: a later script version's lines) hold
(`mtp` true: the run of the script's `_mtp.sh` twin, whose lines stand apart from the plain script's,
marked false), a later line's non-empty cells overriding (`kernels` cells accumulating), as the
scripts set defaults and then override them by branch. A `?` cell is a flag the measurements contradict: the run
is not determined (`Undetermined`).
"""

from __future__ import annotations

import ast
import csv
import operator
import os
import re
from typing import Any

FLAGS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "inferencemax_agg_flags.csv")
KEYS = ("model", "system", "backend", "precision")
CONDITIONS = ("isl", "osl", "tp", "ep", "dp_attn", "conc", "mtp", "version")  # matched against the same-named variables
INT_KNOBS = ("max_num_batched_tokens", "max_num_seqs", "block_size", "batch_wait_timeout_iters",
             "scheduler_recv_interval", "adp_balance_timeout_iters", "adp_batching_wait_iters")
FLOAT_KNOBS = ("memory_utilization", "batch_wait_max_tokens_ratio")
OPS: dict[type, Any] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                        ast.FloorDiv: operator.floordiv, ast.Lt: operator.lt, ast.LtE: operator.le,
                        ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Eq: operator.eq}
_ROWS: list[dict[str, str]] = []


class Undetermined(Exception):
    """The table marks a flag of this run `?`: the stored script contradicts the measurement."""


def rows() -> list[dict[str, str]]:
    if not _ROWS:
        with open(FLAGS_PATH, newline="") as fh:
            _ROWS.extend(csv.DictReader(fh))
    return _ROWS


def value(text: str, env: dict[str, int]) -> float:
    """A value cell: a number, or an expression of the script's variables with + - * //, max, min,
    comparisons and `a if cond else b`, as the scripts compute them."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id in env:
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            return OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("max", "min"):
            return (max if node.func.id == "max" else min)(ev(a) for a in node.args)
        if isinstance(node, ast.IfExp):
            return ev(node.body) if ev(node.test) else ev(node.orelse)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in OPS:
            return OPS[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        raise ValueError(f"unsupported expression in {FLAGS_PATH}: {text!r}")

    return ev(ast.parse(text, mode="eval"))


def condition_holds(cell: str, variable: int | bool | str) -> bool:
    """A condition cell: empty (any), `true`/`false`, `N`, `<N`, `<=N`, `>N`, `>=N` or `A-B` (inclusive); on
    the engine version (a string variable) `<V`, `<=V`, `>V`, `>=V` or `V` over release versions, which a
    non-release build (`nightly-...`) never satisfies."""
    if not cell:
        return True
    if isinstance(variable, str):
        return _version_holds(cell, variable)
    if cell in ("true", "false"):
        return variable == (cell == "true")
    m = re.fullmatch(r"(<=|>=|<|>)?(\d+)(?:-(\d+))?", cell)
    if not m or (m.group(1) and m.group(3)):
        raise ValueError(f"bad condition {cell!r} in {FLAGS_PATH}")
    low = int(m.group(2))
    if m.group(3):
        return low <= variable <= int(m.group(3))
    return {None: variable == low, "<": variable < low, "<=": variable <= low, ">": variable > low,
            ">=": variable >= low}[m.group(1)]


def _version_holds(cell: str, version: str) -> bool:
    from packaging.version import InvalidVersion, Version

    m = re.fullmatch(r"(<=|>=|<|>)?(\d+(?:\.\d+)*)", cell)
    if not m:
        raise ValueError(f"bad version condition {cell!r} in {FLAGS_PATH}")
    try:
        have = Version(version)
    except InvalidVersion:
        return False
    want = Version(m.group(2))
    return {None: have == want, "<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want}[m.group(1)]


def entry(key: tuple[str, str, str, str], variables: dict[str, Any]) -> dict[str, str] | None:
    """The merged flags of the run `key` with script variables `variables`; None where the table has
    no line for the key."""
    lines = [r for r in rows() if tuple(r[k] for k in KEYS) == key]
    if not lines:
        return None
    merged: dict[str, str] = {}
    for line in lines:
        if all(condition_holds(line[c], variables[c.upper()]) for c in CONDITIONS):
            for k, v in line.items():
                if v and k not in KEYS and k not in CONDITIONS:
                    merged[k] = f"{merged[k]}; {v}" if k == "kernels" and k in merged else v
    return merged


def engine_knobs(flags: dict[str, str], variables: dict[str, int], engine: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(engine_args, deployment keys) of one run's merged flags. Mapped: the step budget (TensorRT-LLM
    max_num_tokens, vLLM max-num-batched-tokens, SGLang chunked-prefill-size), max_num_seqs
    (max_batch_size, max-num-seqs, max-running-requests), memory_utilization (free_gpu_memory_fraction,
    gpu-memory-utilization, mem-fraction-static), block_size, the decode CUDA-graph sizes (TensorRT-LLM
    cuda_graph_config via `trtllm_graph_sizes`, SGLang cuda-graph-max-bs; vLLM's defaults already cover
    every batch of these runs), prefill graphs (TensorRT-LLM piecewise CUDA graphs: no eager context
    step, eager_launch_host_s 0; vLLM FULL_DECODE_ONLY: graph_prefill off), batch waiting, SGLang's
    receive interval, the attention-DP balance, the KV-cache dtype (`auto`: the model's) and vLLM's
    all-reduce + RMSNorm fusion pass (`kernels` naming "allreduce+rms": allreduce_fusion on), vLLM's
    Marlin MoE for MXFP4 experts (`kernels` naming VLLM_MXFP4_USE_MARLIN=1: quant mxfp4_marlin),
    TensorRT-LLM's post-processing workers (`kernels` naming "num_postprocess_workers N":
    postprocess_workers N), TensorRT-LLM's forced NVLink all-to-all (`kernels` naming "ep > 1: ...
    TRTLLM_FORCE_ALLTOALL_METHOD=MNNVL" on a run with EP > 1: moe_exchange all_to_all, also the
    engine's default on one node, made explicit; tensor_cast/deployment/moe_exchange.py), the prefix
    cache where a script turns it off (`prefix_caching` false: the runs share no prefixes, but a vLLM
    request preempted by recompute finds its own blocks still cached, engines.py "Preemption and the
    prefix cache"; the scripts that do not set it run the engine's default, on). Recorded only:
    stream interval (no effect on TTFT / mean TPOT, engines.py) and the other kernel choices."""
    from tensor_cast.serving.engines import ENGINES, trtllm_graph_sizes

    undetermined = sorted(k for k, v in flags.items() if v == "?")
    if undetermined:
        raise Undetermined(f"InferenceMAX launch flag(s) {', '.join(undetermined)} not determined for this run "
                           "(the stored script contradicts the measurement: inferencemax_agg_flags README)")
    args: dict[str, Any] = {k: int(value(flags[k], variables)) for k in INT_KNOBS if k in flags}
    args.update({k: float(value(flags[k], variables)) for k in FLOAT_KNOBS if k in flags})
    if "cuda_graph_max_bs" in flags and engine != "vllm":
        top = int(value(flags["cuda_graph_max_bs"], variables))
        args["cuda_graph_sizes"] = (trtllm_graph_sizes(top, flags.get("cuda_graph_padding") == "true")
                                    if engine == "trtllm" else
                                    tuple(b for b in ENGINES[engine].cuda_graph_sizes if b <= top))
    if flags.get("prefill_graphs") == "true" and engine == "trtllm":
        args["eager_launch_host_s"] = 0.0
    if flags.get("prefill_graphs") == "false" and engine == "vllm":
        args["graph_prefill"] = False
    if engine == "vllm" and "allreduce+rms" in flags.get("kernels", ""):  # pass_config.fuse_allreduce_rms
        args["allreduce_fusion"] = True
    if flags.get("prefix_caching") == "false":  # --no-enable-prefix-caching / enable_block_reuse false
        args["prefix_caching"] = False
    workers = re.search(r"num_postprocess_workers (\d+)", flags.get("kernels", ""))
    if engine == "trtllm" and workers:  # trtllm-serve's post-processing workers: no fitted overhead
        args["postprocess_workers"] = int(workers.group(1))
    kv = flags.get("kv_cache_dtype")
    deployment: dict[str, Any] = {"kv_cache_dtype": None if kv == "auto" else kv} if kv else {}
    if engine == "vllm" and "VLLM_MXFP4_USE_MARLIN=1" in flags.get("kernels", ""):  # MXFP4 experts on Marlin
        deployment["quant"] = "mxfp4_marlin"
    forced = re.search(r"ep > 1:[^;]*TRTLLM_FORCE_ALLTOALL_METHOD=MNNVL", flags.get("kernels", ""))
    if engine == "trtllm" and forced and variables.get("EP", 1) > 1:  # the NVLink all-to-all, forced
        deployment["moe_exchange"] = "all_to_all"
    return args, deployment
