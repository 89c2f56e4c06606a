"""The rewrite passes and the pipeline that runs them, declared once, in order.

Each pass is a function `GraphModule -> GraphModule` (one file each, named `<verb>_<object>`),
whose docstring states what it matches, what it produces and the invariant after it runs.
`build_pipeline(options)` returns the ordered passes enabled for the analysis options, bound to
their parameters; `run_pipeline(gm, passes, on_pass)` runs them, calling `on_pass` after each
(the analysis writes `00_capture.txt`, `01_eliminate_dead_code.txt`, ... from it) and naming
the failing pass and the ones that ran before it on error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from torch import fx

from .check_kept_unquantized import check_kept_unquantized
from .eliminate_dead_code import eliminate_dead_code
from .eliminate_noop_views import eliminate_noop_views
from .fold_rotary_tables import fold_rotary_tables
from .fuse_activation_mul import fuse_activation_mul
from .fuse_add_rms_norm import fuse_add_rms_norm
from .fuse_allreduce_add_rms_norm import fuse_allreduce_add_rms_norm
from .fuse_linears import fuse_linears
from .fuse_rms_norm import fuse_rms_norm
from .fuse_rope import fuse_rope
from .fuse_squared_relu import fuse_squared_relu
from .insert_ep_collectives import insert_ep_collectives
from .insert_tp_collectives import insert_tp_collectives
from .quantize_kv_cache import quantize_kv_cache
from .quantize_linears import quantize_linears
from .quantize_moe import quantize_moe
from .replace_mla import replace_mla
from .replace_moe import replace_moe
from .shard_norms import shard_norms
from .verify_attention_replaced import verify_attention_replaced
from .verify_contract import verify_contract

PassFn = Callable[[fx.GraphModule], fx.GraphModule]


def _always(options: Any) -> bool:
    return True


def _fusing(options: Any) -> bool:
    return bool(getattr(options, "fuse", True))


def _no_params(options: Any) -> dict[str, Any]:
    return {}


def _mla_params(options: Any) -> dict[str, Any]:
    """With N MTP drafts a decode step verifies 1 + N tokens per sequence, still decode (the MLA
    form is a cost knob, not in the graph)."""
    return {"decode_query_len": 1 + getattr(options, "mtp", 0)}


# ---- deployment passes (tensor_cast/deployment/): options.deployment is a TraceDeployment ----------
def _deployment(options: Any) -> Any:
    from ..deployment.config import TraceDeployment

    return getattr(options, "deployment", None) or TraceDeployment()


def _tensor_parallel(options: Any) -> bool:
    return _deployment(options).tp > 1


def _tp_params(options: Any) -> dict[str, Any]:
    d = _deployment(options)
    return {"tp": d.tp, "nodes": d.tp_nodes, "row_parallel": d.row_parallel, "replicated": d.replicated}


def _norm_params(options: Any) -> dict[str, Any]:
    d = _deployment(options)
    return {"tp": d.tp, "nodes": d.tp_nodes, "norms": d.sharded_norms}


def _allreduce_fusing(options: Any) -> bool:
    """The engine fuses TP all-reduce + residual add + RMSNorm (`ExecutionOptions.allreduce_fusion`)."""
    return _fusing(options) and _tensor_parallel(options) and bool(getattr(options, "allreduce_fusion", False))


def _expert_parallel(options: Any) -> bool:
    """Experts split over ranks (ep > 1), or spanning the attention-DP replicas (MoE TP across them)."""
    d = _deployment(options)
    return d.ep > 1 or d.ep_dp > 1


def _ep_params(options: Any) -> dict[str, Any]:
    d = _deployment(options)
    return {"ep": d.ep, "dp": d.ep_dp, "nodes": d.ep_nodes, "moe_tp": d.moe_tp, "exchange": d.moe_exchange}


def _quantized(options: Any) -> bool:
    return _deployment(options).quant != "none"


def _quant_params(options: Any) -> dict[str, Any]:
    d = _deployment(options)
    return {"scheme": d.quant, "not_converted": d.not_converted, "quantize_lm_head": d.quantize_lm_head,
            "quantize_router": d.quantize_router}


def _moe_quant_params(options: Any) -> dict[str, Any]:
    """The experts' own scheme where the checkpoint stores them apart (DeepSeek-V4's FP4 experts), else `quant`'s."""
    d = _deployment(options)
    return {**_quant_params(options), "scheme": d.moe_quant or d.quant, "shared_scheme": d.quant if d.moe_quant else None}


def _keeps_unquantized(options: Any) -> bool:
    return bool(_deployment(options).keep_unquantized)


def _kept_params(options: Any) -> dict[str, Any]:
    return {"patterns": _deployment(options).keep_unquantized}


def _kv_quantized(options: Any) -> bool:
    return _deployment(options).kv_cache_bytes is not None


def _kv_params(options: Any) -> dict[str, Any]:
    return {"kv_bytes": _deployment(options).kv_cache_bytes}


@dataclass(frozen=True)
class Pass:
    """One pipeline entry. `run(gm, **params(options))`, only when `enabled(options)`.

    Passes that need deployment values (a TP degree, a quantization mode) take them as keyword
    arguments; `params` reads them from the analysis options, so the bound pass is still a
    `GraphModule -> GraphModule` function.
    """

    name: str
    run: Callable[..., fx.GraphModule]
    enabled: Callable[[Any], bool] = field(default=_always)
    params: Callable[[Any], dict[str, Any]] = field(default=_no_params)

    def bind(self, options: Any) -> PassFn:
        return partial(self.run, **self.params(options))


# The order matters where a comment says why.
PIPELINE: tuple[Pass, ...] = (
    Pass("verify_attention_replaced", verify_attention_replaced),  # first: attention was replaced at capture
    Pass("eliminate_dead_code", eliminate_dead_code),  # mask helpers left unused by the no-op mask
    Pass("replace_mla", replace_mla, params=_mla_params),  # before fusions: it removes kv_b_proj and the K/V copies
    # before the fusions: finds row-parallel projections and embedding/lm_head by their modules
    # (an MoE block's by its experts module, so before replace_moe folds that module away)
    Pass("insert_tp_collectives", insert_tp_collectives, _tensor_parallel, _tp_params),
    # Always on (not a fusion: the experts-hit model lives in the op); before the fusions, which
    # would otherwise fuse the shared experts' GEMMs the op absorbs, and before quantize_linears.
    Pass("replace_moe", replace_moe),
    Pass("fold_rotary_tables", fold_rotary_tables, _fusing),  # before fuse_rope, whose tables it produces
    Pass("fuse_rope", fuse_rope, _fusing),
    Pass("fuse_rms_norm", fuse_rms_norm, _fusing),
    Pass("fuse_add_rms_norm", fuse_add_rms_norm, _fusing),  # after fuse_rms_norm: matches its op
    # after the norm fusions: a q / k norm over TP-split channels becomes one sharded_rms_norm (refused unfused)
    Pass("shard_norms", shard_norms, _tensor_parallel, _norm_params),
    # after fuse_add_rms_norm: matches its op fed by insert_tp_collectives' all_reduce
    Pass("fuse_allreduce_add_rms_norm", fuse_allreduce_add_rms_norm, _allreduce_fusing),
    Pass("fuse_linears", fuse_linears, _fusing),
    Pass("fuse_activation_mul", fuse_activation_mul, _fusing),
    Pass("fuse_squared_relu", fuse_squared_relu, _fusing),
    # after fuse_linears: a fused QKV / gate+up GEMM is quantized as one, its input quantized once
    Pass("quantize_linears", quantize_linears, _quantized, _quant_params),
    Pass("quantize_moe", quantize_moe, _quantized, _moe_quant_params),  # after replace_moe: the experts' op
    Pass("check_kept_unquantized", check_kept_unquantized, _keeps_unquantized, _kept_params),
    # after quantize_moe: the dispatch travels in the experts' activation format (FP8 or the model dtype)
    Pass("insert_ep_collectives", insert_ep_collectives, _expert_parallel, _ep_params),
    Pass("quantize_kv_cache", quantize_kv_cache, _kv_quantized, _kv_params),
    Pass("eliminate_noop_views", eliminate_noop_views),
    Pass("eliminate_dead_code", eliminate_dead_code),  # whatever the rewrites orphaned
    # last: facts on every node, a cost rule for every op, every captured layer still owns costed ops
    Pass("verify_contract", verify_contract),
)


class PassError(RuntimeError):
    pass


def build_pipeline(options: Any = None) -> tuple[tuple[str, PassFn], ...]:
    """The enabled passes for these analysis options, bound to their parameters, in order."""
    return tuple((p.name, p.bind(options)) for p in PIPELINE if p.enabled(options))


def run_pipeline(gm: fx.GraphModule, passes: Sequence[tuple[str, PassFn]],
                 on_pass: Callable[[int, str, fx.GraphModule], None] | None = None) -> fx.GraphModule:
    """Run `passes` in order; `on_pass(index, name, gm)` after each (graph dumps)."""
    done: list[str] = []
    for index, (name, run) in enumerate(passes, start=1):
        try:
            gm = run(gm)
        except Exception as exc:
            from ..errors import TensorCastError

            if isinstance(exc, TensorCastError):
                raise
            raise PassError(f"pass {name} failed after {done or 'no passes'}: {type(exc).__name__}: {exc}") from exc
        done.append(name)
        if on_pass is not None:
            on_pass(index, name, gm)
    return gm


__all__ = ["PIPELINE", "Pass", "PassError", "build_pipeline", "run_pipeline"]
