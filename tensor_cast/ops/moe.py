"""Mixture-of-experts ops: `tensor_cast::routed_experts` (capture) and `tensor_cast::moe` (after passes).

- `routed_experts(hidden, top_k_index, top_k_weights, gate_up, down, gate_up_bias, down_bias,
  activation, gate, transposed)`: the routed experts of one MoE block — what transformers'
  `@use_experts_implementation` experts modules compute from the router's choice. The capture
  emits it through transformers' experts registry (`capture/experts_interface.py`) instead of the
  `grouped_mm` path (topk/sort/histc/cumsum/_grouped_mm), so every family with fused 3-D experts
  traces to one node whose arguments carry E, k, H, I, the weights' dtype and layout.
- `moe(hidden, router_weight, router_extra, gate_up, down, gate_up_bias, down_bias, shared_in,
  shared_out, top_k, scoring, activation, gate, transposed, scheme, ep=1, ep_dp=1, shared_scheme="",
  router_input=None)`: the whole MoE block —
  router GEMM, scoring and top-k, routed experts, shared experts and the combine — as one op; the
  `replace_moe` pass produces it from the router subgraph, `routed_experts` and the shared-expert
  GEMMs. `scheme` (the deployment's weight quantization of the experts, "none" or a
  `deployment/quantization.py` scheme, set by `quantize_moe`) is a cost parameter, not part of
  the maths; so are `ep` (expert parallelism:
  the ranks the routed experts are split over, this rank running E/ep of them) and `ep_dp` (the
  attention-DP replicas whose tokens are routed over those ranks), set by
  `insert_ep_collectives`. The routing skew is not in the graph: it changes the cost, not the
  graph, so it is a cost knob (`CostKnobs.moe_skew`, backends/formulas/registry.py). Every rank's graph keeps all E experts (the router and top-k need them).

LatentMoE (Nemotron 3 Super; `router_input` given): the routed experts work in a narrower latent
width behind the block's own down projection (`fc1_latent_proj`, H -> L) and up projection
(`fc2_latent_proj`, L -> H), both plain replicated linears outside the op, as vLLM runs them around
its fused MoE (`routed_input_transform` / `routed_output_transform`). The op then reads the latent
rows as `hidden` (T, L) and returns the routed experts' latent output (T, L); the router scores
`router_input` (the block's hidden states, (..., H)). The shared experts, which read the hidden
states, stay outside the op too (`shared_in` / `shared_out` empty).

Weight layout (`gate`, `transposed`): `gate_up` is (E, 2I, H) with the gate rows first
("concat"), gate/up rows alternating ("interleaved", gpt-oss), or an ungated (E, I, H) up
projection ("none"); `transposed` stores (E, H, 2I) / (E, I, H) instead. `down` is (E, H, I)
(transposed: (E, I, H)).

Shared experts: `shared_in` are the projections reading the block input — [gate, up] or
[gate_up] of the shared MLP, plus optionally a (1, H) weight whose sigmoid scales the shared
output (Qwen2-MoE / Qwen3-Next `shared_expert_gate`); `shared_out` is [down] (or empty).

The reference implementations are for `opcheck` and numeric pass tests: routing is softmax (or
sigmoid) over the router logits, top-k, renormalized over the k chosen. Family refinements that
change *which* experts are chosen but not what it costs (router logit bias and score-correction
bias in `router_extra`, grouped top-k, routed scaling) are not reproduced; `swiglu_oai` uses
gpt-oss's published alpha=1.702, limit=7.0; `swiglu_limit` is DeepSeek-V4's SiLU gate with the gate
clamped to at most 10 and the up projection to [-10, 10] (its published `swiglu_limit`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .fused import ACTIVATIONS

GATE_LAYOUTS = ("concat", "interleaved", "none")
SCORINGS = ("softmax", "sigmoid")
SWIGLU_OAI_ALPHA, SWIGLU_OAI_LIMIT = 1.702, 7.0
SWIGLU_LIMIT = 10.0  # DeepSeek-V4 config `swiglu_limit`


def _swiglu_oai(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """gpt-oss's clamped SwiGLU: (clamp(up) + 1) * g * sigmoid(alpha * g), g = clamp(gate, max=limit)."""
    gate = gate.clamp(max=SWIGLU_OAI_LIMIT)
    up = up.clamp(min=-SWIGLU_OAI_LIMIT, max=SWIGLU_OAI_LIMIT)
    return (up + 1) * gate * torch.sigmoid(gate * SWIGLU_OAI_ALPHA)


def _gated(act: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda gate, up: act(gate) * up


GATED_ACTIVATIONS = {name: _gated(fn) for name, fn in ACTIVATIONS.items()}
GATED_ACTIVATIONS["swiglu_oai"] = _swiglu_oai
GATED_ACTIVATIONS["swiglu_limit"] = lambda gate, up: (
    torch.nn.functional.silu(gate.clamp(max=SWIGLU_LIMIT)) * up.clamp(min=-SWIGLU_LIMIT, max=SWIGLU_LIMIT))
EXPERT_ACTIVATIONS = tuple(GATED_ACTIVATIONS)


def _expert_mlp(x: torch.Tensor, expert: int, gate_up: torch.Tensor, down: torch.Tensor,
                gate_up_bias: torch.Tensor | None, down_bias: torch.Tensor | None,
                activation: str, gate: str, transposed: bool) -> torch.Tensor:
    w1, w2 = gate_up[expert], down[expert]
    h = x @ w1 if transposed else x @ w1.T
    if gate_up_bias is not None:
        h = h + gate_up_bias[expert]
    if gate == "none":
        h = ACTIVATIONS[activation](h)
    else:
        g, u = (h[..., ::2], h[..., 1::2]) if gate == "interleaved" else h.chunk(2, dim=-1)
        h = GATED_ACTIVATIONS[activation](g, u)
    out = h @ w2 if transposed else h @ w2.T
    return out + down_bias[expert] if down_bias is not None else out


def _experts(x: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor, gate_up: torch.Tensor,
             down: torch.Tensor, gate_up_bias: torch.Tensor | None, down_bias: torch.Tensor | None,
             activation: str, gate: str, transposed: bool) -> torch.Tensor:
    """x (T, H), top_k_index / top_k_weights (T, k) -> (T, H): Σ_j w_j · expert_{i_j}(x)."""
    out = torch.zeros(x.shape, dtype=torch.float32)
    for expert in range(gate_up.shape[0]):
        token, slot = torch.where(top_k_index == expert)
        if token.numel() == 0:
            continue
        y = _expert_mlp(x[token].float(), expert, gate_up.float(), down.float(),
                        None if gate_up_bias is None else gate_up_bias.float(),
                        None if down_bias is None else down_bias.float(), activation, gate, transposed)
        out.index_add_(0, token, y * top_k_weights[token, slot, None].float())
    return out.to(x.dtype)


def _check(activation: str, gate: str) -> None:
    if activation not in GATED_ACTIVATIONS:
        raise ValueError(f"unknown expert activation {activation!r}; known: {', '.join(EXPERT_ACTIVATIONS)}")
    if gate not in GATE_LAYOUTS:
        raise ValueError(f"unknown gate layout {gate!r}; known: {', '.join(GATE_LAYOUTS)}")


@torch.library.custom_op("tensor_cast::routed_experts", mutates_args=())
def routed_experts(
    hidden: torch.Tensor,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    gate_up_bias: torch.Tensor | None,
    down_bias: torch.Tensor | None,
    activation: str,
    gate: str,
    transposed: bool,
) -> torch.Tensor:
    """hidden (T, H), top_k_index / top_k_weights (T, k) -> (T, H) in hidden's dtype."""
    _check(activation, gate)
    return _experts(hidden, top_k_index, top_k_weights, gate_up, down, gate_up_bias, down_bias,
                    activation, gate, transposed)


@routed_experts.register_fake
def _routed_experts_fake(hidden, top_k_index, top_k_weights, gate_up, down, gate_up_bias, down_bias,
                         activation, gate, transposed):
    _check(activation, gate)
    return hidden.new_empty(hidden.shape)


def _route(x: torch.Tensor, router_weight: torch.Tensor, top_k: int, scoring: str) -> tuple[torch.Tensor, torch.Tensor]:
    logits = x.float() @ router_weight.float().T
    scores = torch.softmax(logits, dim=-1) if scoring == "softmax" else torch.sigmoid(logits)
    weights, index = torch.topk(scores, top_k, dim=-1)
    return index, weights / weights.sum(dim=-1, keepdim=True)


def _shared(x: torch.Tensor, shared_in: list[torch.Tensor], shared_out: list[torch.Tensor],
            activation: str) -> torch.Tensor:
    scalar_gates = [w for w in shared_in if w.shape[0] == 1]
    projections = [w for w in shared_in if w.shape[0] != 1]
    xf = x.float()
    if len(projections) == 1:
        g, u = (xf @ projections[0].float().T).chunk(2, dim=-1)
    else:
        g, u = xf @ projections[0].float().T, xf @ projections[1].float().T
    act = GATED_ACTIVATIONS["silu" if activation == "swiglu_oai" else activation]
    out = act(g, u) @ shared_out[0].float().T
    for w in scalar_gates:
        out = out * torch.sigmoid(xf @ w.float().T)
    return out


@torch.library.custom_op("tensor_cast::moe", mutates_args=())
def moe(
    hidden: torch.Tensor,
    router_weight: torch.Tensor,
    router_extra: list[torch.Tensor],
    gate_up: torch.Tensor,
    down: torch.Tensor,
    gate_up_bias: torch.Tensor | None,
    down_bias: torch.Tensor | None,
    shared_in: list[torch.Tensor],
    shared_out: list[torch.Tensor],
    top_k: int,
    scoring: str,
    activation: str,
    gate: str,
    transposed: bool,
    scheme: str,
    ep: int = 1,
    ep_dp: int = 1,
    shared_scheme: str = "",
    router_input: torch.Tensor | None = None,
) -> torch.Tensor:
    """hidden (..., H) -> (..., H): routed experts of the top-k router choice (+ shared experts).
    `shared_scheme`: the shared experts' scheme when it differs from the routed ones' ("": `scheme`).
    `router_input`: what the router scores when it is not `hidden` (LatentMoE: the hidden states
    beside the latent rows the experts read)."""
    _check(activation, gate)
    if scoring not in SCORINGS:
        raise ValueError(f"unknown router scoring {scoring!r}; known: {', '.join(SCORINGS)}")
    x = hidden.reshape(-1, hidden.shape[-1])
    scored = x if router_input is None else router_input.reshape(-1, router_input.shape[-1])
    if scored.shape[0] != x.shape[0]:
        raise ValueError(f"router_input has {scored.shape[0]} tokens, hidden {x.shape[0]}")
    index, weights = _route(scored, router_weight, top_k, scoring)
    out = _experts(x, index, weights, gate_up, down, gate_up_bias, down_bias, activation, gate, transposed).float()
    if shared_out:
        out = out + _shared(x, shared_in, shared_out, activation)
    return out.to(hidden.dtype).reshape(hidden.shape)


@moe.register_fake
def _moe_fake(hidden, router_weight, router_extra, gate_up, down, gate_up_bias, down_bias, shared_in, shared_out,
              top_k, scoring, activation, gate, transposed, scheme, ep=1, ep_dp=1, shared_scheme="", router_input=None):
    _check(activation, gate)
    return hidden.new_empty(hidden.shape)


__all__ = ["EXPERT_ACTIVATIONS", "GATE_LAYOUTS", "SCORINGS", "moe", "routed_experts"]
