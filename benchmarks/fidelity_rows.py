"""Which measured serving rows a fidelity run takes: id files, twins, one row per measured run.

Owns `read_ids` (an --out CSV's id column or one id per line), `measurement` (what identifies one measured
run), `excluded` (the rows some files name, with their twins: `serving_fidelity.py --exclude`) and
`distinct` (one row per measured run: `--distinct`). Plain functions over the measured CSV's rows (dicts of
strings); the row mapping itself is `fidelity_mapping.py`'s.
"""

from __future__ import annotations

import csv


def read_ids(path: str) -> set[str]:
    """Row ids from a file: an --out CSV (its `id` column) or one id per line."""
    with open(path, newline="") as fh:
        text = fh.read()
    lines = text.splitlines()
    if lines and "," in lines[0] and "id" in lines[0].split(","):
        return {r["id"] for r in csv.DictReader(lines)}
    return {line.strip() for line in lines if line.strip()}


def measurement(r: dict[str, str]) -> tuple[str, ...]:
    """What identifies one measured run: the sample writes some InferenceMAX runs twice, under two layouts
    (fidelity_mapping.py docstring, "parallelism"), with the same system, engine and measured TTFT and
    TPOT — some written to 5 decimals, some to 14 (`511.88771` and `511.88770990941356` ms): compared to
    1e-4 ms."""
    return r["system"], r["backend"], f"{float(r['silicon_ttft_ms']):.4f}", f"{float(r['silicon_tpot_ms']):.4f}"


def excluded(rows: list[dict[str, str]], paths: list[str]) -> set[str]:
    """The ids `paths` name and their twins (rows of the same `measurement`)."""
    ids = set().union(*(read_ids(p) for p in paths)) if paths else set()
    taken = {measurement(r) for r in rows if r["id"] in ids}
    return {r["id"] for r in rows if r["id"] in ids or measurement(r) in taken}


def distinct(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """One row per measured run: the first of each set of twins, in file order."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for r in rows:
        key = measurement(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out
