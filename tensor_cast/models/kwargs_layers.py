"""Swapped forwards of decoder layers that drop their forward's kwargs before the attention call.

transformers' Nemotron (`NemotronDecoderLayer`: Nemotron-4, Minitron) and StableLM
(`StableLmDecoderLayer`) layers take `**kwargs` but call `self.self_attn(...)` without them, so the
context carrier tensor_cast threads through the forward's kwargs (capture/attention_interface.py,
`CONTEXT_KWARG`) never reaches the attention function and the KV cache cannot be modelled. These
forwards are the layers' own, line for line (pre-norm attention, then the MLP, or StableLM's parallel
residual: both branches read the one input norm), with the kwargs passed on. Dropout is the identity
in eval mode and is left out. Applied by `module_swaps.py`; the module tree is unchanged.
"""

from __future__ import annotations

from typing import Any

import torch


class PreNormLayerForward:
    """Mixin: x + attn(norm1(x)), then + mlp(norm2(.)) — Nemotron's layer, passing the kwargs on."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: Any = None, position_ids: Any = None,
                cache: Any = None, use_cache: bool | None = False, position_embeddings: Any = None,
                **kwargs: Any) -> torch.Tensor:
        module: Any = self
        attn_output, _ = module.self_attn(hidden_states=module.input_layernorm(hidden_states),
                                          attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                                          use_cache=use_cache, position_embeddings=position_embeddings, **kwargs)
        hidden_states = hidden_states + attn_output
        return hidden_states + module.mlp(module.post_attention_layernorm(hidden_states))


class ParallelResidualLayerForward:
    """Mixin: StableLM's layer — with `use_parallel_residual` x + attn(ln(x)) + mlp(ln(x)), else the
    pre-norm order — passing the kwargs on."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: Any = None, position_ids: Any = None,
                cache: Any = None, use_cache: bool | None = False, position_embeddings: Any = None,
                **kwargs: Any) -> torch.Tensor:
        module: Any = self
        normed = module.input_layernorm(hidden_states)
        attn_output, _ = module.self_attn(hidden_states=normed, attention_mask=attention_mask,
                                          position_ids=position_ids, cache=cache, use_cache=use_cache,
                                          position_embeddings=position_embeddings, **kwargs)
        if module.use_parallel_residual:
            return hidden_states + attn_output + module.mlp(normed)
        hidden_states = hidden_states + attn_output
        return hidden_states + module.mlp(module.post_attention_layernorm(hidden_states))
