"""The swapped forward of transformers' Mamba-2 mixers (Nemotron-H / Nemotron 3: `NemotronHMamba2Mixer`).

Keeps the module's own `in_proj` (one GEMM giving the gate z, the conv input x / B / C and dt) and
`out_proj`, and replaces the conv1d + discretization + selective scan (transformers' torch path: a
chunked SSD of ~60 eager ops with (chunks x chunk x chunk) intermediates, or the mamba_ssm kernels)
by one `tensor_cast::mamba2_scan` op; the grouped gated output norm (rmsnorm over each of the
`n_groups` groups of y·silu(z), times the weight) is one `tensor_cast::gated_rms_norm`, as vLLM's
`Mixer2RMSNormGated` runs it. The state's dtype is the layer spec's (`MambaSpec.state_dtype`, recorded on
the modules by the build). Applied by `module_swaps.py`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops.mamba import gated_rms_norm, mamba2_scan
from .spec import ATTENTION_SPEC_ATTRIBUTE
from .torch_dtypes import DTYPES


class Mamba2MixerForward:
    """Mixin: `forward` of a Mamba-2 mixer with the conv + scan as one op."""

    tensor_cast_decode_query_len: int = 1

    def forward(self, hidden_states: torch.Tensor, cache: Any = None, attention_mask: Any = None,
                **kwargs: Any) -> torch.Tensor:
        module: Any = self
        gate, xbc, dt = module.in_proj(hidden_states).split(
            [module.intermediate_size, module.conv_dim, module.num_heads], dim=-1)
        spec = getattr(module, ATTENTION_SPEC_ATTRIBUTE, None)  # the layer's AttentionSpec (build.py)
        mamba = spec.mamba if spec is not None else None
        state_dtype = DTYPES.get(mamba.state_dtype, hidden_states.dtype) if mamba is not None else hidden_states.dtype
        y = mamba2_scan(xbc, dt, module.conv1d.weight, module.conv1d.bias, module.A_log, module.D, module.dt_bias,
                        module.num_heads, module.head_dim, module.n_groups, module.ssm_state_size, module.chunk_size,
                        float(module.time_step_limit[0]), state_dtype, module.tensor_cast_decode_query_len)
        norm = module.norm
        y = gated_rms_norm(y, gate, norm.weight, norm.group_size, norm.variance_epsilon)
        return module.out_proj(y)
