"""Nemotron-H (`nemotron_h`): Mamba-2 mixers, NoPE attention and ungated MoE, one mixer per block.

- the swapped Mamba-2 mixer computes what transformers' own mixer computes (CPU, random weights,
  its torch chunked scan);
- the `mamba2_scan` cost rule from named dimensions (decode: the recurrence; prefill: the chunked
  scan's tensor-core products);
- Nemotron-3-Nano-30B-A3B (published config): parameters by hand from the named dimensions (card:
  31.6B total, about 3.2B active, 3.6B with embeddings), one mixer op per block on the pattern's
  blocks, every block's norm fused with the previous residual add, the state + KV cache by hand,
  TP splitting the Mamba heads and groups;
- Nemotron-3-Super-120B-A12B (published config, LatentMoE): parameters by hand (= the release's
  safetensors headers less its MTP block), the router scoring the hidden states and the experts the
  1024-wide latent rows, the latent projections whole on every TP rank with the experts' partial
  sums reduced in the latent width, attention-DP + EP dispatching latent rows;
- Nemotron-3-Super's MTP block (`*E`: an attention block, then a LatentMoE block, behind enorm / hnorm /
  eh_proj): its weights by hand (= the release's safetensors headers' MTP tensors), one attention and one
  MoE op per draft pass, their TP partial sums reduced like the stack's, the draft layer's KV cache;
- refusals: tp not dividing the B / C groups, a config without its block list, MTP blocks of a type
  vLLM's drafter does not build.

Dimensions (config.json): hidden 2688, 52 blocks `MEMEM*EMEMEM*...`: 23 Mamba-2 (64 heads x 64, state
128, 8 groups, conv 4, chunk 128, state cached in float32), 23 MoE (128 experts of 1856, top-6, one
shared of 3712, squared ReLU, no gate), 6 attention (32 heads, 2 KV heads, 128 wide); vocab 131072,
untied.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from swap_reference import assert_swap_keeps_output, randomize
from transformers import NemotronHConfig
from transformers.models.nemotron_h.modeling_nemotron_h import NemotronHMamba2Mixer, NemotronHRMSNormGated

import tensor_cast
from tensor_cast.models import registry

tc = torch.ops.tensor_cast
MODEL = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"
PATTERN = "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME"
HIDDEN, VOCAB = 2688, 131072
H, P, N, G, K, CHUNK = 64, 64, 128, 8, 4, 128  # Mamba heads, head width, state, groups, conv, chunk
HEADS, KV_HEADS, HEAD_DIM = 32, 2, 128
EXPERTS, TOP_K, EXPERT, SHARED = 128, 6, 1856, 3712
MAMBA, MOE, ATTENTION = (sum(c == kind for c in PATTERN) for kind in "ME*")
INNER = H * P
CHANNELS = INNER + 2 * G * N  # conv channels: x, B, C


def tiny_config(**overrides):
    fields = dict(hidden_size=32, layers_block_type=["linear_attention"], mamba_num_heads=4, mamba_head_dim=8,
                  ssm_state_size=6, n_groups=2, conv_kernel=4, chunk_size=4, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, intermediate_size=16, moe_intermediate_size=8,
                  moe_shared_expert_intermediate_size=16, n_routed_experts=4, num_experts_per_tok=2)
    fields.update(overrides)
    return NemotronHConfig(**fields)


def test_mamba_ops_opcheck():
    torch.manual_seed(0)
    channels = 4 * 8 + 2 * 2 * 6
    scan = (torch.randn(2, 5, channels), torch.randn(2, 5, 4), torch.randn(channels, 1, 4), torch.randn(channels),
            torch.randn(4), torch.randn(4), torch.randn(4), 4, 8, 2, 6, 4, 1e-3, torch.float32, 1)
    torch.library.opcheck(tc.mamba2_scan.default, scan)
    torch.library.opcheck(tc.gated_rms_norm.default, (torch.randn(3, 32), torch.randn(3, 32), torch.randn(32), 16, 1e-5))


def test_swapped_mamba2_mixer_computes_what_transformers_computes():
    """in_proj + one scan op + the grouped gated norm + out_proj against transformers' forward (its torch
    chunked SSD over chunks of 4, a partial last chunk included), on CPU with random weights."""
    torch.manual_seed(0)
    module = NemotronHMamba2Mixer(tiny_config(), 0).eval()
    randomize(module)
    with torch.no_grad():
        module.A_log.copy_(torch.rand(4))  # a decaying state (A = -exp(A_log) < 0), as trained models have
        module.dt_bias[:2] = -10.0  # softplus below time_step_min on two heads: the dt floor applies
    assert_swap_keeps_output(module, torch.randn(2, 9, 32))


def test_gated_rms_norm_is_transformers_grouped_gated_norm():
    torch.manual_seed(0)
    norm = NemotronHRMSNormGated(32, group_size=8, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(32))
    x, gate = torch.randn(3, 5, 32), torch.randn(3, 5, 32)
    torch.testing.assert_close(tc.gated_rms_norm(x, gate, norm.weight, 8, 1e-5), norm(x, gate))


# ---- the mamba2_scan cost rule ---------------------------------------------------------------------
def scan_cost(batch, seq, decode_query_len=1):
    meta = dict(device="meta", dtype=torch.bfloat16)
    args = (torch.empty(batch, seq, CHANNELS, **meta), torch.empty(batch, seq, H, **meta),
            torch.empty(CHANNELS, 1, K, **meta), torch.empty(CHANNELS, **meta), torch.empty(H, **meta),
            torch.empty(H, **meta), torch.empty(H, **meta), H, P, G, N, CHUNK, 1e-3, torch.float32, decode_query_len)
    return tensor_cast.op_cost(tc.mamba2_scan.default, *args, device="h100").counts


def conv_flops(tokens):
    return tokens * CHANNELS * (2 * K + 1 + 4)  # depthwise conv, bias, SiLU


def test_mamba_decode_is_the_recurrence():
    batch = 8
    counts = scan_cost(batch, 1)
    per_token_head = 6 * P * N + 2 * P + 10  # decay, dt·x·B, add, C contraction; D skip; discretization
    assert counts.flops == {"vector": conv_flops(batch) + batch * H * per_token_head}
    state, conv_state = batch * H * P * N * 4, batch * (K - 1) * CHANNELS * 2  # float32 state, bf16 conv state
    assert counts.state_bytes == state + conv_state
    assert counts.bytes_written >= state + conv_state + batch * INNER * 2  # and y
    assert counts.bytes_read >= state + conv_state + batch * (CHANNELS + H) * 2  # and x / B / C, dt


def test_mamba_prefill_is_the_chunked_scan():
    batch, seq = 2, 300  # 3 chunks per sequence, the last partial
    counts = scan_cost(batch, seq)
    chunks = batch * 3
    per_chunk = (G * 2 * CHUNK**2 * N  # C·Bᵀ per group
                 + H * (2 * CHUNK * N * P  # each chunk's end state
                        + 2 * CHUNK**2 * P + 2 * CHUNK * N * P))  # the output: intra-chunk, then from the start state
    assert counts.flops["bf16"] == chunks * per_chunk
    assert counts.state_bytes == batch * (H * P * N * 4 + (K - 1) * CHANNELS * 2)
    assert scan_cost(4, 3, decode_query_len=3).flops.keys() == {"vector"}  # MTP drafts stay recurrent


# ---- Nemotron-3-Nano-30B-A3B -----------------------------------------------------------------------
def mamba_block_parameters():
    in_proj = HIDDEN * (INNER + CHANNELS + H)  # z, x / B / C, dt
    return in_proj + CHANNELS * K + CHANNELS + 3 * H + INNER + INNER * HIDDEN  # conv (+ bias), A_log / D / dt_bias, norm, out


def attention_block_parameters():
    return HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM * HIDDEN


def expert():
    return 2 * HIDDEN * EXPERT  # up and down, no gate


def moe_block_parameters():
    return EXPERTS * HIDDEN + EXPERTS * expert() + 2 * HIDDEN * SHARED  # router (its correction bias is a buffer)


def test_nemotron_3_nano_parameters_by_hand():
    report = tensor_cast.analyze(MODEL, device="h200", batch_size=1, query_len=1)
    total = (MAMBA * mamba_block_parameters() + ATTENTION * attention_block_parameters() + MOE * moe_block_parameters()
             + len(PATTERN) * HIDDEN + HIDDEN + 2 * VOCAB * HIDDEN)  # a norm per block, the final norm
    assert report.num_parameters == total == 31_577_937_344
    assert report.num_parameters == pytest.approx(registry.lookup(MODEL).public_parameters, rel=0.01)  # card: 31.6B
    # less the routed experts a token does not use and the input embedding (a lookup); card: ~3.2B
    active = total - MOE * (EXPERTS - TOP_K) * expert() - VOCAB * HIDDEN
    assert report.active_parameters == active
    assert active == pytest.approx(3.2e9, rel=0.02)
    assert active + VOCAB * HIDDEN == pytest.approx(3.6e9, rel=0.02)  # card: 3.6B with embeddings


@pytest.fixture(scope="module")
def nano_point():
    report = tensor_cast.analyze(MODEL, device="h200", symbolic=True)
    return report.evaluate(batch_size=4, query_len=1, context_len=8192)


def test_one_mixer_op_per_block_on_the_pattern(nano_point):
    ops = nano_point.ops
    blocks = {kind: {i for i, c in enumerate(PATTERN) if c == kind} for kind in "ME*"}
    assert {r.layer for r in ops if r.op == "tensor_cast.mamba2_scan"} == blocks["M"]
    assert {r.layer for r in ops if r.op == "tensor_cast.gated_rms_norm"} == blocks["M"]
    assert {r.layer for r in ops if r.op == "tensor_cast.moe"} == blocks["E"]
    assert {r.layer for r in ops if r.op == "tensor_cast.attention"} == blocks["*"]
    moe = next(r for r in ops if r.op == "tensor_cast.moe")
    assert moe.flops == pytest.approx(4 * (2 * HIDDEN * EXPERTS + TOP_K * 2 * expert() + 2 * 2 * HIDDEN * SHARED),
                                      rel=0.01)  # router, k ungated experts, the shared expert: GEMM FLOPs dominate
    # each block's norm is fused with the residual add before it; only the first block's stands alone
    names = [r.op for r in ops]
    assert names.count("tensor_cast.add_rms_norm") == len(PATTERN)  # 51 between blocks + the final norm
    assert names.count("tensor_cast.rms_norm") == 1


def test_state_and_kv_cache_by_hand(nano_point):
    batch, context = 4, 8192
    state = MAMBA * batch * (H * P * N * 4 + (K - 1) * CHANNELS * 2)  # float32 SSM state, bf16 conv state
    kv = ATTENTION * batch * (context + 1) * KV_HEADS * 2 * HEAD_DIM * 2
    assert nano_point.memory.kv_cache_bytes == state + kv


def test_tp_splits_mamba_heads_and_groups():
    kwargs = dict(device="h200", batch_size=2, query_len=1, context_len=4096)
    state = MAMBA * 2 * (H * P * N * 4 + (K - 1) * CHANNELS * 2)
    kv = ATTENTION * 2 * 4097 * KV_HEADS * 2 * HEAD_DIM * 2
    assert tensor_cast.analyze(MODEL, tp=2, **kwargs).memory.kv_cache_bytes == state // 2 + kv // 2
    # tp 8: heads and groups / 8; the 2 KV heads are replicated (one per rank)
    assert tensor_cast.analyze(MODEL, tp=8, **kwargs).memory.kv_cache_bytes == state // 8 + kv // 2


def run_cli(args, capsys):
    from tensor_cast.cli import main

    code = main(args)
    return code, capsys.readouterr().err.strip().splitlines()


def test_tp_must_divide_the_groups(capsys):
    code, err = run_cli(["analyze", MODEL, "--device", "h200", "--tp", "16"], capsys)
    assert code == 2 and len(err) == 1 and "n_groups=8" in err[0] and "1, 2, 4, 8" in err[0]


@pytest.mark.parametrize("change, expected", [
    ({"hybrid_override_pattern": None}, "hybrid_override_pattern"),
    ({"mamba_num_heads": None}, "mamba_num_heads"),
])
def test_unsupported_or_malformed_configs_are_refused(tmp_path, capsys, change, expected):
    config = {k: v for k, v in {**registry.lookup(MODEL).config, **change}.items() if v is not None}
    (tmp_path / "config.json").write_text(json.dumps(config))
    code, err = run_cli(["analyze", str(tmp_path), "--device", "h200"], capsys)
    assert code == 2 and len(err) == 1 and expected in err[0]


@pytest.mark.parametrize("blocks, expected", [
    (["linear_attention", "moe"], "include ['linear_attention'], which vLLM's Nemotron-H drafter does not build; "
                                  "accepted: full_attention, moe"),
    (["full_attention", "mlp"], "include ['mlp'], which vLLM's Nemotron-H drafter does not build"),
])
def test_mtp_blocks_vllm_does_not_build_are_refused(tmp_path, capsys, blocks, expected):
    """A checkpoint whose MTP block holds a block type vLLM's drafter does not build loads; drafting
    with it is refused in one line naming the accepted types."""
    config = {**registry.lookup(MODEL).config, "num_nextn_predict_layers": 1, "mtp_layers_block_type": blocks}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert run_cli(["analyze", str(tmp_path), "--device", "h200", "--top", "1"], capsys)[0] == 0
    code, err = run_cli(["analyze", str(tmp_path), "--device", "h200", "--mtp", "1"], capsys)
    assert code == 2 and len(err) == 1 and expected in err[0] and "mtp must be 0" in err[0]


# ---- Nemotron-3-Super-120B-A12B: LatentMoE -------------------------------------------------------------
SUPER = "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16"
SUPER_PATTERN = "MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEM*EMEMEMEME"
S_HIDDEN, S_HEADS_M, S_EXPERTS, S_TOP_K, S_EXPERT, S_LATENT, S_SHARED = 4096, 128, 512, 22, 2688, 1024, 5376
S_MAMBA, S_MOE, S_ATTENTION = (SUPER_PATTERN.count(kind) for kind in "ME*")  # 40, 40, 8
S_INNER, S_CHANNELS = S_HEADS_M * P, S_HEADS_M * P + 2 * G * N


@pytest.fixture(scope="module")
def super_tp4():
    return tensor_cast.analyze(SUPER, device="h200", tp=4, batch_size=8, query_len=1, context_len=1024)


def test_nemotron_3_super_parameters_by_hand(super_tp4):
    mamba = (S_HIDDEN * (S_INNER + S_CHANNELS + S_HEADS_M) + S_CHANNELS * K + S_CHANNELS + 3 * S_HEADS_M + S_INNER
             + S_INNER * S_HIDDEN)
    attention = S_HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM * S_HIDDEN
    expert = 2 * S_LATENT * S_EXPERT  # up and down, in the latent width
    moe = S_EXPERTS * S_HIDDEN + S_EXPERTS * expert + 2 * S_HIDDEN * S_LATENT + 2 * S_HIDDEN * S_SHARED
    total = (S_MAMBA * mamba + S_ATTENTION * attention + S_MOE * moe + len(SUPER_PATTERN) * S_HIDDEN + S_HIDDEN
             + 2 * VOCAB * S_HIDDEN)
    assert super_tp4.num_parameters == total == 120_668_687_360
    # the release's safetensors headers: 123,611,012,096 BF16 weights, 2,942,324,736 of them the MTP block
    assert total == 123_611_012_096 - 2_942_324_736
    active = total - S_MOE * (S_EXPERTS - S_TOP_K) * expert - VOCAB * S_HIDDEN
    assert super_tp4.active_parameters == active
    assert active + VOCAB * S_HIDDEN == pytest.approx(12.8e9, rel=0.01)  # card: 12B active (A12B)


@pytest.fixture(scope="module")
def super_tp4_mtp():
    return tensor_cast.analyze(SUPER, device="h200", tp=4, batch_size=8, query_len=1, context_len=1024, mtp=1)


def test_nemotron_3_super_mtp_block(super_tp4, super_tp4_mtp):
    """The shipped MTP block: enorm, hnorm, eh_proj (2 x 4096 -> 4096), an attention block and a LatentMoE
    block like the stack's (each with its norm), the final norm; vLLM's `nemotron_h_mtp.py`."""
    attention = S_HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM * S_HIDDEN
    moe = (S_EXPERTS * S_HIDDEN + S_EXPERTS * 2 * S_LATENT * S_EXPERT + 2 * S_HIDDEN * S_LATENT
           + 2 * S_HIDDEN * S_SHARED)
    block = 3 * S_HIDDEN + 2 * S_HIDDEN * S_HIDDEN + (attention + S_HIDDEN) + (moe + S_HIDDEN)
    # the release's safetensors headers: 2,942,324,736 BF16 weights under mtp.* (its router's float32
    # correction bias aside: a buffer here)
    assert block == 2_942_324_736
    assert super_tp4_mtp.num_parameters - super_tp4.num_parameters == block
    ops = super_tp4_mtp.ops
    drafts = [r for r in ops if r.module.startswith("mtp.0.")]
    assert [r.module for r in drafts if r.op == "tensor_cast.attention"] == ["mtp.0.layers.0.mixer"]
    assert [r.module for r in drafts if r.op == "tensor_cast.moe"] == ["mtp.0.layers.1.mixer.experts"]
    assert not any(r.op in ("tensor_cast.mamba2_scan", "tensor_cast.gated_rms_norm") for r in drafts)
    # TP4: the draft's attention output, its experts' latent output and its shared expert's output are
    # reduced as in the stack's blocks; the draft's token embedding is one more vocab-parallel lookup
    reduces = [r for r in ops if r.op == "tensor_cast.all_reduce"]
    assert len(reduces) == (1 + S_MAMBA + S_ATTENTION + 2 * S_MOE) + 1 + 3
    shapes = [[int(d) for d in r.shapes.split(")")[0].strip("(").split(",")] for r in reduces
              if r.module.startswith("mtp.")]
    assert sorted(s[-1] for s in shapes) == [S_LATENT, S_HIDDEN, S_HIDDEN]
    assert all(math.prod(s[:-1]) == 8 * 2 for s in shapes)  # 8 sequences x (1 + 1 draft) tokens
    # the draft's attention layer holds a KV cache like the stack's 8: 2 KV heads over TP4, one per rank
    kv = (S_ATTENTION + 1) * 8 * (1024 + 2) * 1 * 2 * HEAD_DIM * 2
    assert super_tp4_mtp.kv_cache_by_kind["full"] == kv


def test_latent_moe_scores_hidden_states_and_runs_experts_in_the_latent_width(super_tp4):
    ops, tokens, tp = super_tp4.ops, 8, 4
    moe = [r for r in ops if r.op == "tensor_cast.moe"]
    assert {r.layer for r in moe} == {i for i, c in enumerate(SUPER_PATTERN) if c == "E"}
    # router GEMM over the 4096-wide hidden states, k ungated experts of 2688 / tp columns over 1024-wide rows
    gemm = 2 * tokens * S_EXPERTS * S_HIDDEN + tokens * S_TOP_K * 2 * (2 * S_LATENT * S_EXPERT // tp)
    assert moe[0].flops == pytest.approx(gemm, rel=0.01)
    assert moe[0].shapes.startswith(f"({tokens}, {S_LATENT})")
    # the shared expert's squared ReLU is one kernel per MoE block (vLLM's compiled ReLUSquaredActivation)
    acts = [r for r in ops if r.op == "tensor_cast.activation"]
    assert len(acts) == S_MOE and all(r.module.endswith("shared_experts.act_fn") for r in acts)
    assert acts[0].bytes == 2 * tokens * S_SHARED // tp * 2  # read and written once, bf16, the rank's columns
    assert not any(r.op in ("relu", "square", "Tensor.relu", "Tensor.square") for r in ops)
    # the latent projections are whole on every rank (vLLM ReplicatedLinear), one of each per MoE block
    for name in ("fc1_latent_proj", "fc2_latent_proj"):
        rows = [r for r in ops if r.module.endswith(name)]
        assert len(rows) == S_MOE and rows[0].flops == 2 * tokens * S_HIDDEN * S_LATENT


def test_latent_partial_sums_are_reduced_in_the_latent_width(super_tp4):
    reduces = [r for r in super_tp4.ops if r.op == "tensor_cast.all_reduce"]
    # the embedding, every Mamba and attention block, and two per MoE block: the experts' latent output before
    # the up projection and the shared expert's output (vLLM's MoE runner), none on the block's output
    assert len(reduces) == 1 + S_MAMBA + S_ATTENTION + 2 * S_MOE
    latent = [r for r in reduces if r.shapes == f"(8, {S_LATENT})"]
    assert len(latent) == S_MOE and {r.layer for r in latent} == {r.layer for r in super_tp4.ops
                                                                  if r.op == "tensor_cast.moe"}


def test_attention_dp_dispatches_latent_rows():
    report = tensor_cast.analyze(SUPER, device="h200", dp=4, ep=4, moe_exchange="all_to_all", batch_size=8,
                                 query_len=1, context_len=1024)
    dispatch = [r for r in report.ops if r.op == "tensor_cast.ep_dispatch"]
    assert len(dispatch) == S_MOE
    per_replica = 8 // 4
    rows = 4 * per_replica * S_TOP_K // 4  # the most loaded rank's (token, expert) rows, uniform routing
    assert dispatch[0].bytes == 2 * rows * S_LATENT * 2  # read and written once, bf16, 1024 wide (not 4096)


# ---- serving: each running sequence holds its recurrent state ----------------------------------------
STATE_PER_SEQUENCE = MAMBA * (H * P * N * 4 + (K - 1) * CHANNELS * 2)  # 46.8 MiB per GPU at TP1
KV_PER_TOKEN = ATTENTION * KV_HEADS * 2 * HEAD_DIM * 2  # 6 KiB


def test_kv_pool_sets_the_state_of_each_sequence_apart():
    from tensor_cast.backends.device import load_device
    from tensor_cast.serving.api import kv_pool, step_cost
    from tensor_cast.serving.engines import engine_profile

    device, engine = load_device("h100-sxm"), engine_profile("vllm")
    sym, _ = step_cost(MODEL, device=device)
    pool = kv_pool(sym, device, engine, 1280, 0.9)
    assert pool.bytes_per_token == pytest.approx(KV_PER_TOKEN)
    assert pool.state_bytes_per_sequence == pytest.approx(STATE_PER_SEQUENCE)
    # the budget holds the state and 1,280 tokens of as many sequences as fit, at most max_num_seqs
    sequences = min(engine.max_num_seqs, int(pool.budget_bytes // (STATE_PER_SEQUENCE + 1280 * KV_PER_TOKEN)))
    assert pool.max_sequences == sequences
    assert pool.blocks == int((pool.budget_bytes - sequences * STATE_PER_SEQUENCE) // (KV_PER_TOKEN * 16))
    assert pool.state_limited == (sequences < engine.max_num_seqs)
    # a closed loop of 8 clients never runs more than 8 sequences: their state is all that is set apart
    eight = kv_pool(sym, device, engine, 1280, 0.9, running=8)
    assert (eight.max_sequences, eight.state_limited) == (8, False)
    assert eight.blocks == int((eight.budget_bytes - 8 * STATE_PER_SEQUENCE) // (KV_PER_TOKEN * 16))
    # no fixed state: max_num_seqs decides (a sliding window's KV stops growing, which is no state either)
    for model in ("Qwen/Qwen3-0.6B", "google/gemma-3-4b-it"):
        other, _ = step_cost(model, device=device, num_hidden_layers=6)
        assert kv_pool(other, device, engine, 4096, 0.9).max_sequences is None, model


def test_serving_runs_no_more_sequences_than_their_states_fit():
    """256 clients on one H100: the ~13 GiB the 59 GiB of weights leave hold the state of fewer than 256
    sequences, so the rest queue until the first ones finish."""
    report = tensor_cast.simulate(MODEL, device="h100-sxm", concurrency=256, num_requests=256, isl=1024, osl=64,
                                  record_steps=True)
    cap = next(int(n.split("capped at ")[1].rstrip(")")) for n in report.notes if "capped at" in n)
    assert 150 < cap < 256
    assert max(step.running for step in report.step_records) == cap
    # the 256 - cap queued requests get their first token only after earlier ones finished (vLLM's
    # max_num_seqs of 1,024 would have run all 256 at once)
    first_done = min(r.e2e_s for r in report.requests)
    assert sum(r.ttft_s > first_done for r in report.requests) == 256 - cap


def test_disaggregated_transfer_moves_the_state_with_the_prompt_kv():
    """A prefill worker hands the decode worker the prompt's KV and the recurrent + conv state its prefill
    ended with: 1,024 tokens x 6 KiB and 46.8 MiB of state, over the intra-node link."""
    from tensor_cast.backends.device import load_device
    from tensor_cast.serving.disagg import kv_transfer_s

    report = tensor_cast.simulate(MODEL, device="h100-sxm", concurrency=1, num_requests=1, isl=1024, osl=4,
                                  disagg="prefill: 1x tp1; decode: 1x tp1")
    profile = load_device("h100-sxm")
    expected = kv_transfer_s(1024 * KV_PER_TOKEN + STATE_PER_SEQUENCE, profile, 2)
    assert report.requests[0].kv_transfer_s == pytest.approx(expected)
    assert expected > 5 * kv_transfer_s(1024 * KV_PER_TOKEN, profile, 2)  # the state dominates the transfer
