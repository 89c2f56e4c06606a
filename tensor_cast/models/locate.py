"""What a model argument names — a local directory, a config.json file, a registry id, a hub id —
decided without importing transformers, and the error for one that names nothing.

Owns the "unknown model" message: close registry ids first (difflib), then the rest, and the
hub probe (`is_offline`). The CLI calls `check_model_argument` before importing torch, so a
misspelt id answers at once; `loader.py` builds the config from what this finds.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..errors import UnknownModelError, choices, close_matches, did_you_mean
from . import registry

HUB_PROBE_TIMEOUT_S = 2.0


def unknown_model_message(model: str, reason: str = "") -> str:
    ids = registry.ids()
    close = close_matches(model, ids)
    listed = close + [i for i in ids if i not in close]
    return (f"unknown model {model!r}: {did_you_mean(model, ids)}it is not a local directory with config.json "
            f"and not in the offline registry (`tensor-cast models` lists {len(ids)} ids: "
            f"{choices(listed, limit=8)}){reason}")


def is_offline() -> bool:
    """True when the hub must not or cannot be reached (checked with one short connection)."""
    flags = (os.environ.get(name, "0").lower() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if any(flag in ("1", "true", "yes") for flag in flags):
        return True
    try:
        socket.create_connection(("huggingface.co", 443), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError:
        return True
    return False


def check_model_argument(model: object) -> None:
    """Raise `UnknownModelError` for an argument that can name nothing; pass anything that may."""
    if not isinstance(model, str) or not model.strip():
        raise UnknownModelError(f"model must be a non-empty string, got {model!r}")
    path = Path(model).expanduser()
    if path.is_dir() or (path.suffix == ".json" and path.is_file()) or registry.lookup(model) is not None:
        return
    if model.count("/") != 1:
        raise UnknownModelError(unknown_model_message(model))
    if is_offline():
        raise UnknownModelError(unknown_model_message(model, "; the hub is not reachable (offline)"))
