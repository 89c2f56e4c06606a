"""The SGLang disaggregated recipes' launch flags that the serving-fidelity mapping reads, from two
hand-transcribed tables in `benchmarks/data/` (README there: source repositories, paths, commits):

- `sglang_pool_flags(found, role, dp)`: `sglang_disagg_recipe_flags.csv` — a pool's step budget
  (`--chunked-prefill-size`, `tok`) and per-rank running cap (`--max-running-requests` // dp, `bs`);
- `sglang_pool_exchange(found, role)`: `sglang_disagg_recipe_a2a.csv` — a pool's MoE exchange from
  `--moe-a2a-backend` ("a2a" for deepep, "allgather" without one: SGLang's default);
- `sglang_recipe_drafts(recipe)`: `sglang_disagg_recipe_mtp.csv` — the draft tokens of an MTP recipe's
  decode pool (`--speculative-num-steps` of EAGLE with top-k 1: one draft token a step), which SGLang's
  recipe names (`.../mtp/...`) do not carry.

`found` is the InferenceMAX recipes a row matched (`fidelity_disagg._matching_recipes`); a value is
taken where the matched recipes' lines agree (a recipe's `stp` and `mtp` variants share them; the
exchange also needs a line for every matched recipe), else the engine's default applies. Each table
is read once.
"""

from __future__ import annotations

import csv
import os
from typing import Any

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
_SGLANG_FLAGS: dict[tuple[str, str], dict[str, str]] = {}  # (recipe, role) -> line
_SGLANG_A2A: dict[tuple[str, str], dict[str, str]] = {}
_SGLANG_MTP: dict[tuple[str, str], dict[str, str]] = {}


def _table(cache: dict[tuple[str, str], dict[str, str]], name: str) -> dict[tuple[str, str], dict[str, str]]:
    """`cache`, filled from `data/<name>` on first use: (recipe, role) -> the line."""
    if not cache:
        with open(os.path.join(DATA, name), newline="") as fh:
            cache.update(((r["recipe"], r["role"]), r) for r in csv.DictReader(fh))
    return cache


def _agreed(table: dict[tuple[str, str], dict[str, str]], found: list[dict[str, Any]], role: str,
            columns: tuple[str, ...], every: bool) -> tuple[str, ...] | None:
    """The columns' values for this role where the matched recipes' lines agree; `every`: each matched
    recipe must have a line (else recipes without one are passed over)."""
    lines = [table.get((rec["recipe"], role)) for rec in found]
    if every and None in lines:
        return None
    values = {tuple(line[c] for c in columns) for line in lines if line is not None}
    return values.pop() if len(values) == 1 else None


def sglang_pool_flags(found: list[dict[str, Any]], role: str, dp: int) -> dict[str, int]:
    """Disagg spec keys of one pool: `tok` = `--chunked-prefill-size` (the worker's budget, which
    SGLang divides among the pool's attention-DP ranks), `bs` = `--max-running-requests` // dp (what
    SGLang gives each rank; `bs` is per rank); {} where the matched recipes have no agreed lines."""
    agreed = _agreed(_table(_SGLANG_FLAGS, "sglang_disagg_recipe_flags.csv"), found, role,
                     ("chunked_prefill_size", "max_running_requests"), every=False)
    if agreed is None:
        return {}
    chunk, running = (int(v) for v in agreed)
    return {"bs": max(1, running // dp), "tok": chunk}


def sglang_pool_exchange(found: list[dict[str, Any]], role: str) -> str | None:
    """The disagg spec's exchange word of one attention-DP pool: "a2a" for deepep, "allgather" for none
    (SGLang's default: DP attention gathers the tokens); None without agreed lines."""
    agreed = _agreed(_table(_SGLANG_A2A, "sglang_disagg_recipe_a2a.csv"), found, role, ("moe_a2a_backend",), every=True)
    return {"deepep": "a2a", "none": "allgather"}.get(agreed[0]) if agreed else None


def sglang_recipe_drafts(recipe: str) -> int | None:
    """Draft tokens a step of an SGLang MTP recipe's decode pool: `--speculative-num-steps` of EAGLE with
    `--speculative-eagle-topk` 1 (a chain: `--speculative-num-draft-tokens` = steps + 1, the verified
    token included); None where the table has no such line (another algorithm or a tree of drafts)."""
    line = _table(_SGLANG_MTP, "sglang_disagg_recipe_mtp.csv").get((recipe, "decode"))
    if line is None or line["speculative_algorithm"] != "EAGLE" or line["speculative_eagle_topk"] != "1":
        return None
    steps = int(line["speculative_num_steps"])
    return steps if int(line["speculative_num_draft_tokens"]) == steps + 1 else None
