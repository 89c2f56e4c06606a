"""Norm and activation cost rules: fused RMSNorm (+ residual add), act-and-mul, and the
unfused activation functions.

All are memory-bound streaming kernels: each input read once, each output written once; FLOPs
are vector (CUDA-core) work, a few per element.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..counts import Counts
from .registry import OpCall, register

tc = torch.ops.tensor_cast
aten = torch.ops.aten

RMS_NORM_FLOPS_PER_ELEMENT = 4  # square, accumulate, scale by rsqrt, scale by weight
LAYER_NORM_FLOPS_PER_ELEMENT = 7
ACTIVATION_FLOPS = {"silu": 4, "gelu": 8, "gelu_tanh": 8, "relu": 1, "relu2": 2, "sigmoid": 4}


def streaming(call: OpCall, flops_per_element: float) -> Counts:
    """Every tensor input read once, every output written once, vector FLOPs per output element."""
    return Counts(flops={"vector": flops_per_element * call.out.numel}, bytes_read=call.in_bytes,
                  bytes_written=call.out_bytes)


@register(tc.rms_norm.default, torch.rms_norm, F.rms_norm, aten.rms_norm.default, kind="norm")
def rms_norm(call: OpCall) -> Counts:
    return streaming(call, RMS_NORM_FLOPS_PER_ELEMENT)


@register(tc.add_rms_norm.default, kind="norm")
def add_rms_norm(call: OpCall) -> Counts:
    """Residual add fused into the norm: reads x, residual, weight; writes normed and the sum."""
    return streaming(call, RMS_NORM_FLOPS_PER_ELEMENT + 1)


@register(F.layer_norm, torch.layer_norm, aten.layer_norm.default, aten.native_layer_norm.default,
          F.group_norm, kind="norm")
def layer_norm(call: OpCall) -> Counts:
    return streaming(call, LAYER_NORM_FLOPS_PER_ELEMENT)


@register(tc.act_mul.default, kind="activation")
def act_mul(call: OpCall) -> Counts:
    """act(gate) * up in one kernel: reads both halves, writes one."""
    return streaming(call, ACTIVATION_FLOPS.get(str(call.get("activation")), 4) + 1)


@register(tc.activation.default, kind="activation")
def activation(call: OpCall) -> Counts:
    """A composite activation (squared ReLU) in one kernel: reads x, writes act(x)."""
    return streaming(call, ACTIVATION_FLOPS[str(call.get("activation"))])


@register(F.silu, torch.nn.functional.hardswish, "Tensor.silu", aten.silu.default, kind="activation")
def silu(call: OpCall) -> Counts:
    return streaming(call, ACTIVATION_FLOPS["silu"])


@register(F.gelu, aten.gelu.default, "Tensor.gelu", kind="activation")
def gelu(call: OpCall) -> Counts:
    return streaming(call, ACTIVATION_FLOPS["gelu"])


@register(F.relu, torch.relu, "Tensor.relu", aten.relu.default, F.leaky_relu, F.elu, F.softplus,
          kind="activation")
def relu_like(call: OpCall) -> Counts:
    return streaming(call, 2)


@register(torch.sigmoid, "Tensor.sigmoid", F.sigmoid, aten.sigmoid.default, torch.tanh, "Tensor.tanh",
          F.tanh, aten.tanh.default, kind="activation")
def sigmoid_tanh(call: OpCall) -> Counts:
    return streaming(call, ACTIVATION_FLOPS["sigmoid"])


@register(F.softmax, torch.softmax, "Tensor.softmax", F.log_softmax, "Tensor.log_softmax",
          aten._softmax.default, aten.softmax.int, kind="activation")
def softmax(call: OpCall) -> Counts:
    return streaming(call, 5)
