"""Ops that cost nothing, listed by name with the reason.

Anything not here and without a rule is an error (`UnknownOpError`), never a silent zero.
"""

from __future__ import annotations

import torch

from .registry import register_free

aten = torch.ops.aten

register_free(
    "view: a new shape/stride over the same storage, no data movement",
    "Tensor.view", "Tensor.view_as", "Tensor.transpose", "Tensor.permute", "Tensor.unsqueeze", "Tensor.squeeze",
    "Tensor.expand", "Tensor.expand_as", "Tensor.t", "Tensor.flatten", "Tensor.unflatten", "Tensor.narrow",
    "Tensor.split", "Tensor.chunk", "Tensor.unbind", "Tensor.movedim", "Tensor.swapaxes", "Tensor.as_strided",
    "Tensor.split_with_sizes", "Tensor.mT", "Tensor.T", "Tensor.detach", "Tensor.unfold",
    torch.transpose, torch.permute, torch.unsqueeze, torch.squeeze, torch.flatten, torch.narrow, torch.split,
    torch.chunk, torch.unbind, torch.movedim, torch.t, torch.swapaxes, torch.broadcast_to, torch.unflatten,
    torch.as_strided, torch.detach, torch.Tensor.expand,
    aten.view.default, aten._unsafe_view.default, aten.t.default, aten.transpose.int, aten.permute.default,
    aten.unsqueeze.default, aten.squeeze.dim, aten.expand.default, aten.slice.Tensor, aten.select.int,
    aten.split.Tensor, aten.alias.default, aten.detach.default,
)
register_free(
    "shape query answered on the host",
    "Tensor.size", "Tensor.dim", "Tensor.numel", "Tensor.stride", "Tensor.is_contiguous", "Tensor.element_size",
    torch.numel, "Tensor.is_floating_point", torch.is_floating_point, torch.is_complex,
    aten.sym_size.int, aten.sym_stride.int, aten.sym_numel.default,
)
register_free(
    "host-side mode switch, no device work",
    torch._C._set_grad_enabled, torch.amp.autocast_mode._enter_autocast, torch.amp.autocast_mode._exit_autocast,
    torch._C._log_api_usage_once, torch._functorch.vmap.lazy_load_decompositions,
)
register_free(
    "engines precompute the cos/sin cache once per model and index it inside the RoPE kernel",
    torch.ops.tensor_cast.rotary_table.default,
)
