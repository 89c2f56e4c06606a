"""User-facing errors.

Owns the `TensorCastError` hierarchy. Every error a user can cause (bad model id, bad device,
bad sizes, bad deployment) is one of these, with a message that names the bad value and the
accepted ones. The CLI prints the message on one line and exits 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class TensorCastError(Exception):
    """Base class of every error caused by user input."""


class UnknownModelError(TensorCastError):
    """The model argument is not a local config, a registry id or a reachable hub id."""


class MalformedConfigError(TensorCastError):
    """A config.json could not be read or lacks a required field."""


class UnsupportedModelError(TensorCastError):
    """The config is valid but its architecture cannot be analyzed (yet)."""


class UnknownDeviceError(TensorCastError):
    """The device name is not a built-in profile and not a profile file."""


class InvalidProfileError(TensorCastError):
    """A device profile file has unknown keys, missing keys or bad values."""


class InvalidArgumentError(TensorCastError):
    """A size, option or override has a value outside its accepted range."""


class DeploymentError(TensorCastError):
    """A deployment (parallelism, quantization) does not fit the model."""


class UnknownOpError(TensorCastError):
    """A graph node has no cost rule and is not a known free op."""


class CaptureError(TensorCastError):
    """The model could not be captured into a graph with symbolic sizes."""


def choices(values: Iterable[object], limit: int = 40) -> str:
    """Format accepted values for an error message: 'a, b, c' (truncated with a count)."""
    items = [str(v) for v in values]
    if len(items) > limit:
        return ", ".join(items[:limit]) + f", ... ({len(items) - limit} more)"
    return ", ".join(items)


def close_matches(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """Candidates closest to `name` (difflib; case-insensitive, also on the part after 'org/'), best first."""
    lowered = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    tails = {c.lower().rsplit("/", 1)[-1]: c.lower() for c in candidates}
    for tail in difflib.get_close_matches(name.lower().rsplit("/", 1)[-1], list(tails), n=n, cutoff=0.6):
        if tails[tail] not in found:
            found.append(tails[tail])
    return [lowered[f] for f in found[:n]]


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    """'did you mean 'x' or 'y'? ' for close candidates, else ''."""
    close = close_matches(name, candidates)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
