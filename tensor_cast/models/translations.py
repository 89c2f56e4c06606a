"""Configs transformers does not build, translated onto a built-in architecture that computes the same model.

Owns `TRANSLATIONS` (the `model_type` a public config.json writes -> `Translation`) and
`translate(data, source)`. A translation is exact or refused: it names the one architecture
(`architectures[0]`) it is exact for, renames the fields the target spells differently, derives
the fields the target needs, and refuses, in one line, every setting the target's modules cannot
express (so no model is ever costed as a near neighbour). No remote code runs: the written
config's own code (its `auto_map`) is never imported.

Rows:
- `bailing_moe` (inclusionAI Ling 2.0 / Ring 2.0: Ling-mini-2.0, Ling-flash-2.0, Ling-1T, Ring-1T;
  `BailingMoeV2ForCausalLM`, remote code on the hub) -> `glm4_moe` (GLM-4.5's modules). Both are
  GQA attention with optional per-head QK RMSNorm and partial ("half") RoPE, the first
  `first_k_dense_replace` layers dense (`intermediate_size`), then DeepSeek-V3-style MoE: a router
  of `num_experts` rows scored by sigmoid with a load-balancing bias (a buffer), group-limited top-k
  (`n_group`, `topk_group`), `routed_scaling_factor`, and `num_shared_experts` shared experts of width
  `moe_intermediate_size` x that count; untied LM head; MTP layers in `num_nextn_predict_layers`.
  Ling's fused `query_key_value` projection holds the same weights as GLM's q/k/v projections
  (tensor_cast's fusion pass fuses them back). `norm_head` (the LM head's rows L2-normalised) is
  applied to the weights once at load time by the engines (vLLM `load_weights`), not per step: free.
  Refused: `BailingMoeForCausalLM` (Ling v1: softmax routing without groups or expert bias), `use_bias`
  (biases on the output and MLP projections, which GLM-4.5's modules lack), a `score_function`
  other than sigmoid. Sources: vLLM `vllm/model_executor/models/bailing_moe.py`, llama.cpp
  `convert_hf_to_gguf.py` (`BailingMoeV2Model`: partial_rotary_factor default 0.5), the Ling-V2
  model cards (Ling-mini-2.0: 16.26B parameters, 789M activated without embeddings; Ling-1T: 1T).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import UnsupportedModelError, choices
from .config_checks import check_required


@dataclass(frozen=True)
class Refusal:
    test: Callable[[Any], bool]  # the written value (None when absent) -> True when it cannot be expressed
    lacks: str  # what the target's modules lack, for the message
    accepted: str  # the values that are accepted


@dataclass(frozen=True)
class Translation:
    target: str  # the transformers model_type whose modules compute the same model
    architectures: tuple[str, ...]  # the written `architectures[0]` values this row is exact for
    renames: Mapping[str, str] = field(default_factory=dict)  # written field -> the target's name for it
    refuse: Mapping[str, Refusal] = field(default_factory=dict)  # written field -> the values the target cannot express
    derive: Callable[[dict[str, Any]], dict[str, Any]] = lambda data: {}  # target fields computed from the written ones
    family: str = ""  # the model family, for messages


def _bailing_derived(data: dict[str, Any]) -> dict[str, Any]:
    heads = int(data.get("num_attention_heads") or 0)
    head_dim = data.get("head_dim") or (int(data["hidden_size"]) // heads if heads and "hidden_size" in data else None)
    out: dict[str, Any] = {}
    if head_dim:
        out["head_dim"] = int(head_dim)
    if "partial_rotary_factor" in data:
        out["partial_rotary_factor"] = float(data["partial_rotary_factor"])
    elif data.get("rotary_dim") and head_dim:
        out["partial_rotary_factor"] = int(data["rotary_dim"]) / int(head_dim)
    else:  # Ling 2.0's "half RoPE", the default llama.cpp's converter also takes
        out["partial_rotary_factor"] = 0.5
    return out


TRANSLATIONS: Mapping[str, Translation] = MappingProxyType({
    "bailing_moe": Translation(
        target="glm4_moe",
        architectures=("BailingMoeV2ForCausalLM",),
        renames={"num_experts": "n_routed_experts", "num_shared_experts": "n_shared_experts",
                 "use_qkv_bias": "attention_bias"},
        refuse={"use_bias": Refusal(bool, "biases on the attention output and MLP projections", "false"),
                "score_function": Refusal(lambda v: v is not None and str(v).lower() != "sigmoid",
                                          "a router scored other than by sigmoid", "sigmoid")},
        derive=_bailing_derived,
        family="Ling 2.0 / Ring 2.0",
    ),
})


def translate(data: Mapping[str, Any], source: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config.json dict `data` as its translation's target config (model_type included), or
    `data` unchanged when its model_type has no translation. Raises UnsupportedModelError, one line,
    for an architecture or a setting the target cannot express; MalformedConfigError for a missing
    field of `required` (the target adapter's required fields), named as the written config names it."""
    written = data.get("model_type")
    row = TRANSLATIONS.get(str(written))
    if row is None:
        return dict(data)
    archs = data.get("architectures") or []
    arch = archs[0] if isinstance(archs, list) and archs else None
    if arch not in row.architectures:
        raise UnsupportedModelError(
            f"{source}: model_type {written!r} with architecture {arch!r} is not supported; supported "
            f"architectures for {written!r}: {choices(row.architectures)} ({row.family}, costed as {row.target})")
    for name, refusal in row.refuse.items():
        if refusal.test(data.get(name)):
            raise UnsupportedModelError(
                f"{source}: {arch} with {name}={data.get(name)!r} is not supported ({refusal.lacks}: not in "
                f"{row.target}'s modules, which cost it); accepted {name}: {refusal.accepted}")
    derived = row.derive(dict(data))
    written_name = {target: name for name, target in row.renames.items()}
    check_required(data, [written_name.get(f, f) for f in required if f not in derived], source, str(written))
    out = {row.renames.get(k, k): v for k, v in data.items() if k not in ("model_type", "auto_map")}
    out.update(derived)
    out["model_type"] = row.target
    return out
