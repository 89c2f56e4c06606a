"""The offline registry of public architectures.

Owns `registry/*.json`: one file per public model, holding the published `config.json` fields
(architecture numbers only: no weights, no tokenizer), the public parameter count and where the
numbers come from. Ids are the hub ids and match case-insensitively; a few aliases are allowed
(`mistralai/Mistral-7B`). Nothing here touches the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class RegistryEntry:
    id: str
    config: dict[str, Any] = field(repr=False)
    public_parameters: float | None = None  # the size the model card states, for checks
    source: str = ""
    aliases: tuple[str, ...] = ()
    notes: str = ""


@cache
def _entries() -> dict[str, RegistryEntry]:
    table: dict[str, RegistryEntry] = {}
    folder = resources.files("tensor_cast.models") / "registry"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".json"):
            continue
        data = json.loads(item.read_text())
        entry = RegistryEntry(
            id=data["id"],
            config=data["config"],
            public_parameters=data.get("public_parameters"),
            source=data.get("source", ""),
            aliases=tuple(data.get("aliases", ())),
            notes=data.get("notes", ""),
        )
        for key in (entry.id, *entry.aliases):
            if key.lower() in table:
                raise ValueError(f"registry id {key!r} appears twice")
            table[key.lower()] = entry
    return table


def lookup(model_id: str) -> RegistryEntry | None:
    return _entries().get(model_id.strip().lower())


def all_entries() -> list[RegistryEntry]:
    """Every entry once (aliases folded), sorted by id."""
    seen: dict[str, RegistryEntry] = {e.id: e for e in _entries().values()}
    return [seen[k] for k in sorted(seen, key=str.lower)]


def ids() -> list[str]:
    return [e.id for e in all_entries()]
