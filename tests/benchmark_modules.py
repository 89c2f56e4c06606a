"""Imports of the scripts in benchmarks/ (not a package) for the tests of their fitting code.

`benchmarks(*names)` imports each named script module with benchmarks/ on sys.path only for the
import, and returns the modules in order. Imported by test modules (pytest's `pythonpath`).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmarks(*names: str) -> tuple[ModuleType, ...]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return tuple(importlib.import_module(name) for name in names)
    finally:
        sys.path.remove(str(BENCHMARKS))
