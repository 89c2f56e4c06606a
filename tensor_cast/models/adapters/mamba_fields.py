"""How a Mamba-2 family's config names its mixer's sizes: one table row per family.

Owns `MambaFields` (the config attributes for the heads, head width, state size, B / C groups, conv
kernel and scan chunk) with `spec(config, state_dtype)` (config -> the layer's `AttentionSpec` of kind
"mamba") and `write(config, mamba)` (a layer's `MambaSpec` -> those attributes, for the per-layer and
per-rank builds), and the rows of the families that run transformers' Mamba-2 mixers; and
`set_mixer_width(config, width, hidden_size)`, the `mamba_expand` that sizes a mixer (a TP rank's
included) at exactly `width` channels. Must not touch torch graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PretrainedConfig

from ..spec import AttentionSpec, MambaSpec
from .base import require


@dataclass(frozen=True)
class MambaFields:
    heads: str
    head_dim: str
    state: str
    groups: str
    conv: str
    chunk: str

    @property
    def sizes(self) -> tuple[str, ...]:
        """The fields a config must give (transformers' defaults for them describe another model)."""
        return (self.heads, self.head_dim, self.state, self.groups)

    def spec(self, config: PretrainedConfig, state_dtype: str) -> AttentionSpec:
        mamba = MambaSpec(num_heads=int(require(config, self.heads)), head_dim=int(require(config, self.head_dim)),
                          state_size=int(require(config, self.state)), n_groups=int(require(config, self.groups)),
                          conv_kernel_size=int(require(config, self.conv)), chunk_size=int(require(config, self.chunk)),
                          state_dtype=state_dtype)
        return AttentionSpec(kind="mamba", mamba=mamba)

    def write(self, config: PretrainedConfig, mamba: MambaSpec) -> None:
        for name, value in ((self.heads, mamba.num_heads), (self.head_dim, mamba.head_dim),
                            (self.state, mamba.state_size), (self.groups, mamba.n_groups),
                            (self.conv, mamba.conv_kernel_size), (self.chunk, mamba.chunk_size)):
            setattr(config, name, value)


@dataclass(frozen=True)
class MixerExpansion:
    """A `mamba_expand` whose product with the hidden size is exactly `width`. transformers sizes a Mamba
    mixer as `mamba_expand * hidden_size` (Jamba uses the product as is; Granite 4.0 and Bamba through
    int()), and a TP rank's mixer (channels / tp) need not be a whole multiple of the hidden size."""

    width: int
    hidden: int

    def __mul__(self, other: object) -> int:
        if other != self.hidden:
            raise TypeError(f"mamba_expand sizes the mixer from hidden_size={self.hidden}, not from {other!r}")
        return self.width

    __rmul__ = __mul__


def set_mixer_width(config: PretrainedConfig, width: int, hidden_size: int) -> None:
    """Size the config's Mamba mixer at `width` channels (set past the config's validators, which accept only
    whole expansions)."""
    object.__setattr__(config, "mamba_expand", MixerExpansion(width, hidden_size))


NEMOTRON_H_MAMBA = MambaFields(heads="mamba_num_heads", head_dim="mamba_head_dim", state="ssm_state_size",
                               groups="n_groups", conv="conv_kernel", chunk="chunk_size")
GRANITE_HYBRID_MAMBA = MambaFields(heads="mamba_n_heads", head_dim="mamba_d_head", state="mamba_d_state",
                                   groups="mamba_n_groups", conv="mamba_d_conv", chunk="mamba_chunk_size")
