"""Lazy package exports (PEP 562), shared by `tensor_cast`, `tensor_cast.search` and
`tensor_cast.serving`: a public name is imported from its module on first use, so importing a
package (the CLI's parser does) never loads torch or transformers by itself.

Owns `lazy_exports(package, table) -> (__getattr__, __dir__)`; nothing here imports torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`table`: public name -> the module (relative to `package`) that defines it."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
