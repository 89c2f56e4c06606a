"""`tensor-cast models`: the offline registry, read from its JSON files (no transformers import).

`--kinds` adds each model's distinct layer kinds, which needs the adapters (transformers).
"""

from __future__ import annotations

import argparse

HELP = "list the offline registry of public architectures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kinds", action="store_true",
                   help="also describe each model's distinct layer kinds (builds every spec: a few seconds)")


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..models import registry

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
