"""The adapter for Jamba (`jamba`: AI21's Jamba v0.1 and Jamba 1.5 / 1.6 / 1.7 Mini and Large).

Each decoder layer is a token mixer — GQA attention without positional encoding on the layers where
i % `attn_layer_period` == `attn_layer_offset`, a Mamba-1 mixer on the others (`mamba_expand` x
hidden inner channels, a state of `mamba_d_state` per channel, a `mamba_d_conv` causal conv, a time
step of `mamba_dt_rank`; the state cached in the model dtype, vLLM's `mamba_ssm_cache_dtype` "auto") —
then a gated MLP of `intermediate_size` (`feed_forward`), or on the layers where i %
`expert_layer_period` == `expert_layer_offset` a MoE block of `num_experts` such experts (softmax
top-`num_experts_per_tok`, `feed_forward.router` / `feed_forward.experts`).

transformers derives the layer types from those periods and offsets (read-only properties), so a stack
of layer specs is written back as the period and offset that place its attention and MoE layers
(a stack no single period places is refused). A Mamba mixer's width is `mamba_expand` x `hidden_size`:
a TP rank's (channels / tp) is set through `mamba_fields.set_mixer_width`, as Granite 4.0's.

Must not know about capture or costs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from transformers import PretrainedConfig

from ...errors import UnsupportedModelError
from ..spec import AttentionSpec, LayerSpec, MambaSpec, ModelSpec
from .base import require
from .mamba_fields import set_mixer_width
from .moe import LayerRule, MoEAdapter, MoEFamily


def period_offset(hits: Iterable[int], layers: int, what: str) -> tuple[int, int]:
    """The (period, offset) whose layers i % period == offset among `layers` are exactly `hits`."""
    wanted = set(hits)
    for period in range(1, layers + 2):
        for offset in range(period):
            if {i for i in range(layers) if i % period == offset} == wanted:
                return period, offset
    raise UnsupportedModelError(f"model_type 'jamba': {what} layers {sorted(wanted)} of {layers} are not placed by "
                                "one period and offset")


def _force_experts(config: PretrainedConfig, moe: bool) -> None:
    layers = int(config.num_hidden_layers)
    config.expert_layer_period, config.expert_layer_offset = (1, 0) if moe else (layers + 1, layers)


EXPERT_PERIOD = LayerRule(is_moe=lambda config, index: config.layers_num_experts[index] > 1, force=_force_experts)
JAMBA_MOE = MoEFamily(num_experts="num_experts", expert_size="intermediate_size", dense_size="intermediate_size",
                      layers=EXPERT_PERIOD, block="feed_forward", router_module="router")


@dataclass(frozen=True)
class JambaAdapter(MoEAdapter):
    """Mamba-1 or NoPE GQA mixers, each followed by a dense MLP or a MoE block."""

    moe: MoEFamily = JAMBA_MOE
    qkv_bias_field: str | None = None
    out_bias_field: str | None = None
    mlp_bias_field: str | None = None
    supports_layer_skips: bool = False

    def required_fields(self) -> tuple[str, ...]:
        return (*super().required_fields(), "mamba_d_state", "mamba_expand")

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        if config.layers_block_type[index] != "mamba":
            return super().attention_spec(config, index)
        mamba = MambaSpec(num_heads=int(require(config, "mamba_expand")) * int(require(config, "hidden_size")),
                          head_dim=1, state_size=int(require(config, "mamba_d_state")), n_groups=1,
                          conv_kernel_size=int(require(config, "mamba_d_conv")), state_dtype=self.dtype(config),
                          version=1, dt_rank=int(require(config, "mamba_dt_rank")))
        return AttentionSpec(kind="mamba", mamba=mamba)

    # ---- spec -> HF config ---------------------------------------------------------------
    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        base = self.base_config(spec)
        base.num_hidden_layers = len(layers)
        config = self.config_for_layer(spec, layers[0], base)
        attention = [i for i, layer in enumerate(layers) if layer.attention.kind != "mamba"]
        experts = [i for i, layer in enumerate(layers) if layer.mlp.kind == "moe"]
        config.attn_layer_period, config.attn_layer_offset = period_offset(attention, len(layers), "attention")
        config.expert_layer_period, config.expert_layer_offset = period_offset(experts, len(layers), "MoE")
        return config

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        att = layer.attention
        if att.kind not in ("mamba", "full"):
            raise UnsupportedModelError(f"model_type {spec.model_type!r}: a layer is a Mamba-1 or full-attention "
                                        f"mixer; this one asks for {att.kind!r}")
        config = super().config_for_layer(spec, layer, base)
        layers = int(config.num_hidden_layers)
        config.attn_layer_period, config.attn_layer_offset = (layers + 1, layers) if att.kind == "mamba" else (1, 0)
        if att.kind == "mamba" and att.mamba is not None:
            m = att.mamba
            config.mamba_d_state, config.mamba_d_conv, config.mamba_dt_rank = m.state_size, m.conv_kernel_size, m.dt_rank
            set_mixer_width(config, m.num_heads, int(spec.hidden_size))
        return config
