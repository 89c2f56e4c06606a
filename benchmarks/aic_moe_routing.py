"""How AIConfigurator's MoE harness routed the tokens of a `moe_perf` row: rows per expert on the timed rank.

The harness's two routings (collector/helper.py, facts only): `balanced_logits` (`balanced_counts`, and under a
model's group-limited top-k, `group_limited_counts`) and its power-law generator (`power_law_counts`, one seeded
draw); `routed_rows` picks by the row's `distribution`. `replayed_experts` counts the distinct experts whose
weights a row's CUDA-graph replays touch (what stays in L2), `zipf_skew_for` the `moe_skew` a user would give
for the same hottest-expert share. Pure functions of the row's shape; `aic_tables.moe_cases` costs with them.
"""

from __future__ import annotations

from typing import Any


def balanced_counts(tokens: int, experts: int, top_k: int) -> Any:
    """Rows per expert of AIConfigurator's `balanced_logits` (collector/helper.py): token i picks
    experts (i + j·stride) mod E, j < k, stride = ceil(E / k); with fewer tokens than the stride,
    (floor(i·stride / T) + j·stride) mod E (exact, no randomness)."""
    import numpy as np

    stride = -(-experts // top_k)
    i = np.arange(tokens)[:, None]
    j = np.arange(top_k)[None, :]
    if tokens >= stride:
        picks = (i + j * stride) % experts
    else:
        picks = np.floor(i * stride / tokens + j * stride).astype(np.int64) % experts
    return np.bincount(picks.ravel(), minlength=experts)


def power_law_counts(tokens: int, experts: int, top_k: int, ep: int, alpha: float, seed: int) -> Any:
    """Rows per expert of one draw of AIConfigurator's power-law generator (collector/helper.py
    `_generate_power_law_distribution`, facts only): E iid samples of a power law x^-alpha on [1,
    0.8 T] (on [0.01, 2] when T·k <= E), scaled to T·k rows and rounded (the remainder given to the
    largest / taken from the smallest, ties in random order), then the EP rank of largest load
    swapped to rank 0."""
    import numpy as np

    rng = np.random.default_rng(seed)
    low, high = (1.0, tokens * 0.8) if tokens * top_k > experts else (0.01, 2.0)
    u = rng.random(experts)
    a = 1 - alpha
    x = ((high ** a - low ** a) * u + low ** a) ** (1 / a)
    counts = np.round(x / x.sum() * tokens * top_k).astype(np.int64)
    delta = tokens * top_k - int(counts.sum())
    order = np.lexsort((rng.random(experts), -counts))  # largest first, ties in random order (torch.argsort's are unordered)
    for n in range(abs(delta)):
        if delta > 0:
            counts[order[n % experts]] += 1
        else:
            e = order[-(n % experts) - 1]
            counts[e if counts[e] > 0 else int(np.argmax(counts))] -= 1
    groups = counts.reshape(ep, experts // ep)
    top = int(np.argmax(groups.sum(axis=1)))
    groups[[0, top]] = groups[[top, 0]]
    return groups.reshape(-1)


# Expert configurations whose model routes group-limited (DeepSeek-V3's `n_group` 8, `topk_group` 4:
# a token picks its k experts only inside the 4 groups of E / 8 experts with the best top-2 scores),
# as the harness runs them: (H, I, k, E) -> (groups, groups kept). The tables show it in the balanced
# rows: DeepSeek-V3's layer (H 7,168, I 2,048, E 256) takes 832 us at 32 tokens on B200 (block fp8),
# which would stream all 256 experts at 13.6 TB/s (B200's HBM: 8 TB/s), and 0.53-0.62x the time of
# the same experts at H 6,144 from 8 to 64 tokens; costed with `group_limited_counts` its balanced
# rows up to 128 tokens come within -7 to +15% on B200 block fp8 and NVFP4 and on H100 block fp8 (was
# +36 to +125%). Kimi-K2 (E 384) and the E 256, k 6 configuration route plainly (n_group 1): costed
# group-limited they come out 20-50% fast.
GROUP_LIMITED_MOE = {(7168, 2048, 8, 256): (8, 4)}


def group_limited_counts(tokens: int, experts: int, top_k: int, groups: int, kept: int) -> Any:
    """Rows per expert of AIConfigurator's balanced logits (`balanced_counts`) under group-limited
    top-k routing. The logits are softmax(one-hot of the token's k balanced experts): every picked
    expert scores the same, every other one the same lower value. A group scores the sum of its top
    two; with stride E / k = E / groups every group holds one of the token's experts, so all groups
    tie and the `kept` lowest-indexed win; the token keeps its experts there and fills the k -
    `kept` other picks with the lowest-indexed remaining experts of those groups (ties broken by
    index, as the tables show: those few experts take every token's extra picks)."""
    import numpy as np

    per = experts // groups
    stride = -(-experts // top_k)
    counts = np.zeros(experts, dtype=np.int64)
    for i in range(tokens):
        if tokens >= stride:
            picks = [(i + j * stride) % experts for j in range(top_k)]
        else:
            picks = [int(i * stride / tokens + j * stride) % experts for j in range(top_k)]
        score = [0] * groups
        for e in picks:
            score[e // per] = min(2, score[e // per] + 1)
        chosen_groups = sorted(sorted(range(groups), key=lambda g: (-score[g], g))[:kept])
        chosen = [e for e in picks if e // per in chosen_groups][:top_k]
        taken = set(chosen)
        for g in chosen_groups:
            for e in range(g * per, (g + 1) * per):
                if len(chosen) == top_k:
                    break
                if e not in taken:
                    chosen.append(e)
                    taken.add(e)
        counts[chosen] += 1
    return counts


def routed_rows(distribution: str, tokens: int, experts: int, top_k: int, ep: int, seed: int,
                groups: tuple[int, int] | None = None) -> list[int]:
    """Rows per expert on the timed rank (its E / ep experts) for a table row's routing; an
    expert's rows are capped at the tokens (a token picks an expert once). `groups`: (groups, kept)
    of a group-limited model (`GROUP_LIMITED_MOE`), applied to the balanced rows."""
    if distribution == "balanced" and groups:
        counts = group_limited_counts(tokens, experts, top_k, *groups)
    elif distribution == "balanced":
        counts = balanced_counts(tokens, experts, top_k)
    elif distribution.startswith("power_law_"):
        counts = power_law_counts(tokens, experts, top_k, ep, float(distribution.removeprefix("power_law_")), seed)
    else:
        raise ValueError(f"unknown MoE routing distribution {distribution!r}; known: balanced, power_law_<alpha>")
    return [min(int(c), tokens) for c in counts[: experts // ep]]


# Routings one power-law row's CUDA graph cycles through (AIConfigurator collector/vllm/collect_moe.py:
# `num_iter = 5` power-law draws captured in one graph, its latency divided by 5; a balanced row
# replays its one routing).
POWER_LAW_DRAWS = 5


def replayed_experts(distribution: str, tokens: int, experts: int, top_k: int, ep: int, seed: int,
                     groups: tuple[int, int] | None = None) -> int:
    """Distinct experts of the timed rank whose weights the harness's replays touch. It replays the
    same weights back to back (`benchmark_with_power`: warm-up, then timed CUDA-graph replays, no L2
    flush), so what fits in L2 is read from it (`moe_tiles.l2_resident_share`). A balanced row: its
    hit experts. A power-law row cycles through `POWER_LAW_DRAWS` draws: with T·k <= E the
    generator's scaled loads all round to 0 rows and its remainder loop hands the T·k rows out
    round-robin over the ranks to the lowest-indexed experts (collector/helper.py
    `_generate_power_law_distribution`), the same experts every draw; above, every draw hits its own
    random experts: the union of the seeded draws `seed`, `seed + 1`, ... (the first is the one the
    row is costed with)."""
    draws = POWER_LAW_DRAWS if distribution.startswith("power_law_") and tokens * top_k > experts else 1
    hit: set[int] = set()
    for j in range(draws):
        rows = routed_rows(distribution, tokens, experts, top_k, ep, seed + j, groups)
        hit.update(e for e, r in enumerate(rows) if r)
    return len(hit)


def zipf_skew_for(distribution: str, tokens: int, experts: int, top_k: int) -> float:
    """The `moe_skew` (Zipf exponent of expert popularity, `CostKnobs.moe_skew`) whose hottest expert
    takes the same expected share of the rows as in AIConfigurator's routing `distribution`
    (0 for balanced). The generator's expert loads are iid power-law draws on [low, high]
    (`power_law_counts`), so its hottest expert is the top order statistic of E draws, expected at
    the quantile 1 - 1/(2E); Zipf(s) gives expert 1 the inclusion probability q_1(s) (capped at 1:
    a token picks an expert once). Solved for s by bisection. The two shapes differ below the top
    (a power law's loads fall off exponentially with rank, Zipf's as a power): see README."""
    from tensor_cast.backends.formulas.moe import inclusion_probabilities

    if distribution == "balanced":
        return 0.0
    alpha = float(distribution.removeprefix("power_law_"))
    low, high = (1.0, tokens * 0.8) if tokens * top_k > experts else (0.01, 2.0)
    a = 1 - alpha

    def quantile(u: float) -> float:
        return ((high ** a - low ** a) * u + low ** a) ** (1 / a)

    grid = 2000
    mean = sum(quantile((j + 0.5) / grid) for j in range(grid)) / grid
    share = min(1.0, quantile(1 - 0.5 / experts) / (experts * mean) * top_k)  # q_1: the hottest's per-token rate
    lo, hi = 0.0, 8.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if inclusion_probabilities(experts, top_k, round(mid, 6))[0] < share:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 3)
