"""The versions tensor_cast runs with, and the dependency window its suite passed on.

Owns `versions()` (tensor_cast, torch, transformers), `versions_line()` (the one-line form error
messages name), `release()` (a version's numeric release, also the CI drift check's) and
`outside_window()` (warnings for a torch / transformers release outside the window
`pyproject.toml` declares; the same bounds are written here, a test keeps both equal).
Nothing here imports torch or transformers: versions come from installed package metadata.
"""

from __future__ import annotations

import re
from importlib import metadata

# The releases the whole suite and the drift check passed on (pyproject.toml says the same).
TESTED_WINDOW: dict[str, tuple[str, str]] = {
    "torch": ("2.13.0", "2.13.0"),
    "transformers": ("5.23.0", "5.24.0"),
}


def _installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    return {name: _installed(dist) for name, dist in
            (("tensor_cast", "tensor-cast"), ("torch", "torch"), ("transformers", "transformers"))}


def versions_line() -> str:
    return ", ".join(f"{name} {version}" for name, version in versions().items())


def release(version: str) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13, 0); a pre-release ('6.0.0rc1', '5.25.0.dev0') as its base release."""
    match = re.match(r"(\d+(?:\.\d+)*)", version)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def outside_window() -> list[str]:
    """One warning per dependency whose installed release is outside the tested window."""
    found = versions()
    warnings = []
    for package, (low, high) in TESTED_WINDOW.items():
        installed = found[package]
        if installed == "not installed":
            warnings.append(f"{package} is not installed (tested: {low} to {high})")
        elif not release(low) <= release(installed) <= release(high):
            warnings.append(f"{package} {installed} is outside the tested window {low} to {high}: "
                            f"numbers may be wrong; run the drift check (.ci/drift_check) before trusting them")
    return warnings
