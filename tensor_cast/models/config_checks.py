"""Checks of a model config's values before anything is built from it.

Owns what a config must hold to be costed, as tables:

- `POSITIVE_FIELDS` / `NON_NEGATIVE_FIELDS`: size fields that must be integers >= 1 (or >= 0)
  when present and not null — a string, a float, a bool, zero or a negative number is refused
  with one line naming the field and the accepted values, instead of a torch / sympy /
  transformers traceback deep inside the build;
- `check_values(data, source)`: those fields, at the top level and in `text_config`, and the
  attention shape (hidden_size divisible by num_attention_heads when there is no head_dim);
- `check_required(data, fields, source)`: the fields a family's adapter needs
  (`DecoderAdapter.required_fields`), refused together when missing. Transformers would fill
  them with its own defaults (a config without `hidden_size` becomes a 4096-wide model): the
  only defaults accepted are those the family's published configs omit (`head_dim`,
  `num_key_value_heads`, ...), and `tests/test_inputs.py` checks every registry config passes;
- `check_spec(spec)`: the attention heads of every layer (KV heads >= 1, dividing the query heads).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import MalformedConfigError
from .spec import GQA_KINDS, ModelSpec

POSITIVE_FIELDS = (
    "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "vocab_size",
    "num_key_value_heads", "head_dim", "max_position_embeddings", "sliding_window",
    # MoE
    "moe_intermediate_size", "num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts",
    "num_experts_per_tok", "moe_k", "experts_per_token", "n_group", "topk_group",
    # MLA, DeepSeek sparse attention
    "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "index_topk",
    "index_n_heads", "index_head_dim",
    # gated DeltaNet
    "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
    "linear_conv_kernel_dim",
)
NON_NEGATIVE_FIELDS = (
    "n_shared_experts", "moe_num_shared_experts", "shared_expert_intermediate_size", "first_k_dense_replace",
    "num_nextn_predict_layers", "mtp_num_hidden_layers",
)


# families whose configs may give a size per layer, as a list (each entry checked like the scalar)
PER_LAYER_LISTS = {"hunyuan_v1_moe": ("num_experts", "moe_topk", "moe_intermediate_size", "num_shared_expert")}
# families where a POSITIVE_FIELDS entry may be 0: Granite 4.0 hybrids without experts (H-Micro: the shared MLP alone)
ZERO_ALLOWED = {"granitemoehybrid": ("num_local_experts",)}
# latent attention without RoPE: `head_dim` is not read by the modules (Kimi-Linear's checkpoint writes 72)
NO_ROPE_LATENT = ("kimi_linear",)


def _describe(value: Any) -> str:
    kind = {str: "a string", float: "a float", bool: "a bool", list: "a list", dict: "an object"}.get(type(value))
    return f"{value!r} ({kind})" if kind else repr(value)


def _sections(data: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    yield "", data
    text = data.get("text_config")
    if isinstance(text, Mapping):
        yield "text_config.", text


def check_values(data: Mapping[str, Any], source: str) -> None:
    """Size fields are integers in range; heads divide hidden_size when head_dim is absent."""
    for prefix, section in _sections(data):
        lists = PER_LAYER_LISTS.get(str(section.get("model_type")), ())
        zero_allowed = ZERO_ALLOWED.get(str(section.get("model_type")), ())
        for fields, least in ((POSITIVE_FIELDS, 1), (NON_NEGATIVE_FIELDS, 0)):
            for name in fields:
                value = section.get(name)
                if value is None:
                    continue
                minimum = 0 if name in zero_allowed else least
                for entry in (value if name in lists and isinstance(value, list) and value else [value]):
                    if isinstance(entry, bool) or not isinstance(entry, int) or entry < minimum:
                        what = "an integer" + (" (or a list of them, one per layer)" if name in lists else "")
                        raise MalformedConfigError(
                            f"{source}: {prefix}{name} must be {what} >= {minimum}, got {_describe(value)}")
        rope, head_dim = section.get("qk_rope_head_dim"), section.get("head_dim")
        no_rope = section.get("model_type") in NO_ROPE_LATENT
        if (section.get("kv_lora_rank") is not None and head_dim is not None and rope is not None and head_dim != rope
                and not no_rope):
            raise MalformedConfigError(  # MLA: the rotary embedding's width, qk_rope_head_dim (GLM-5 writes both)
                f"{source}: {prefix}head_dim={head_dim} contradicts {prefix}qk_rope_head_dim={rope}: in latent "
                f"attention (kv_lora_rank) head_dim is the rotary part; leave it out or make it {rope}")
        hidden, heads = section.get("hidden_size"), section.get("num_attention_heads")
        latent = section.get("kv_lora_rank") is not None  # MLA: head sizes are qk_nope / qk_rope / v_head_dim
        if hidden and heads and head_dim is None and hidden % heads and not latent:
            raise MalformedConfigError(
                f"{source}: {prefix}hidden_size={hidden} is not divisible by {prefix}num_attention_heads={heads} and "
                f"there is no head_dim; give head_dim, or num_attention_heads dividing {hidden}")


def check_required(data: Mapping[str, Any], fields: Iterable[str], source: str, model_type: str) -> None:
    """Every field the family needs is given (transformers' defaults for them are not the model's)."""
    missing = [name for name in fields if data.get(name) is None]
    if missing:
        raise MalformedConfigError(
            f"{source}: config of model_type {model_type!r} lacks required field(s) {', '.join(missing)} "
            f"(required: {', '.join(fields)}); transformers' defaults for them would describe another model")


def check_spec(spec: ModelSpec) -> None:
    """Attention heads of every layer: KV heads >= 1 and dividing the query heads (GQA groups)."""
    for index, layer in enumerate(spec.layers):
        att = layer.attention
        if att.kind not in GQA_KINDS:
            continue
        heads, kv = att.num_heads, att.num_kv_heads
        if kv < 1 or heads % kv:
            valid = [d for d in range(1, heads + 1) if heads % d == 0]
            raise MalformedConfigError(
                f"{spec.name}: layer {index}: num_key_value_heads={kv} does not divide num_attention_heads={heads}; "
                f"valid: {', '.join(map(str, valid))}")
        if att.head_dim < 1:
            raise MalformedConfigError(f"{spec.name}: layer {index}: head_dim must be >= 1, got {att.head_dim}")
