"""The disk cache of traced, device-independent results.

`record.py` owns what is cached (`TracedCosts`: per-node counts, call shapes, layer / phase,
module, dtype, the activation liveness candidates and the parameter tables of one trace — all
device-independent, re-timed per device on load) and how it is pickled; `store.py` owns where
it lives, its keys and how a corrupt or stale entry is detected and rebuilt, and the side entries
beside the traces; `specs.py` caches the typed spec of a config and `timed.py` a record re-timed
on one device, so a warm run imports neither torch nor transformers.
"""

from .record import TracedCosts
from .store import CacheStore, cache_dir, cache_enabled, clear, info

__all__ = ["CacheStore", "TracedCosts", "cache_dir", "cache_enabled", "clear", "info"]
