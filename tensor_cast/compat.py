"""transformers integration points, as scoped context managers.

Owns every touch of transformers' global registries. Nothing is patched at import: the
`tensor_cast` attention function, the no-op mask function (and, for MoE, the experts function)
are registered only inside `hf_interfaces()` — around a capture — and removed afterwards.
The one process-wide change, `skip_scipy_in_transformers()`, is made only by the CLI in a
process of its own, before transformers' modeling utilities load.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
from collections.abc import Callable, Iterator
from typing import Any

IMPLEMENTATION = "tensor_cast"


LOSSES = "transformers.loss"  # the package whose import pulls in scipy.optimize


def skip_scipy_in_transformers() -> bool:
    """From now on in this process, transformers is told scipy is not installed; True if set up.

    transformers' modeling utilities import `scipy.optimize` (~0.4 s of CPU on 2 cores) only for
    the Hungarian matching of object-detection training losses (`transformers.loss.*`), which
    tensor_cast never runs. Only for a process that runs tensor_cast and exits (`tensor-cast`,
    `cli.main(own_process=True)`): those losses stay unusable in it. Nothing is imported here:
    a one-shot import hook makes the change when `transformers.loss` is first imported (by then
    `transformers.utils` is loaded). Left alone when scipy or transformers' losses are already
    imported (nothing to save) or transformers no longer has the check (a newer layout).
    """
    if "scipy" in sys.modules or LOSSES in sys.modules:
        return False
    sys.meta_path.insert(0, _SkipScipy())
    return True


class _SkipScipy(importlib.abc.MetaPathFinder):
    """Before `transformers.loss` is imported: `is_scipy_available()` answers False; then leaves."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname != LOSSES:
            return None
        sys.meta_path.remove(self)
        utils, import_utils = sys.modules.get("transformers.utils"), sys.modules.get("transformers.utils.import_utils")
        if "scipy" not in sys.modules and all(hasattr(m, "is_scipy_available") for m in (utils, import_utils)):
            utils.is_scipy_available = import_utils.is_scipy_available = _no_scipy  # type: ignore[union-attr]
        return None  # the regular finders import it


def _no_scipy() -> bool:
    return False


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
