"""Whether an engine runs the TP all-reduce + residual add + RMSNorm as one kernel, by default.

Owns `ENGINE_RULES` (engine -> the rule its source code applies when the user sets nothing) and
`resolve_allreduce_fusion(value, engine, architecture, deployment) -> (on, reason)`: the user's
choice (`allreduce_fusion=True/False`, CLI `--allreduce-fusion on|off`) or the engine's default.
The graph rewrite is `passes/fuse_allreduce_add_rms_norm.py`; it only runs under tensor
parallelism (tp > 1), whatever this says.

Engine defaults, from their code (the versions the measured serving runs used):
- trtllm: on. The PyTorch backend's decoder layers (`tensorrt_llm/_torch/models/modeling_llama.py`,
  `modeling_qwen3.py`, ...) call `AllReduce` with `AllReduceParams(fusion_op=
  AllReduceFusionOp.RESIDUAL_RMS_NORM, residual=..., norm_weight=...)` after o_proj and down_proj
  whenever the layer is tensor-parallel (not under attention DP); `allreduce_strategy` AUTO picks
  the one-shot / two-shot Lamport kernel (`cpp/tensorrt_llm/thop/allreduceOp.cpp`).
- vllm: off unless `compilation_config.pass_config.fuse_allreduce_rms` (FlashInfer
  `allreduce_fusion`, `vllm/compilation/passes/fusion/allreduce_rms_fusion.py`). Newer vLLM turns
  it on at the default optimization level -O2 when tp > 1 on SM90/SM100 with FlashInfer installed
  (`vllm/config/vllm.py` `enable_allreduce_rms_fusion`), but only for messages under
  `FI_ALLREDUCE_FUSION_MAX_SIZE_MB` (SM90: 2 MB at tp 4, 0.5 MB at tp 8): that size cap is not
  modelled here, so the default stays off and `allreduce_fusion=True` is the user's switch
  (InferenceMAX turns the pass on explicitly: benchmarks/data/inferencemax_agg_flags.csv).
- sglang: off unless `--enable-flashinfer-allreduce-fusion`, which `ServerArgs.
  _handle_model_specific_adjustments` (`python/sglang/srt/server_args.py`) turns on for the
  architectures in `SGLANG_AUTO_ARCHITECTURES` on SM90/SM100, single node, without DP attention
  (and no MoE all-to-all backend). The SM check is not made here (the profiles this is used with
  are SM90/SM100 GPUs).
- torch: off (plain PyTorch: NCCL all-reduce, then the norm).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgumentError

# SGLang server_args.py: model architectures with FlashInfer all-reduce fusion on by default
SGLANG_AUTO_ARCHITECTURES = (
    "DeepseekV3ForCausalLM", "GptOssForCausalLM", "Glm4MoeForCausalLM", "Glm4MoeLiteForCausalLM",
    "Qwen3MoeForCausalLM", "Qwen3NextForCausalLM", "Qwen3_5MoeForConditionalGeneration",
    "KimiK25ForConditionalGeneration",
)

Rule = Callable[[str, Any], tuple[bool, str]]  # (architecture, resolved deployment) -> (on, why)


def _trtllm(architecture: str, deployment: Any) -> tuple[bool, str]:
    return True, "TensorRT-LLM fuses the TP all-reduce with the residual add and RMSNorm by default"


def _vllm(architecture: str, deployment: Any) -> tuple[bool, str]:
    return False, "vLLM runs the all-reduce + RMSNorm fusion only with pass_config.fuse_allreduce_rms"


def _sglang(architecture: str, deployment: Any) -> tuple[bool, str]:
    if architecture not in SGLANG_AUTO_ARCHITECTURES:
        return False, f"SGLang enables FlashInfer all-reduce fusion by default only for {len(SGLANG_AUTO_ARCHITECTURES)} " \
                      f"MoE architectures, not {architecture}"
    if getattr(deployment, "experts_span_replicas", False) or getattr(deployment, "tp_nodes", 1) > 1:
        return False, "SGLang keeps FlashInfer all-reduce fusion off with DP attention or a TP group over nodes"
    return True, f"SGLang enables FlashInfer all-reduce fusion by default for {architecture}"


def _torch(architecture: str, deployment: Any) -> tuple[bool, str]:
    return False, "plain PyTorch runs the all-reduce and the norm as separate kernels"


ENGINE_RULES: dict[str, Rule] = {"trtllm": _trtllm, "vllm": _vllm, "sglang": _sglang, "torch": _torch}
SWITCHES = {"on": True, "off": False, "auto": None}


def check_allreduce_fusion(value: Any) -> bool | None:
    """None ('auto': the engine's default), True ('on') or False ('off')."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in SWITCHES:
        return SWITCHES[value.strip().lower()]
    raise InvalidArgumentError(f"allreduce_fusion must be one of True, False, None or {', '.join(SWITCHES)}, got {value!r}")


def resolve_allreduce_fusion(value: Any, engine: str, architecture: str, deployment: Any) -> tuple[bool, str]:
    """(on, why): the user's choice, else `engine`'s default for this model and deployment."""
    chosen = check_allreduce_fusion(value)
    if chosen is not None:
        return chosen, f"all-reduce + RMSNorm fusion {'on' if chosen else 'off'} (set by the user)"
    try:
        rule = ENGINE_RULES[engine]
    except KeyError:
        raise InvalidArgumentError(f"engine must be one of {', '.join(ENGINE_RULES)}, got {engine!r}") from None
    return rule(architecture, deployment)
