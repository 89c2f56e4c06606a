"""Output files: checked before any analysis, written all-or-nothing.

Owns what tensor_cast writes to disk (`--json`, `--trace`, `--dump-graph`, and the API's
`dump_graph=`): `check_file` / `check_directory` refuse a path that cannot be written (missing
parent, a directory where a file goes, a file where a directory goes, no permission) with one
line naming the option and the path, *before* minutes of analysis; `write_all` stages every
file as a temporary file beside its target and renames them into place only once all were
written, so a failure (full disk, a path that vanished) leaves no new file behind.

A graph-dump directory gets a manifest (`MANIFEST`) listing the files tensor_cast wrote there;
the next dump into it removes the ones of an older run that it does not rewrite (and only those:
a user's own files are never touched). Imports nothing heavy: the CLI checks paths before it
imports torch.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidArgumentError

MANIFEST = ".tensor_cast_dumps"  # in a dump directory: the files the last dump wrote, one per line


def _writable_dir(folder: Path, option: str, path: Path) -> None:
    if not folder.exists():
        raise InvalidArgumentError(f"{option} {path}: directory {folder} does not exist; create it first")
    if not folder.is_dir():
        raise InvalidArgumentError(f"{option} {path}: {folder} is a file, not a directory")
    try:  # a real probe: permission bits do not tell about read-only mounts or pseudo file systems
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tensor_cast_probe_")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidArgumentError(f"{option} {path}: cannot write in directory {folder}: "
                                   f"{exc.strerror or exc}") from None


def check_file(path: str | os.PathLike[str], option: str) -> Path:
    """The path of an output file, or an error if it cannot be written there."""
    target = Path(path).expanduser()
    if str(path) == "" or target.name in ("", ".", ".."):
        raise InvalidArgumentError(f"{option} needs a file name, got {str(path)!r}")
    if target.is_dir():
        raise InvalidArgumentError(f"{option} {path}: is a directory; give a file name (e.g. {target / 'out.json'})")
    _writable_dir(target.parent, option, target)
    if target.exists() and not os.access(target, os.W_OK):
        raise InvalidArgumentError(f"{option} {path}: file exists and is not writable")
    return target


def check_directory(path: str | os.PathLike[str], option: str) -> Path:
    """The path of an output directory (created on write if missing), or an error."""
    target = Path(path).expanduser()
    if str(path) == "":
        raise InvalidArgumentError(f"{option} needs a directory name, got ''")
    if target.exists() and not target.is_dir():
        raise InvalidArgumentError(f"{option} {path}: is an existing file, not a directory")
    if target.is_dir():
        _writable_dir(target, option, target)
    else:
        _writable_dir(target.parent, option, target)
    return target


def check_distinct(paths: Sequence[tuple[str, Path]]) -> None:
    """Two options naming the same file would overwrite each other: refuse."""
    seen: dict[Path, str] = {}
    for option, path in paths:
        key = path.resolve()
        if key in seen:
            raise InvalidArgumentError(f"{seen[key]} and {option} name the same file {path}; give two different paths")
        seen[key] = option


@dataclass(frozen=True)
class DumpSet:
    """Files for one dump directory: (file name, text) in order."""

    directory: Path
    files: tuple[tuple[str, str], ...]

    def stale(self) -> list[Path]:
        """Files an earlier dump wrote here (per its manifest) that this one does not rewrite."""
        manifest = self.directory / MANIFEST
        if not manifest.is_file():
            return []
        names = {name for name, _ in self.files}
        old = [line.strip() for line in manifest.read_text().splitlines() if line.strip()]
        return [self.directory / n for n in old if n not in names and "/" not in n and (self.directory / n).is_file()]

    def all_files(self) -> list[tuple[Path, str]]:
        manifest = "".join(f"{name}\n" for name, _ in self.files)
        return [(self.directory / name, text) for name, text in self.files] + [(self.directory / MANIFEST, manifest)]


def write_all(files: Iterable[tuple[Path, str]], dumps: Iterable[DumpSet] = ()) -> list[Path]:
    """Write every file, or none: temporaries beside each target, renamed once all were written.

    Dump directories are created if missing (and removed again on failure); files a previous
    dump wrote into them and this one does not rewrite are removed after the renames.
    Returns the paths written. An OSError becomes an `InvalidArgumentError` naming the path.
    """
    dump_sets = list(dumps)
    stale = [old for d in dump_sets for old in d.stale()]  # read the old manifests before replacing them
    plan = list(files) + [item for d in dump_sets for item in d.all_files()]
    created: list[Path] = []
    staged: list[tuple[Path, Path]] = []
    current = Path()
    try:
        for d in dump_sets:
            if not d.directory.exists():
                current = d.directory
                d.directory.mkdir()
                created.append(d.directory)
        for target, text in plan:
            current = target
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((Path(temporary), target))
            try:
                handle = os.fdopen(fd, "w", encoding="utf-8")
            except OSError:
                os.close(fd)
                raise
            with handle:
                handle.write(text)
        for staged_path, target in staged:
            current = target
            os.replace(staged_path, target)
    except OSError as exc:
        for staged_path, _ in staged:
            with contextlib.suppress(OSError):
                staged_path.unlink()
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise InvalidArgumentError(f"cannot write {current}: {exc.strerror or exc}; nothing was written") from None
    for old in stale:
        with contextlib.suppress(OSError):
            old.unlink()
    return [target for _, target in staged]
