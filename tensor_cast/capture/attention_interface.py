"""The attention function tensor_cast registers with transformers during capture.

Every HF attention module calls `ALL_ATTENTION_FUNCTIONS[config._attn_implementation]` with
(module, q, k, v, mask, scaling, dropout, **kwargs). Ours emits one `tensor_cast::attention` op
carrying what the cost needs: GQA from the shapes, causality from the module, the sliding window
and sinks from the kwargs the model passes, the local-attention chunk from the layer's spec (Llama 4's
chunked mask, which the capture drops, is not an argument), and the cached context length from the carrier
tensor threaded through the forward's kwargs (`CONTEXT_KWARG`), so decode is modelled without a
materialized cache. The mask function returns None: masks are implied by the op's arguments.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import CaptureError
from ..models.build import ATTENTION_SPEC_ATTRIBUTE
from ..ops.attention import attention as attention_op

CONTEXT_KWARG = "tensor_cast_context"


def tensor_cast_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: Any, scaling: float | None = None, dropout: float = 0.0,
                          **kwargs: Any) -> tuple[torch.Tensor, None]:
    carrier = kwargs.get(CONTEXT_KWARG)
    if carrier is None:
        raise CaptureError(
            f"{type(module).__name__} does not pass the forward's kwargs to its attention function; "
            "its KV cache cannot be modelled")
    window = _window(module, kwargs.get("sliding_window"))
    sinks = kwargs.get("s_aux")
    scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
    causal = bool(getattr(module, "is_causal", True))
    spec = getattr(module, ATTENTION_SPEC_ATTRIBUTE, None)
    chunk = int(spec.chunk or 0) if spec is not None and spec.kind == "chunked" else 0
    out = attention_op(query, key, value, carrier.shape[0], scale, causal, int(window), sinks, chunk)
    return out, None


def _window(module: torch.nn.Module, hf_window: int | None) -> int:
    """The window the layer's spec says (authoritative: per-layer overrides live there); the one
    the HF code passes must agree with it."""
    spec = getattr(module, ATTENTION_SPEC_ATTRIBUTE, None)
    if spec is None:
        return int(hf_window or 0)
    window = spec.window if spec.kind == "sliding" else 0
    if hf_window and int(hf_window) != window and spec.kind != "sliding":
        raise CaptureError(
            f"{type(module).__name__} applies a sliding window of {hf_window} but the model spec says "
            f"{spec.kind} attention (adapter bug)")
    return int(window or 0)


def no_mask(*args: Any, **kwargs: Any) -> None:
    """Masks are implied by the attention op's causal/window arguments."""
    return None
