"""transformers integration points, as scoped context managers.

Owns every touch of transformers' global registries. Nothing is patched at import: the
`tensor_cast` attention function, the no-op mask function (and, for MoE, the experts function)
are registered only inside `hf_interfaces()` — around a capture — and removed afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

IMPLEMENTATION = "tensor_cast"


@contextlib.contextmanager
def registered(interface: Any, name: str, function: Callable[..., Any]) -> Iterator[None]:
    """Register `function` under `name` in a transformers GeneralInterface, for the block only."""
    mapping = type(interface)._global_mapping
    previous = mapping.get(name)
    type(interface).register(name, function)
    try:
        yield
    finally:
        if previous is None:
            mapping.pop(name, None)
        else:
            mapping[name] = previous


@contextlib.contextmanager
def hf_interfaces(*, attention: Callable[..., Any], mask: Callable[..., Any],
                  experts: Callable[..., Any] | None = None) -> Iterator[None]:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    with contextlib.ExitStack() as stack:
        stack.enter_context(registered(ALL_ATTENTION_FUNCTIONS, IMPLEMENTATION, attention))
        stack.enter_context(registered(ALL_MASK_ATTENTION_FUNCTIONS, IMPLEMENTATION, mask))
        if experts is not None:
            from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

            stack.enter_context(registered(ALL_EXPERTS_FUNCTIONS, IMPLEMENTATION, experts))
        yield
