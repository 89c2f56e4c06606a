"""Multi-token prediction (MTP) blocks, assembled because transformers never builds them.

DeepSeek-V3 / R1 / V3.2, GLM-4.5 / GLM-5, Qwen3-Next and Qwen3.5 ship MTP modules in their
checkpoints (transformers skips their weights: `_keys_to_ignore_on_load_unexpected`). Serving
engines use them as the draft model of speculative decoding (vLLM / SGLang "MTP", EAGLE-style).
One block (DeepSeek-V3 §2.2): `h' = layer(eh_proj(cat(enorm(embed(next tokens)), hnorm(h))))`, a
final norm, then the model's shared lm_head; the embedding and lm_head are the main model's
(engines share them, so they are not counted twice). The block's decoder layer is the model's own
decoder-layer class built like its last layer (`mtp_layer_spec`): DeepSeek-V3's MTP layer is an
MLA + MoE layer like layers 3..60.

How an MTP step is modelled (`mtp=N`, documented once here):
- A decode step with MTP verifies the previous step's N draft tokens: the main model processes
  1 + N tokens per sequence (the API evaluates a decode step, query_len 1, at 1 + N) and computes
  logits at those 1 + N positions.
- Then the N draft passes run, one after the other, each through MTP block k mod M (M = the
  blocks the checkpoint ships, `ModelSpec.mtp_layers`: DeepSeek-V3 ships one, reused for N > 1),
  each over the same tokens as the main model (the first draft pass must see every accepted
  position), each ending with the lm_head on the last position.
- A step yields 1 + a + a² + ... + a^N tokens per sequence on average for a per-draft acceptance
  rate a (a draft counts only if every draft before it was accepted): see `speculative.py`.
Each draft pass also attends over its own KV cache (one MTP layer's latent), counted per pass:
with more passes than shipped blocks (N > M) the reused layer's cache is counted N/M times where
engines keep one (an overcount of about (N − M)/L of the KV cache for L layers). A symbolic report
evaluates a decode step with MTP at query_len = 1 + N (the API adjusts concrete decode points).

Owns `MTPBlock`, `MTPModel` (the main model + blocks, keeping the main model's module paths:
`model.layers.*`, `lm_head`; blocks live under `mtp.*`) and `mtp_layer_spec`. Must not know about
costs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedModelError
from .spec import LayerSpec, ModelSpec


def mtp_layer_spec(spec: ModelSpec) -> LayerSpec:
    """The layer kind of the model's MTP blocks: `spec.mtp_layer` (set at load time to the full
    model's last layer, so analyzing only the first layers keeps DeepSeek-V3's MTP block a MoE
    layer, and sharded with the rest of the spec), else derived from the config the same way."""
    if spec.mtp_layer is not None:
        return spec.mtp_layer
    from .adapters import adapter_for

    depth = int(spec.hf_config.get("num_hidden_layers", 0) or 0)
    if depth <= 0:
        return spec.layers[-1]
    adapter = adapter_for(spec.model_type)
    return adapter.layer_spec(adapter.base_config(spec), depth - 1)


# families whose checkpoints ship MTP layers this module does not build yet (model_type -> why)
MTP_NOT_MODELLED = {
    "deepseek_v4": "DeepSeek-V4's MTP block (num_nextn_predict_layers = 1) carries its own hyper-connections and "
                   "hyper-connection head, which are not modelled yet",
    "nemotron_h": "Nemotron-H's MTP block is its own stack of mixer blocks (mtp_layers_block_type), which is not "
                  "modelled yet",
}


def check_mtp(spec: ModelSpec, mtp: int) -> None:
    if mtp and spec.model_type in MTP_NOT_MODELLED:
        raise UnsupportedModelError(f"{spec.name}: mtp={mtp} is not supported: {MTP_NOT_MODELLED[spec.model_type]}; "
                                    "mtp must be 0 for it")
    if mtp and spec.mtp_layers <= 0:
        raise UnsupportedModelError(
            f"{spec.name} (model_type {spec.model_type!r}) ships no MTP layers (num_nextn_predict_layers = 0); "
            "mtp must be 0 for it")


class MTPBlock(nn.Module):
    """enorm / hnorm / eh_proj in front of one decoder layer, and the norm before the shared head."""

    norm: Any

    def __init__(self, layer: nn.Module, hidden_size: int, norm: type, eps: float) -> None:
        super().__init__()
        self.enorm = norm(hidden_size, eps=eps)
        self.hnorm = norm(hidden_size, eps=eps)
        self.eh_proj = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        self.layer = layer
        self.norm = norm(hidden_size, eps=eps)

    def forward(self, embeds: torch.Tensor, hidden: torch.Tensor, position_embeddings: Any,
                position_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        x = self.eh_proj(torch.cat([self.enorm(embeds), self.hnorm(hidden)], dim=-1))
        out = self.layer(x, attention_mask=None, position_ids=position_ids,
                         position_embeddings=position_embeddings, **kwargs)
        return out[0] if isinstance(out, tuple) else out


class MTPModel(nn.Module):
    """A causal LM followed by one MTP draft pass per entry of `passes`.

    Passes that reuse a shipped block hold a copy of it sharing every parameter (counted once), so
    each pass has its own module path and the per-module rewrite passes see one call per module.
    `rotary` is a copy of the model's rotary embedding (buffers only) for the drafts' positions.
    """

    model: Any  # the transformers base model (`*Model`)
    lm_head: Any
    mtp_rotary_emb: Any

    def __init__(self, causal_lm: Any, passes: Sequence[nn.Module]) -> None:
        super().__init__()
        self.model = causal_lm.model
        self.lm_head = causal_lm.lm_head
        self.mtp = nn.ModuleList(passes)
        self.mtp_rotary_emb = copy.deepcopy(causal_lm.model.rotary_emb)
        self.config = causal_lm.config

    def set_attn_implementation(self, name: str) -> None:
        self.model.set_attn_implementation(name)

    def set_experts_implementation(self, name: str) -> None:
        self.model.set_experts_implementation(name)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()  # the drafts embed their tokens with it too

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False, logits_to_keep: int = 1,
                **kwargs: Any) -> tuple[torch.Tensor, ...]:
        hidden = self.model(input_ids=input_ids, use_cache=False, **kwargs).last_hidden_state
        verified = 1 + len(self.mtp)  # the token before the drafts, and the drafts
        logits = self.lm_head(hidden[:, -verified:, :])
        embeds = self.model.embed_tokens(input_ids)  # the shifted next tokens: same gather
        position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        position_embeddings = self.mtp_rotary_emb(hidden, position_ids)
        drafts = []
        for block in self.mtp:
            assert isinstance(block, MTPBlock)
            hidden = block(embeds, hidden, position_embeddings, position_ids, **kwargs)
            drafts.append(self.lm_head(block.norm(hidden[:, -1:, :])))
        return (logits, *drafts)


def shared_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` holding the very same parameters, buffers and config objects."""
    memo: dict[int, Any] = {id(t): t for t in (*module.parameters(), *module.buffers())}
    for sub in module.modules():
        config = getattr(sub, "config", None)
        if config is not None:
            memo[id(config)] = config
    return copy.deepcopy(module, memo)


def attach_mtp(causal_lm: Any, layers: Sequence[nn.Module], mtp: int) -> MTPModel:
    """`causal_lm` with `mtp` draft passes over blocks built around `layers` (one per shipped block);
    pass k uses block k mod len(layers)."""
    config = causal_lm.config
    norm = type(causal_lm.model.norm)
    eps = float(getattr(config, "rms_norm_eps", 1e-6))
    blocks = [MTPBlock(layer, int(config.hidden_size), norm, eps) for layer in layers]
    passes: list[nn.Module] = [blocks[k] if k < len(blocks) else shared_copy(blocks[k % len(blocks)])
                               for k in range(mtp)]
    return MTPModel(causal_lm, passes)
