"""Where the trace cache lives, how entries are keyed, and how bad entries are refused.

Directory: `$TENSOR_CAST_CACHE_DIR`, else `$XDG_CACHE_HOME/tensor_cast`, else
`~/.cache/tensor_cast` (the XDG / platformdirs convention); entries in its `traces/` folder.
`TENSOR_CAST_CACHE=0` (or the CLI's `--no-cache`, the API's `cache=False`) turns it off.

Key: the SHA-256 of the model spec (typed fields and HF config), the execution options
(sharding, quantization, fusion, MLA form, MTP, skew), the tensor_cast / torch / transformers
versions, a fingerprint of tensor_cast's own source files (an editable install changes code
without changing its version) and the record format. The shape point and the device are not in
it: one entry serves every shape and device.

Besides the traces, `specs/` holds the typed `ModelSpec` of a model argument read from a local
config or the registry (`specs.py`: keyed by the argument and the config's contents), so a warm
run never imports transformers to read a config it has read before; `timed/` holds records
re-timed on a device (`timed.py`), so a warm run skips the roofline's sympy work; `tp_plans/`
holds each model family's tensor-parallel plan as transformers defines it (`side_value`);
`step_costs/` holds the serving simulator's step-cost builds (`serving/cost_cache.py`).

Entry file: a magic line, the SHA-256 of the payload, the pickled payload. On load the magic, the
digest, the unpickling, the stored key and the record format are all checked; any failure is a
miss (the file is removed and the trace rebuilt), never a trusted result. Writes go to a
temporary file renamed into place, so a crash never leaves half an entry. Pickles run code on
load: the cache directory must be the user's own, as any cache of pickles must.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..versions import versions
from .record import RECORD_FORMAT, TracedCosts, dumps, loads

MAGIC = b"tensor_cast trace cache v1\n"
SUFFIX = ".trace"
OFF_VALUES = ("0", "off", "false", "no")


def cache_dir() -> Path:
    explicit = os.environ.get("TENSOR_CAST_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "tensor_cast"


def cache_enabled() -> bool:
    return os.environ.get("TENSOR_CAST_CACHE", "1").strip().lower() not in OFF_VALUES


# Parts of the package that never feed a trace record (they run after it is built, or beside it):
# editing them must not invalidate every entry.
NOT_IN_RECORD = ("search/", "serving/", "report/", "cli.py", "__main__.py")


@lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """Hash of (path, size, mtime) of every tensor_cast source file that builds a trace record
    (passes and backends included; `NOT_IN_RECORD` excluded)."""
    import tensor_cast

    root = Path(tensor_cast.__file__).resolve().parent
    roots = {root}
    for sub in ("passes", "backends"):  # installed inside the namespace but may live elsewhere
        # found, not imported: the fingerprint must not depend on what this process imported so
        # far (a warm run never imports the passes; the run that stored the entry did)
        found = importlib.util.find_spec(f"tensor_cast.{sub}")
        if found is not None and found.origin:
            roots.add(Path(found.origin).resolve().parent)
    digest = hashlib.sha256()
    for folder in sorted(roots):
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder).as_posix()
            if folder == root and relative.startswith(NOT_IN_RECORD):
                continue
            stat = path.stat()
            digest.update(f"{relative}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def make_key(parts: Any) -> str:
    """The entry key of `parts` (anything JSON-serializable that identifies the trace)."""
    text = json.dumps([parts, versions(), source_fingerprint(), RECORD_FORMAT], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheInfo:
    directory: Path
    entries: int
    bytes: int


SIDE_FOLDERS = {"spec": "specs", "timed": "timed", "tp_plan": "tp_plans",  # side-entry kind -> folder beside traces/
                "step_cost": "step_costs"}


@dataclass(frozen=True)
class SideEntry:
    """A side entry's payload: what it holds, under which key, in which record format."""

    kind: str
    key: str
    value: Any
    format: int = RECORD_FORMAT


class CacheStore:
    """The entries of one cache directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.root = directory or cache_dir()
        self.directory = self.root / "traces"

    def path(self, key: str) -> Path:
        return self.directory / f"{key}{SUFFIX}"

    def side_path(self, kind: str, key: str) -> Path:
        return self.root / SIDE_FOLDERS[kind] / f"{key}{SUFFIX}"

    def load(self, key: str) -> TracedCosts | None:
        """The record stored under `key`, or None (absent, or corrupt / stale and now removed)."""
        found = self._read(self.path(key), key, None)
        return found if isinstance(found, TracedCosts) else None

    def load_side(self, kind: str, key: str) -> Any:
        """The value of the `kind` side entry stored under `key`, or None (as `load`)."""
        found = self._read(self.side_path(kind, key), key, kind)
        return found.value if isinstance(found, SideEntry) else None

    def _read(self, path: Path, key: str, kind: str | None) -> Any:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        problem = self._check(data, key, kind)
        if not isinstance(problem, str):
            return problem
        print(f"tensor-cast: warning: cache entry {path.name} is {problem}; rebuilding it", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None

    @staticmethod
    def _check(data: bytes, key: str, kind: str | None = None) -> TracedCosts | SideEntry | str:
        if not data.startswith(MAGIC):
            return "not a tensor_cast cache entry"
        head, _, payload = data[len(MAGIC):].partition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != head:
            return "corrupt (checksum mismatch)"
        try:
            record = loads(payload)
        except Exception as exc:  # a payload from another code version that no longer unpickles
            return f"unreadable ({type(exc).__name__})"
        expected = TracedCosts if kind is None else SideEntry
        if not isinstance(record, expected) or record.format != RECORD_FORMAT:
            return "stale (another record format)"
        if record.key != key or (isinstance(record, SideEntry) and record.kind != kind):
            return "stale (stored under another key)"
        return record

    def store(self, record: TracedCosts) -> None:
        self._write(self.path(record.key), dumps(record))

    def store_side(self, kind: str, key: str, value: Any) -> None:
        self._write(self.side_path(kind, key), dumps(SideEntry(kind, key, value)))

    @staticmethod
    def _write(path: Path, payload: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def entries(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SUFFIX}")) if self.directory.is_dir() else []

    def info(self) -> CacheInfo:
        files = self.entries()
        return CacheInfo(directory=self.root, entries=len(files),
                         bytes=sum(f.stat().st_size for f in files))

    def clear(self) -> CacheInfo:
        """Remove every trace entry and side entry (and leftover temporary files); returns what was
        removed (`entries` counts the traces)."""
        before = self.info()
        for folder in (self.directory, *(self.root / f for f in SIDE_FOLDERS.values())):
            if folder.is_dir():
                for path in folder.glob(f"*{SUFFIX}"):
                    path.unlink(missing_ok=True)
        return before


def side_value(kind: str, parts: Any, compute: Callable[[], Any]) -> Any:
    """`compute()`, stored as a side entry of `kind` under `make_key([kind, parts])` and read from
    there next time (directly computed when the cache is off: TENSOR_CAST_CACHE=0)."""
    if not cache_enabled():
        return compute()
    key, store = make_key([kind, parts]), CacheStore()
    value = store.load_side(kind, key)
    if value is None:
        value = compute()
        try:
            store.store_side(kind, key, value)
        except OSError as exc:
            print(f"tensor-cast: warning: trace cache not written ({exc}); use --no-cache to skip it", file=sys.stderr)
    return value


def info() -> CacheInfo:
    return CacheStore().info()


def clear() -> CacheInfo:
    return CacheStore().clear()
