"""`tensor-cast models`: the offline registry, read from its JSON files (no transformers import).

`--kinds` adds each model's distinct layer kinds, which needs the adapters (transformers);
`--families` lists instead every config `model_type` the adapters translate (any checkpoint of
those families loads by hub id or local config.json, registry or not), with the names configs also
write for them (aliases, and the remote-code configs models/translations.py builds as them).
"""

from __future__ import annotations

import argparse

HELP = "list the offline registry of public architectures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kinds", action="store_true",
                   help="also describe each model's distinct layer kinds (builds every spec: a few seconds)")
    p.add_argument("--families", action="store_true",
                   help="list the supported config model_types instead (any checkpoint of them loads, registry or not)")


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..models import registry

    if args.families:
        from ..models.adapters import MODEL_TYPE_ALIASES, supported_model_types
        from ..models.translations import TRANSLATIONS

        built_as = {**MODEL_TYPE_ALIASES, **{k: t.target for k, t in TRANSLATIONS.items()}}
        written = {**{k: k for k in MODEL_TYPE_ALIASES},
                   **{k: f"{k} ({', '.join(t.architectures)})" for k, t in TRANSLATIONS.items()}}
        aliases = {v: [written[k] for k, t in built_as.items() if t == v] for v in built_as.values()}
        in_registry: dict[str, int] = {}
        for entry in registry.all_entries():
            kind = built_as.get(entry.config.get("model_type", ""), entry.config.get("model_type", ""))
            in_registry[kind] = in_registry.get(kind, 0) + 1
        print(tabulate([[t, ", ".join(aliases.get(t, [])), in_registry.get(t, 0)] for t in supported_model_types()],
                       headers=["model_type", "also written as", "registry models"], disable_numparse=True))
        return 0
    rows = []
    for entry in registry.all_entries():
        config = entry.config
        text = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config
        size = f"{entry.public_parameters / 1e9:.2f}B" if entry.public_parameters else "?"
        row = [entry.id, config.get("model_type", "?"), size, text.get("num_hidden_layers", "?")]
        if args.kinds:
            from ..models.loader import load_spec

            spec = load_spec(entry.id)
            row.append("; ".join(f"{len(ix)}x {k.describe()}" for k, ix in spec.layer_kinds()))
        rows.append(row)
    headers = ["id", "model_type", "params (public)", "layers"] + (["layer kinds"] if args.kinds else [])
    print(tabulate(rows, headers=headers, disable_numparse=True))
    return 0
