"""Write a few keys of one efficiency section into a device profile's TOML text, leaving every other
line as it was (a stage-only refit: `calibrate_device.py --from-aic DIR --stages moe`).

Owns `set_section_keys(text, section, values, sources)`: each `values` key replaces its line in
`[section]` (or is added at the section's end), each `sources` entry replaces its `"section.key"`
line in `[sources]` (or is added there). It reads no tables and fits nothing; a key of a section
the text lacks is an error (a stage-only refit writes into a section that exists).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from calibration_fit import _toml_value


def _bounds(lines: list[str], name: str) -> tuple[int, int]:
    """(first, end) line indices of the body of `[name]` (end: the next section header or EOF)."""
    start = next((i for i, ln in enumerate(lines) if re.match(rf"^\[{re.escape(name)}\]", ln)), None)
    if start is None:
        raise KeyError(f"the profile has no [{name}] section")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^\[", lines[i])), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return start + 1, end


def _set(lines: list[str], name: str, key: str, value_text: str) -> None:
    first, end = _bounds(lines, name)
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(first, end):
        if pattern.match(lines[i]):
            lines[i] = f"{key} = {value_text}"
            return
    lines.insert(end, f"{key} = {value_text}")


def set_section_keys(text: str, section: str, values: Mapping[str, float], sources: Mapping[str, str]) -> str:
    """`text` with `values` (keys without the section prefix) written into `[section]` and
    `sources` (same keys) into `[sources]` as `"section.key"` entries."""
    lines = text.rstrip("\n").split("\n")
    for key, value in values.items():
        _set(lines, section, key, _toml_value(value))
    for key, source in sources.items():
        _set(lines, "sources", _toml_value(f"{section}.{key}"), _toml_value(source))
    return "\n".join(lines) + "\n"
