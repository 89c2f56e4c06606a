"""A disaggregated serving row's deployment: its pools, worker counts, MTP and decode batch cap.

Part of `serving_fidelity.py`'s row mapping (the other clauses: `fidelity_mapping.py`,
`fidelity_engine_flags.py`): `disagg_deployment` turns a disagg row into tensor_cast's disagg spec and MTP
draft count, from the row's own columns where it gives its worker counts and from InferenceMAX's benchmark
matrix (`benchmarks/data/inferencemax_disagg_recipes.csv`) where it does not.

- disagg worker counts, MTP and attention DP (`disagg_deployment`): 1,172 of the 1,418 disagg rows
  (393 of 465 on h100_sxm / b200_sxm) leave `prefill_num_workers` / `decode_num_workers` empty. They
  are InferenceMAX multinode runs (`source_file=2026-03-25.csv` / `2026-04-06.csv`), whose own
  result records carry prefill/decode workers, tp, ep and dp-attn (InferenceMAX
  utils/process_result.py); the CSV kept one tp per pool, wrote the prefill pool's EP into both
  pools (decode tp 8 with moe_tp 2 x moe_ep 4 beside prefill tp4/ep4: moe_tp = tp / that EP), and
  dropped the worker counts, dp-attn and the speculative-decoding setting. Every such run is one
  entry of InferenceMAX's benchmark matrix, `.github/configs/nvidia-master.yaml` (per entry: its
  concurrencies, MTP or not, and each pool's num-worker / tp / ep / dp-attn; the CONFIG_FILE recipe
  name carries the MTP draft count, e.g. `ctx1_gen5_dep8_batch16_eplb0_mtp2`; SGLang's srt-slurm recipe names
  say only `.../mtp/...`: their decode pools' `--speculative-num-steps` are transcribed in
  `benchmarks/data/sglang_disagg_recipe_mtp.csv`, `sglang_recipe_drafts`). Those entries are
  transcribed in `benchmarks/data/inferencemax_disagg_recipes.csv` (README there: source commit,
  what was transcribed). A row takes the recipe that matches its model (DeepSeek-R1 / -V3 rows take
  the `dsr1` entries, gpt-oss the `gptoss` ones; no other model has entries), system, engine, precision,
  isl/osl, concurrency, prefill tp, prefill EP and decode tp; the match is exact (the recipes'
  concurrencies are odd numbers such as 1214 or 10860, found verbatim in the rows). Where nothing
  matches, or recipes with different worker counts / parallelism match, the counts are not
  determined: the row is not simulated and is listed with that reason (no rule guesses them).
  Where the matching recipes agree on the deployment but not on MTP (InferenceMAX runs most
  points both with and without MTP, and the CSV does not say which row is which), the row is
  simulated without MTP and reported apart ("disagg, recipe, MTP unknown"). Rows that give the
  counts take MTP from a recipe when exactly one matches them (counts, concurrency, decode GPUs),
  and the decode batch cap below when every matching recipe gives the same one (the MTP and
  non-MTP twins of a layout do: `..._batch1_eplb0_mtp3` / `_mtp0`); where an MTP and a plain twin
  both match, MTP is open for them too ("given, MTP unknown").
- disagg MTP levels (`disagg_mtp_sources`): the rows tell the twins apart where the recipes do not,
  as the agg MTP twins do (`fidelity_mapping.py`, agg MTP). Of the 64 measured configurations whose
  matching recipes are a layout's MTP and plain twins (system, engine, precision, isl/osl,
  concurrency and the recipes matched), 47 were measured at two TPOT levels 1.21-2.17x apart, each
  level repeated within 2 % (B200 TensorRT-LLM FP4 TEP8 1k/1k at 10 clients: 3.46 and 6.10 ms; SGLang
  FP8 TP8 at 128 clients: 12.35-12.47 and 19.50-19.55 ms). Where a configuration's TPOTs form exactly
  two such levels (`fidelity_mapping.two_levels`, the agg rule: at least `MTP_TWIN_RATIO` apart, each
  within `LEVEL_SPREAD`), the faster rows are the MTP run, simulated with the MTP recipe's draft
  count, and the slower the plain run ("..., MTP by TPOT level"); the others stay "MTP unknown",
  simulated without MTP. An SGLang MTP recipe the draft table lacks leaves its rows unknown.
  The TensorRT-LLM recipe names also give the decode servers' max_batch_size per attention-DP
  rank (`_batch64_`), simulated as the decode pool's `bs` (max_num_seqs of each rank): InferenceMAX
  runs these recipes at 1.05-1.4x that capacity (e.g. 1214 clients on 2 x DEP8 x 64), so the cap
  decides the decode batch, and the excess clients queue (TTFT). A pool's recipe parallelism maps as: dp-attn with ep = tp -> tp 1, dp = tp, ep = tp (attention
  DP + wide EP); no dp-attn -> tp, ep (TP attention, experts moe_tp = tp / ep x ep; ep 1: MoE
  TP); dp-attn with ep < tp -> tp 1, dp = tp, ep, moe_tp = tp / ep (MoE TP across the
  attention-DP ranks, `imx_parallel`). Rows that give their counts keep their own pool columns,
  except a pool written as attention DP with moe_ep 1 and moe_tp = dp (every such h100_sxm /
  b200_sxm row's matching InferenceMAX entries run that prefill pool as DEP8, ep = tp: the column
  is the decode pool's EP): the entries' layout is taken when they agree, else the row is listed
  (`given_pool`). SGLang pools take their recipe's `--chunked-prefill-size` (`tok`, divided among
  the pool's attention-DP ranks by the engine) and `--max-running-requests` // dp (`bs`, per rank)
  where `benchmarks/data/sglang_disagg_recipe_flags.csv` transcribes the recipe (`sglang_pool_flags`,
  `sglang_recipe_tables.py`;
  a few srt-slurm recipes so far), else the engine's defaults; and an attention-DP pool's MoE
  exchange from its recipe's `moe-a2a-backend` (`a2a` in the spec for deepep; without one the
  all-gather, SGLang's default; `sglang_pool_exchange`, `benchmarks/data/sglang_disagg_recipe_a2a.csv`, every SGLang
  recipe of the recipes table), the engine's default (all-gather) where the table has no line. TensorRT-LLM
  pools take the engine's default exchange (deployment/moe_exchange.py: its NVLink all-to-all within one
  NVLink domain, AllGatherReduceScatter across nodes). MTP acceptance is tensor_cast's default (`speculative.DEFAULT_ACCEPTANCE`, per
  draft): no public figure for DeepSeek-R1 on sa-bench's random prompts was found (docs/serving_accuracy.md, "MTP
  acceptance"); `--mtp-acceptance A` is the what-if.
- disagg concurrency: `silicon_concurrency`. The 7 AIConfigurator-eval disagg rows (Qwen3 on
  H100) do not carry it, and their decode_batch_size is not it: on the 239 disagg rows that carry
  both, silicon_concurrency = decode_batch_size x decode_num_workers x decode_attention_dp_size,
  but on these 7 that product cannot be the load (a Qwen3-32B row's 2 TP4 decode workers x 224
  requests of ~4,500 tokens would read >= 33 GB of FP8 KV cache per GPU per step, >= 10 ms on an
  H100, against 8.7 ms measured TPOT). They are listed as not determined; before, they ran one
  client each (batch_size is empty).
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from typing import Any

from fidelity_mapping import Unsupported, _int, concurrency, family, imx_parallel, parallel, two_levels
from sglang_recipe_tables import (  # SGLang recipe flag tables (data/)
    sglang_pool_exchange,
    sglang_pool_flags,
    sglang_recipe_drafts,
)


def workers_given(row: dict[str, str]) -> bool:
    return bool(row["prefill_num_workers"] and row["decode_num_workers"])


RECIPES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "inferencemax_disagg_recipes.csv")
ROLES = ("prefill", "decode")
RECIPE_MODELS = {"DeepSeek": "dsr1", "gpt-oss": "gptoss"}  # family -> the recipes' InferenceMAX model prefix


def load_recipes(path: str = RECIPES_PATH) -> list[dict[str, Any]]:
    """InferenceMAX disagg matrix entries (docstring, disagg), one per recipe and concurrency list."""
    out = []
    with open(path, newline="") as fh:
        for rec in csv.DictReader(fh):
            ints = {k: int(v) for k, v in rec.items() if k not in ("model", "system", "backend", "precision",
                                                                  "concurrency", "recipe")}
            mtp = re.search(r"mtp(\d*)", rec["recipe"])
            drafts = (int(mtp.group(1)) if mtp.group(1) else sglang_recipe_drafts(rec["recipe"])) if mtp else 0
            out.append({**rec, **ints, "concurrency": {int(c) for c in rec["concurrency"].split()}, "mtp": drafts})
    return out


_RECIPES: list[dict[str, Any]] = []


def recipes() -> list[dict[str, Any]]:
    if not _RECIPES:
        _RECIPES.extend(load_recipes())
    return _RECIPES


def recipe_parallel(tp: int, ep: int, dp_attn: bool) -> dict[str, int]:
    """tensor_cast deployment keys of one pool's InferenceMAX (tp, ep, dp-attn) (docstring, disagg);
    the recipes are all of MoE models (DeepSeek-R1, gpt-oss)."""
    return imx_parallel(tp, ep, dp_attn, moe=True)


def _matching_recipes(row: dict[str, str], given: bool) -> list[dict[str, Any]]:
    c = concurrency(row)
    model = RECIPE_MODELS.get(family(row["model_path"]))
    found = [r for r in recipes() if r["model"] == model and r["system"] == row["system"] and r["backend"] == row["backend"]
             and r["precision"] == row["precision"] and r["isl"] == int(row["isl"]) and r["osl"] == int(row["osl"])
             and c in r["concurrency"]]
    if given:  # the row's own counts and decode GPUs per worker
        return [r for r in found if r["p_workers"] == _int(row["prefill_num_workers"])
                and r["d_workers"] == _int(row["decode_num_workers"])
                and r["d_tp"] == _int(row["decode_tp_size"]) * _int(row["decode_attention_dp_size"])]
    return [r for r in found if r["p_tp"] == _int(row["prefill_tp_size"]) and r["d_tp"] == _int(row["decode_tp_size"])
            and r["p_ep"] == _int(row["prefill_moe_ep_size"])]


def mtp_open(found: list[dict[str, Any]]) -> bool:
    """Whether the recipes a row matched leave its MTP open: MTP and plain twins of one layout, or an MTP
    recipe whose name gives no draft count."""
    drafts = {r["mtp"] for r in found}
    return len(drafts) > 1 or None in drafts


def twin_drafts(found: list[dict[str, Any]]) -> int | None:
    """The draft count of the MTP twin when the recipes matched are a layout's plain recipe and MTP ones
    of one draft count (`..._mtp0` / `_mtp3`: 3), else None."""
    drafts = {r["mtp"] for r in found}
    return max(drafts) if len(drafts) == 2 and 0 in drafts and None not in drafts else None


def _found(row: dict[str, str]) -> list[dict[str, Any]]:
    """The recipes a disagg row matched (its own counts' where it gives them); Unsupported where they do
    not determine its workers."""
    if workers_given(row):
        return _matching_recipes(row, given=True)
    found = _matching_recipes(row, given=False)
    if not found:
        raise Unsupported("disagg worker counts not determined: no InferenceMAX recipe matches the row")
    layouts = {tuple(r[k] for k in ("p_workers", "p_tp", "p_ep", "p_dp_attn", "d_workers", "d_tp", "d_ep",
                                    "d_dp_attn")) for r in found}
    if len(layouts) > 1:
        raise Unsupported("disagg worker counts not determined: InferenceMAX recipes with different "
                          "worker counts / parallelism match the row")
    return found


def disagg_source(row: dict[str, str], mtp_source: str | None = None) -> str:
    """How a disagg row's deployment was decided: `given` or `recipe`, with `, MTP unknown` where the
    recipes leave MTP open and `, MTP by TPOT level` where `mtp_source` (`disagg_mtp_sources`) decided it
    (or Unsupported with the reason it is not determined)."""
    found = _found(row)
    base = "given" if workers_given(row) else "recipe"
    if not found or not mtp_open(found):
        return base
    decided = mtp_source in ("MTP", "no MTP") and twin_drafts(found) is not None
    return f"{base}, MTP by TPOT level" if decided else f"{base}, MTP unknown"


def disagg_mtp_sources(rows: list[dict[str, str]]) -> dict[str, str]:
    """row id -> "MTP" or "no MTP" for the disagg rows whose recipes are a layout's MTP and plain twins
    and whose configuration was measured at two TPOT levels (docstring, disagg MTP levels), from every
    row given (the whole file: a row's twin may not be sampled); other rows are absent."""
    levels: dict[tuple[Any, ...], list[tuple[float, str]]] = defaultdict(list)
    for r in rows:
        if r["mode"] != "disagg":
            continue
        try:
            found = _found(r)
        except Unsupported:
            continue
        if twin_drafts(found) is None:
            continue
        key = (r["system"], r["backend"], r["precision"], r["isl"], r["osl"], concurrency(r),
               tuple(sorted(rec["recipe"] for rec in found)))
        levels[key].append((float(r["silicon_tpot_ms"]), r["id"]))
    out: dict[str, str] = {}
    for members in levels.values():
        boundary = two_levels([tpot for tpot, _ in members])
        if boundary is not None:
            out.update((rid, "MTP" if tpot < boundary else "no MTP") for tpot, rid in members)
    return out


def decode_batch(recipe: dict[str, Any]) -> int | None:
    """The decode servers' max_batch_size (per attention-DP rank) of a TensorRT-LLM recipe, from its
    name (`..._dep8_batch64_...`); None where the name does not say (the SGLang recipes)."""
    m = re.search(r"_batch(\d+)_", recipe["recipe"])
    return int(m.group(1)) if m else None


def given_pool(row: dict[str, str], role: str, found: list[dict[str, Any]]) -> dict[str, int]:
    """One pool's deployment keys of a disagg row that gives its worker counts (docstring, disagg):
    its own columns, except a pool written as attention DP with MoE TP over the DP ranks (moe_ep 1,
    moe_tp = attention DP): on every such h100_sxm / b200_sxm row the InferenceMAX entries that match
    it run that pool with ep = tp (DEP), so the column is the other pool's EP; the entries' layout
    is taken when they agree, else the row is not simulated."""
    prefix = role + "_"
    dp, mtp, mep = (_int(row[prefix + k]) for k in ("attention_dp_size", "moe_tp_size", "moe_ep_size"))
    if not (dp > 1 and mep <= 1 and mtp == dp * _int(row[prefix + "tp_size"])):
        return parallel(row, prefix)
    r = role[0]
    layouts = {(rec[r + "_tp"], rec[r + "_ep"], rec[r + "_dp_attn"]) for rec in found}
    if len(layouts) != 1:
        raise Unsupported(f"{role} pool written as attention DP{dp} with MoE TP{mtp} (moe_ep 1), and no single "
                          "InferenceMAX entry gives its EP")
    tp, ep, dp_attn = layouts.pop()
    return recipe_parallel(tp, ep, bool(dp_attn))


def disagg_deployment(row: dict[str, str], mtp_source: str | None = None) -> tuple[str, int]:
    """(disagg spec, MTP draft tokens) of a disagg row (docstring, disagg); `mtp_source` "MTP" (from
    `disagg_mtp_sources`) gives a row whose recipes are MTP twins its MTP twin's draft count."""
    found = _found(row)
    if workers_given(row):
        pools = {role: given_pool(row, role, found) for role in ROLES}
        counts = {role: _int(row[role + "_num_workers"]) for role in ROLES}
        mtp = found[0]["mtp"] or 0 if len(found) == 1 else 0
        caps = {decode_batch(rec) for rec in found}  # the MTP twins of a layout share their batch cap
        if len(caps) == 1 and (cap := caps.pop()):
            pools["decode"]["bs"] = cap
    else:
        rec = found[0]
        pools = {role: recipe_parallel(rec[role[0] + "_tp"], rec[role[0] + "_ep"], bool(rec[role[0] + "_dp_attn"]))
                 for role in ROLES}
        counts = {role: rec[role[0] + "_workers"] for role in ROLES}
        mtp = 0 if mtp_open(found) else rec["mtp"]
        if decode_batch(rec):
            pools["decode"]["bs"] = decode_batch(rec)
    if mtp_source == "MTP" and (drafts := twin_drafts(found)):
        mtp = drafts
    exchange: dict[str, str] = {}
    if row["backend"] == "sglang":
        for role in ROLES:
            pools[role].update(sglang_pool_flags(found, role, pools[role].get("dp", 1)))
            if sglang_pool_exchange(found, role) == "a2a" and pools[role].get("dp", 1) > 1:
                exchange[role] = "a2a"  # "allgather" is SGLang's default already
    spec = "; ".join(f"{role}: {counts[role]}x " + " ".join([*(f"{k.replace('_', '')}{v}" for k, v in pools[role].items()),
                                                              *([exchange[role]] if role in exchange else [])])
                     for role in ROLES)
    return spec, mtp
