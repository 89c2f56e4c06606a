"""The tensor-parallel role table: which modules are row-parallel, per model family.

Owns `tp_roles(model_type) -> TPRoles`. The source is the family's own `base_model_tp_plan`
in transformers (`{"layers.*.self_attn.o_proj": "rowwise", ...}`), overlaid with `ENGINE_PLAN`:
the roles serving engines (vLLM, SGLang) use where transformers has none or differs — MLA
attention (HF does not shard it; engines split its heads, o_proj row-parallel) and linear
attention's out_proj (HF gathers, engines reduce). The vocabulary-parallel embedding and the
column-parallel lm_head with gathered logits are the same for every family.

Norms over channels TP splits (`SHARDED_NORMS`: q / k norms spanning all heads) get the whole row's
statistic by a collective of their own (`passes/shard_norms.py`).

Only the roles that need a collective matter downstream: a row-parallel module produces partial
sums, reduced once at the output of the decoder sub-block holding it
(`passes/insert_tp_collectives.py`), or earlier where a `replicated` module (whole on every rank)
reads them. Column-parallel shapes come from the per-rank spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.spec import ModelSpec

ENGINE_PLAN: dict[str, str] = {
    "layers.*.self_attn.o_proj": "rowwise",  # every attention kind, MLA included
    "layers.*.self_attn.o_b_proj": "rowwise",  # DeepSeek-V4's grouped output projection (o_a per rank's groups)
    "layers.*.linear_attn.out_proj": "rowwise",
    "layers.*.mlp.down_proj": "rowwise",
    "layers.*.mlp.experts": "moe_tp_experts",
    "layers.*.mlp.shared_experts.down_proj": "rowwise",
    "layers.*.mlp.shared_expert.down_proj": "rowwise",
    # Nemotron-H: one mixer per block (Mamba-2 out_proj, attention o_proj, MLP down_proj, MoE experts)
    "layers.*.mixer.out_proj": "rowwise",
    "layers.*.mixer.o_proj": "rowwise",
    "layers.*.mixer.down_proj": "rowwise",
    "layers.*.mixer.experts": "moe_tp_experts",
    "layers.*.mixer.shared_experts.down_proj": "rowwise",
    # LatentMoE (Nemotron 3 Super): the latent down / up projections around the routed experts are whole
    # on every rank (vLLM `ReplicatedLinear`), so the experts' partial sums are reduced before the up one
    "layers.*.mixer.fc1_latent_proj": "replicated",
    "layers.*.mixer.fc2_latent_proj": "replicated",
    # Granite 4.0 hybrids: the Mamba mixer and the shared MLP beside the MoE block
    "layers.*.mamba.out_proj": "rowwise",
    # Jamba's Mamba-1 mixer (vLLM `MambaMixer`): x_proj is row-parallel (its time step, B and C reduced before
    # the norms Jamba applies to them, which are whole on every rank), dt_proj column-parallel
    "layers.*.mamba.x_proj": "rowwise",
    "layers.*.mamba.dt_layernorm": "replicated",
    "layers.*.mamba.b_layernorm": "replicated",
    "layers.*.mamba.c_layernorm": "replicated",
    "layers.*.feed_forward.down_proj": "rowwise",
    "layers.*.feed_forward.experts": "moe_tp_experts",
    "layers.*.shared_mlp.output_linear": "rowwise",
}
# Norms over channels that TP splits (a q / k RMSNorm spanning all heads, not one head): how the engine gets
# the whole row's statistic (ops/collectives.py `sharded_rms_norm`). MiniMax-M2: vLLM's and SGLang's
# `MiniMaxText01RMSNormTP` all-reduce each token's local mean of squares ("stats"); OLMo 2 / 3 and FlexOlmo:
# vLLM's `_apply_qk_norm` all-gathers q and k, normalizes them whole and keeps the rank's share ("gather";
# transformers' own plan gathers them too: `colwise_gather_output`). OLMoE's would gather too, but its
# transformers module cannot be built per rank (deployment/config.py TP_UNSUPPORTED).
QK_NORMS = ("layers.*.self_attn.q_norm", "layers.*.self_attn.k_norm")
SHARDED_NORMS: dict[str, str] = {"minimax_m2": "stats", "olmo2": "gather", "olmo3": "gather", "flex_olmo": "gather"}
# Mamba-2 mixers whose gated output norm spans one group of the whole inner width (n_groups 1: Granite 4.0
# hybrids, Bamba): vLLM's `Mixer2RMSNormGated` at tp > 1 all-reduces each token's local sum of squares;
# with n_groups a multiple of tp each rank's groups are whole and normalize alone (Nemotron-H). The norm is
# one `gated_rms_norm` emitted in the mixer (models/mamba2.py), so the pattern names the mixer.
MAMBA_MIXERS = ("layers.*.mamba", "layers.*.mixer")
# plan values whose module output is a partial sum over the TP group
PARTIAL_SUM_ROLES = ("rowwise", "rowwise_split_input", "local_rowwise", "moe_tp_experts")
EMBEDDING = "embed_tokens"  # vocab-parallel: each rank looks up its rows, the sum is all-reduced
LM_HEAD = "lm_head"  # column-parallel over the vocabulary: logits all-gathered


@dataclass(frozen=True)
class TPRoles:
    row_parallel: tuple[str, ...]  # module patterns relative to the base model ("layers.*.mlp.down_proj")
    replicated: tuple[str, ...] = ()  # module patterns whole on every rank that may read a partial sum
    sharded_norms: tuple[tuple[str, str, str], ...] = ()  # (module pattern, op, "stats" | "gather"): SHARDED_NORMS
    embedding: str = EMBEDDING
    lm_head: str = LM_HEAD


def hf_tp_plan(model_type: str) -> dict[str, str]:
    """The family's `base_model_tp_plan` ({} when transformers has none), through the disk cache:
    importing transformers to read it costs more than a warm analysis (tensor_cast/cache/)."""
    from ..cache.store import side_value

    return dict(side_value("tp_plan", model_type, lambda: _read_hf_tp_plan(model_type)))


def _read_hf_tp_plan(model_type: str) -> dict[str, str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    try:
        config_class = CONFIG_MAPPING[model_type]
    except KeyError:
        return {}
    return dict(getattr(config_class, "base_model_tp_plan", None) or {})


def tp_roles(model_type: str) -> TPRoles:
    plan = {**hf_tp_plan(model_type), **ENGINE_PLAN}
    rows = tuple(sorted(k for k, v in plan.items() if v in PARTIAL_SUM_ROLES))
    replicated = tuple(sorted(k for k, v in plan.items() if v == "replicated"))
    method = SHARDED_NORMS.get(model_type)
    norms = tuple((key, "rms_norm", method) for key in QK_NORMS) if method else ()
    return TPRoles(row_parallel=rows, replicated=replicated, sharded_norms=norms)


def sharded_norms(spec: ModelSpec, roles: TPRoles) -> tuple[tuple[str, str, str], ...]:
    """Every norm over TP-split channels in this model: the family's q / k norms (its `roles`, from
    SHARDED_NORMS) and, where a Mamba-2 layer has one group of B / C (n_groups 1), its mixers' gated output
    norm (MAMBA_MIXERS)."""
    single_group = any(layer.attention.mamba is not None and layer.attention.mamba.version == 2
                       and layer.attention.mamba.n_groups == 1 for layer in spec.layers)
    mixers = tuple((key, "gated_rms_norm", "stats") for key in MAMBA_MIXERS) if single_group else ()
    return roles.sharded_norms + mixers
