"""The swapped forward of transformers' Mamba-1 mixers (Jamba: `JambaMambaMixer`).

Keeps the module's own projections — `in_proj` (x and the gate z), `x_proj` (the time step, B and C from
the conv output), `dt_proj` (the time step back to the inner width; its bias is added inside the scan,
as transformers and mamba_ssm do) and `out_proj` — and the RMSNorms Jamba puts on the time step, B and
C, and replaces the conv1d + selective scan (transformers' torch path: a token loop or an associative
scan of many eager ops, or the mamba_ssm kernels) by `tensor_cast::mamba1_conv` and
`tensor_cast::mamba1_scan` (ops/mamba.py). The state's dtype is the layer spec's
(`MambaSpec.state_dtype`, recorded on the modules by the build). Applied by `module_swaps.py`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..ops.mamba import mamba1_conv, mamba1_scan
from .spec import ATTENTION_SPEC_ATTRIBUTE
from .torch_dtypes import DTYPES


class Mamba1MixerForward:
    """Mixin: `forward` of a Mamba-1 mixer with its conv and scan as two ops."""

    tensor_cast_decode_query_len: int = 1

    def forward(self, hidden_states: torch.Tensor, cache: Any = None, attention_mask: Any = None,
                **kwargs: Any) -> torch.Tensor:
        module: Any = self
        x, gate = module.in_proj(hidden_states).chunk(2, dim=-1)
        x = mamba1_conv(x, module.conv1d.weight, module.conv1d.bias)
        step, b, c = module.x_proj(x).split([module.time_step_rank, module.ssm_state_size, module.ssm_state_size],
                                            dim=-1)
        step, b, c = module.dt_layernorm(step), module.b_layernorm(b), module.c_layernorm(c)
        dt = F.linear(step, module.dt_proj.weight)
        spec = getattr(module, ATTENTION_SPEC_ATTRIBUTE, None)  # the layer's AttentionSpec (build.py)
        mamba = spec.mamba if spec is not None else None
        state_dtype = DTYPES.get(mamba.state_dtype, hidden_states.dtype) if mamba is not None else hidden_states.dtype
        y = mamba1_scan(x, dt, module.A_log, b, c, module.D, gate, module.dt_proj.bias, state_dtype,
                        module.tensor_cast_decode_query_len)
        return module.out_proj(y)
