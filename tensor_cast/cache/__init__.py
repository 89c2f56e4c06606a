"""The disk cache of traced, device-independent results.

`record.py` owns what is cached (`TracedCosts`: per-node counts, call shapes, layer / phase,
module, dtype, the activation liveness candidates and the parameter tables of one trace — all
device-independent, re-timed per device on load) and how it is pickled; `store.py` owns where
it lives, its keys and how a corrupt or stale entry is detected and rebuilt.
"""

from .record import TracedCosts
from .store import CacheStore, cache_dir, cache_enabled, clear, info

__all__ = ["CacheStore", "TracedCosts", "cache_dir", "cache_enabled", "clear", "info"]
