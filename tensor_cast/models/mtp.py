"""Multi-token prediction (MTP) blocks, assembled because transformers never builds them.

DeepSeek-V3 / R1 / V3.2, GLM-4.5 / GLM-5, Qwen3-Next and Qwen3.5 ship MTP modules in their
checkpoints (transformers skips their weights: `_keys_to_ignore_on_load_unexpected`). Serving
engines use them as the draft model of speculative decoding (vLLM / SGLang "MTP", EAGLE-style).
One block (DeepSeek-V3 §2.2): `h' = layer(eh_proj(cat(enorm(embed(next tokens)), hnorm(h))))`, a
final norm, then the model's shared lm_head; the embedding and lm_head are the main model's
(engines share them, so they are not counted twice). The block's decoder layer is the model's own
decoder-layer class built like its last layer (`mtp_block_specs`): DeepSeek-V3's MTP layer is an
MLA + MoE layer like layers 3..60. Nemotron-H's block (Nemotron 3 Super) holds a short stack of its
own mixer blocks instead (`mtp_hybrid_override_pattern` `*E`: attention, then MoE; vLLM's
`nemotron_h_mtp.py`), each with its norm and residual, the final norm after the last. DeepSeek-V4's
block works on its hyper-connection streams (`HyperConnectionMTPBlock`: separate e_proj / h_proj,
its own stream-collapsing head before the norm; vLLM's `deepseek_v4_mtp.py`).

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

Owns `MTPBlock`, `HyperConnectionMTPBlock`, `MTPModel` (the main model + blocks, keeping the main model's module paths:
`model.layers.*`, `lm_head`; a block's decoder layers live under `mtp.K.layers.I`, so that every
per-layer rule keyed on `layers.N.<sub-block>` — the TP plan's row-parallel modules, the sub-block
whose output is all-reduced — applies to them as to the main stack) and `mtp_block_specs`. Must not know about
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


def mtp_block_specs(spec: ModelSpec) -> tuple[LayerSpec, ...]:
    """The decoder layers inside each MTP block, in order: `spec.mtp_block` (set at load from the
    full model's config, so analyzing only the first layers keeps DeepSeek-V3's MTP block a MoE
    layer, and sharded with the rest of the spec), else derived from the config the same way."""
    if spec.mtp_block:
        return spec.mtp_block
    from .adapters import adapter_for

    return adapter_for(spec.model_type).mtp_block_specs(spec)


def check_mtp(spec: ModelSpec, mtp: int) -> None:
    if not mtp:
        return
    from .adapters import adapter_for

    why = adapter_for(spec.model_type).mtp_refusal(spec) if spec.mtp_layers > 0 else None
    if why:
        raise UnsupportedModelError(f"{spec.name}: mtp={mtp} is not supported: {why}; mtp must be 0 for it")
    if spec.mtp_layers <= 0:
        raise UnsupportedModelError(
            f"{spec.name} (model_type {spec.model_type!r}) ships no MTP layers (num_nextn_predict_layers = 0); "
            "mtp must be 0 for it")


class MTPBlock(nn.Module):
    """enorm / hnorm / eh_proj in front of the block's decoder layers, and the norm before the
    shared head. Most families' block holds one layer; Nemotron-H's holds a short stack of mixer
    blocks (`layers`, each a residual block of its own)."""

    norm: Any

    def __init__(self, layers: Sequence[nn.Module], hidden_size: int, norm: type, eps: float) -> None:
        super().__init__()
        self.enorm = norm(hidden_size, eps=eps)
        self.hnorm = norm(hidden_size, eps=eps)
        self.add_projections(hidden_size)
        self.layers = nn.ModuleList(layers)
        self.norm = norm(hidden_size, eps=eps)

    def forward(self, embeds: torch.Tensor, hidden: torch.Tensor, position_embeddings: Any,
                position_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        x = self.eh_proj(torch.cat([self.enorm(embeds), self.hnorm(hidden)], dim=-1))
        if position_embeddings is not None:  # families without rotary positions (Nemotron-H) take none
            kwargs["position_embeddings"] = position_embeddings
        return self.run_layers(x, position_ids, **kwargs)

    def add_projections(self, hidden_size: int) -> None:
        """The linear mixing the normed embedding with the normed previous hidden state."""
        self.eh_proj = nn.Linear(2 * hidden_size, hidden_size, bias=False)

    def run_layers(self, x: torch.Tensor, position_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        for layer in self.layers:
            out = layer(x, attention_mask=None, position_ids=position_ids, **kwargs)
            x = out[0] if isinstance(out, tuple) else out
        return x

    def head_input(self, hidden: torch.Tensor) -> torch.Tensor:
        """What the shared lm_head reads of the block's output."""
        return self.norm(hidden)

    @staticmethod
    def positions(rotary: Any, hidden: torch.Tensor, position_ids: torch.Tensor) -> Any:
        """The drafts' rotary tables (None for a model without rotary positions)."""
        return rotary(hidden, position_ids) if rotary is not None else None


class HyperConnectionMTPBlock(MTPBlock):
    """DeepSeek-V4's MTP block (vLLM `deepseek_v4_mtp.py`): the previous hidden state's `hc_mult`
    residual streams, each normed (`hnorm`) and projected (`h_proj`), plus the projected normed
    embedding (`e_proj`) added to every stream; a V4 decoder layer over the streams; then its own
    hyper-connection head collapses them before the norm and the shared lm_head. `e_proj` / `h_proj`
    are separate linears (V3's `eh_proj` is one), whole on every TP rank (vLLM `ReplicatedLinear`).

    The first draft pass reads the main model's last hidden state broadcast to the streams: the
    same shapes (and so the same costs) as the main model's pre-head streams engines hand over."""

    def __init__(self, layers: Sequence[nn.Module], hidden_size: int, norm: type, eps: float,
                 hc_head: nn.Module, hc_mult: int) -> None:
        super().__init__(layers, hidden_size, norm, eps)
        self.hc_head = hc_head
        self.hc_mult = hc_mult

    def add_projections(self, hidden_size: int) -> None:
        self.e_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.h_proj = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, embeds: torch.Tensor, hidden: torch.Tensor, position_embeddings: Any,
                position_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if hidden.dim() == embeds.dim():  # the main model's collapsed state: one copy per stream
            hidden = hidden.unsqueeze(-2).expand(*hidden.shape[:-1], self.hc_mult, hidden.shape[-1])
        x = self.h_proj(self.hnorm(hidden)) + self.e_proj(self.enorm(embeds)).unsqueeze(-2)
        return self.run_layers(x, position_ids, position_embeddings=position_embeddings, **kwargs)

    def head_input(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(self.hc_head(hidden))

    @staticmethod
    def positions(rotary: Any, hidden: torch.Tensor, position_ids: torch.Tensor) -> Any:
        """V4's two tables: the sliding window's ("main") and the compressed entries' ("compress")."""
        return {kind: rotary(hidden, position_ids=position_ids, layer_type=kind) for kind in ("main", "compress")}


class MTPModel(nn.Module):
    """A causal LM followed by one MTP draft pass per entry of `passes`.

    Passes that reuse a shipped block hold a copy of it sharing every parameter (counted once), so
    each pass has its own module path and the per-module rewrite passes see one call per module.
    `mtp_rotary_emb` is a copy of the model's rotary embedding (buffers only) for the drafts'
    positions, None for a model without one.
    """

    model: Any  # the transformers base model (`*Model`)
    lm_head: Any
    mtp_rotary_emb: Any

    def __init__(self, causal_lm: Any, passes: Sequence[nn.Module]) -> None:
        super().__init__()
        self.model = causal_lm.model
        self.lm_head = causal_lm.lm_head
        self.mtp = nn.ModuleList(passes)
        rotary = getattr(causal_lm.model, "rotary_emb", None)
        self.mtp_rotary_emb = copy.deepcopy(rotary) if rotary is not None else None
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
        embeds = self.model.get_input_embeddings()(input_ids)  # the shifted next tokens: same gather
        position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        first = self.mtp[0]
        assert isinstance(first, MTPBlock)
        position_embeddings = first.positions(self.mtp_rotary_emb, hidden, position_ids)
        drafts = []
        for block in self.mtp:
            assert isinstance(block, MTPBlock)
            hidden = block(embeds, hidden, position_embeddings, position_ids, **kwargs)
            drafts.append(self.lm_head(block.head_input(hidden[:, -1:])))
        return (logits, *drafts)


def shared_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` holding the very same parameters, buffers and config objects."""
    memo: dict[int, Any] = {id(t): t for t in (*module.parameters(), *module.buffers())}
    for sub in module.modules():
        config = getattr(sub, "config", None)
        if config is not None:
            memo[id(config)] = config
    return copy.deepcopy(module, memo)


def attach_mtp(causal_lm: Any, blocks: Sequence[Sequence[nn.Module]], mtp: int) -> MTPModel:
    """`causal_lm` with `mtp` draft passes over MTP blocks built around `blocks` (each the decoder
    layers of one shipped block); pass k uses block k mod len(blocks)."""
    config = causal_lm.config
    norm = type(_final_norm(causal_lm.model))
    eps = float(getattr(config, "rms_norm_eps", None) or getattr(config, "layer_norm_epsilon", None) or 1e-6)
    hc_head = getattr(causal_lm.model, "hc_head", None)  # hyper-connection streams (DeepSeek-V4)
    if hc_head is not None:
        built: list[MTPBlock] = [HyperConnectionMTPBlock(layers, int(config.hidden_size), norm, eps,
                                                         type(hc_head)(config), int(config.hc_mult))
                                 for layers in blocks]
    else:
        built = [MTPBlock(layers, int(config.hidden_size), norm, eps) for layers in blocks]
    passes: list[nn.Module] = [built[k] if k < len(built) else shared_copy(built[k % len(built)])
                               for k in range(mtp)]
    return MTPModel(causal_lm, passes)


FINAL_NORMS = ("norm", "norm_f")  # the base model's final norm: most families, Nemotron-H


def _final_norm(model: nn.Module) -> nn.Module:
    for name in FINAL_NORMS:
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            return module
    raise UnsupportedModelError(f"{type(model).__name__} has no final norm named {' or '.join(FINAL_NORMS)}: "
                                "its MTP block's norms cannot be built")
