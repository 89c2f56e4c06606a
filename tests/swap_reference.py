"""Shared by the tests that check a module swap (models/module_swaps.py) against transformers' own forward:
random weights of a trained model's scale, and the before / after comparison on CPU."""

from __future__ import annotations

from typing import Any

import torch

from tensor_cast.models.module_swaps import apply_module_swaps


def randomize(module: torch.nn.Module, scale: float = 0.3) -> None:
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn_like(parameter) * scale)


def assert_swap_keeps_output(module: torch.nn.Module, *inputs: Any) -> None:
    """`module(*inputs)` is the same (fp32, 1e-4) after `apply_module_swaps` swapped it (exactly once)."""
    with torch.no_grad():
        expected = module(*inputs)
        assert apply_module_swaps(torch.nn.ModuleList([module])) == 1
        got = module(*inputs)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
