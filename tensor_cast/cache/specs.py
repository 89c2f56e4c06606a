"""The typed `ModelSpec` of a model argument, from the disk cache when its config was read before.

Reading a config goes through transformers (its config classes fill defaults and normalize
fields: `models/loader.py`), which costs more than a second of imports. The spec it gives depends
only on the model argument, the config's contents and the code, so it is cached beside the traces
(`store.py`, side entries of kind "spec") under a key made of the argument, the config's source
(a local directory's or file's config.json bytes, the registry entry's config) and what every
cache key holds (versions, source fingerprint). Hub configs and remote code are never cached
(their contents are not known without transformers). A spec read from the cache is the spec the
loader gave, checked again by `check_spec` like any spec.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from ..models import registry
from ..models.spec import ModelSpec
from .store import CacheStore, cache_enabled, make_key


def _source(model: str, trust_remote_code: bool) -> list[Any] | None:
    """What the loader would read for `model` (same order as `loader.resolve_config`), or None
    when it is not cacheable (hub, remote code, or nothing there: the loader gives the error)."""
    if trust_remote_code:
        return None
    path = Path(model).expanduser()
    try:
        if path.is_dir():
            config = path / "config.json"
            return ["dir", str(path.resolve()), hashlib.sha256(config.read_bytes()).hexdigest()]
        if path.suffix == ".json" and path.is_file():
            return ["file", str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest()]
    except OSError:
        return None
    entry = registry.lookup(model)
    if entry is not None:
        return ["registry", entry.id, json.dumps(dict(entry.config), sort_keys=True, default=str)]
    return None


def load_spec(model: Any, *, trust_remote_code: bool = False, cache: bool = True) -> ModelSpec:
    """`models.loader.load_spec`, through the disk cache for local and registry configs."""
    if isinstance(model, ModelSpec):
        return model
    source = _source(model, trust_remote_code) if isinstance(model, str) and cache and cache_enabled() else None
    if source is None:
        from ..models.loader import load_spec as read

        return read(model, trust_remote_code=trust_remote_code)
    key = make_key(["spec", model, source])
    store = CacheStore()
    spec = store.load_side("spec", key)
    if isinstance(spec, ModelSpec):
        return spec
    from ..models.loader import load_spec as read

    spec = read(model, trust_remote_code=trust_remote_code)
    try:
        store.store_side("spec", key, spec)
    except OSError as exc:
        print(f"tensor-cast: warning: trace cache not written ({exc}); use --no-cache to skip it", file=sys.stderr)
    return spec
