"""DeepSeek-V4 (`deepseek_v4`): compressed attention, hyper-connections, FP4 experts.

- the swapped modules (attention of each layer type, hyper-connection, decoder layer) compute what
  transformers' own modules compute (CPU, random weights, no cache);
- the cost rules from named dimensions and a brute-force count of (query, entry) pairs;
- DeepSeek-V4-Flash (published config.json): parameters by hand from the named dimensions (card
  284B total, 13B activated), one op per layer of each kind on the right layers, the window /
  compressed / indexer caches by hand, the checkpoint's mixed FP8 / FP4 / bf16 weights at TP8 by
  hand, the shipped MTP block (parameters by hand, its ops, its window, its TP reductions), and the
  deployments it refuses.

Flash dimensions (config.json): hidden 4096, 43 layers, vocab 129280; 64 heads of 512 (K = V, one
head), rope 64, q_lora 1024, 8 output groups of 1024, window 128; compress_ratios 0, 0, then 4 / 128
alternating (21 CSA layers 2, 4, ..., 42; 20 HCA layers 3, 5, ..., 41); indexer 64 x 128, top-512;
256 experts of 2048, top-6, one shared; 4 hyper-connection streams.
"""

from __future__ import annotations

import json

import pytest
import torch
from swap_reference import randomize
from transformers import DeepseekV4Config
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as hf

import tensor_cast
from tensor_cast.backends.formulas.compressed_attention import entry_pairs
from tensor_cast.capture.attention_interface import CONTEXT_KWARG
from tensor_cast.cli import main
from tensor_cast.models import registry
from tensor_cast.models.module_swaps import apply_module_swaps

tc = torch.ops.tensor_cast
MODEL = "deepseek-ai/DeepSeek-V4-Flash"
HIDDEN, LAYERS, VOCAB = 4096, 43, 129280
HEADS, D, ROPE, Q_LORA, GROUPS, O_LORA, WINDOW = 64, 512, 64, 1024, 8, 1024, 128
INDEX_HEADS, INDEX_D, TOPK = 64, 128, 512
EXPERTS, EXPERT, TOP_K, STREAMS = 256, 2048, 6, 4
CSA_LAYERS = list(range(2, 43, 2))  # ratio 4
FLASH_PARAMETERS = 284_332_230_231  # by hand in test_flash_parameters_by_hand
HCA_LAYERS = list(range(3, 42, 2))  # ratio 128


# ---- the swapped modules against transformers' own ---------------------------------------------
def tiny_config() -> DeepseekV4Config:
    config = DeepseekV4Config(
        hidden_size=64, num_hidden_layers=3, num_attention_heads=4, head_dim=32, qk_rope_head_dim=8, q_lora_rank=16,
        o_groups=2, o_lora_rank=8, sliding_window=5, index_n_heads=2, index_head_dim=8, index_topk=3,
        compress_rates={"compressed_sparse_attention": 2, "heavily_compressed_attention": 4},
        layer_types=["sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"],
        mlp_layer_types=["moe"] * 3, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
        vocab_size=100, hc_sinkhorn_iters=5)
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"
    return config


def inputs(config: DeepseekV4Config, seq: int, width: tuple[int, ...]) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
    """Random input, both rotary tables, positions, and the sliding-window causal mask transformers builds."""
    hidden = torch.randn(2, seq, *width)
    positions = torch.arange(seq).unsqueeze(0).expand(2, -1)
    rotary = hf.DeepseekV4RotaryEmbedding(config)
    tables = {kind: rotary(hidden, positions, layer_type=kind) for kind in ("main", "compress")}
    i = torch.arange(seq)
    near = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < config.sliding_window)
    mask = torch.zeros(seq, seq).masked_fill(~near, float("-inf")).expand(2, 1, seq, seq)
    return hidden, tables, positions, mask


@pytest.mark.parametrize("layer", [0, 1, 2], ids=["sliding", "csa", "hca"])
def test_swapped_attention_computes_what_transformers_computes(layer):
    """Sliding window, CSA (compressor + indexer top-k over overlapping windows) and HCA against
    transformers' forward without a cache (compressed entries of the step's own closed windows)."""
    torch.manual_seed(layer)
    config = tiny_config()
    module = hf.DeepseekV4Attention(config, layer).eval()
    randomize(module)
    hidden, tables, positions, mask = inputs(config, 11, (64,))
    with torch.no_grad():
        expected, _ = module(hidden, tables, positions, mask)
        assert apply_module_swaps(torch.nn.ModuleList([module])) == 1
        got, _ = module(hidden, tables, positions, None, **{CONTEXT_KWARG: torch.empty(0)})
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_swapped_decoder_layer_with_hyper_connections_computes_what_transformers_computes():
    torch.manual_seed(0)
    config = tiny_config()
    layer = hf.DeepseekV4DecoderLayer(config, 1).eval()
    randomize(layer)
    streams, tables, positions, mask = inputs(config, 9, (STREAMS, 64))
    with torch.no_grad():
        expected = layer(streams, position_embeddings=tables, position_ids=positions, attention_mask=mask)
        swapped = apply_module_swaps(torch.nn.ModuleList([layer]))
        got = layer(streams, position_embeddings=tables, position_ids=positions, **{CONTEXT_KWARG: torch.empty(0)})
    assert swapped == 4  # the layer, its two hyper-connections, its attention
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_unweighted_norms_epsilon_is_read_under_either_name():
    # transformers 5.23-5.24 name DeepseekV4UnweightedRMSNorm's epsilon `eps`, 5.25 `variance_epsilon`
    from types import SimpleNamespace

    from tensor_cast.models.deepseek_v4 import norm_eps

    assert norm_eps(SimpleNamespace(eps=1e-6)) == 1e-6
    assert norm_eps(SimpleNamespace(variance_epsilon=2e-6)) == 2e-6
    assert norm_eps(hf.DeepseekV4UnweightedRMSNorm(3e-6)) == 3e-6  # the installed release's own module
    with pytest.raises(AttributeError, match="neither variance_epsilon nor eps"):
        norm_eps(SimpleNamespace(epsilon=1e-6))


def test_ops_opcheck():
    torch.manual_seed(0)
    streams = torch.randn(2, 5, 4, 8)
    hc = (streams, torch.randn(24, 32), torch.randn(24), torch.randn(3), 1e-6, 1e-6, 3)
    torch.library.opcheck(tc.hc_pre.default, hc)
    post, comb, _ = tc.hc_pre(*hc)
    torch.library.opcheck(tc.hc_post.default, (torch.randn(2, 5, 8), post, comb, streams))
    kv, gate = torch.randn(2, 9, 16), torch.randn(2, 9, 16)
    torch.library.opcheck(tc.kv_compress.default, (kv, gate, torch.randn(4, 16), torch.randn(8), 1e-6, 4, True, 0))
    entries = tc.kv_compress(kv, gate, torch.randn(4, 16), torch.randn(8), 1e-6, 4, True, 0)
    q, weights = torch.randn(2, 9, 2, 8), torch.randn(2, 9, 2)
    torch.library.opcheck(tc.compressed_indexer.default, (q, entries, weights, 0, 3, 4))
    picks = tc.compressed_indexer(q, entries, weights, 0, 3, 4)
    assert (picks[:, :3] == -1).all() and (picks[:, 3:7, 1:] == -1).all()  # entry 0 closes at position 3, 1 at 7
    qa, kva = torch.randn(2, 2, 9, 8), torch.randn(2, 1, 9, 8)
    torch.library.opcheck(tc.compressed_attention.default, (qa, kva, entries.unsqueeze(1), picks, torch.randn(2), 0, 4,
                                                            4, 0.3, 1))
    torch.library.opcheck(tc.grouped_linear.default, (torch.randn(3, 2, 8), torch.randn(10, 8), "none"))


# ---- cost rules ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio, cap", [(4, 0), (4, 3), (128, 0), (2, 5)])
def test_entry_pairs_match_a_brute_force_sum(ratio, cap):
    for context, seq in [(0, 1), (0, 37), (5, 1), (11, 9), (300, 700), (1023, 1), (4097, 64)]:
        brute = sum(min(cap, (p + 1) // ratio) if cap else (p + 1) // ratio for p in range(context, context + seq))
        assert entry_pairs(seq, context, ratio, cap) == brute, (context, seq)


def meta(*shape, dtype=torch.bfloat16):
    return torch.empty(*shape, device="meta", dtype=dtype)


def test_csa_decode_attention_by_hand():
    """One decode token per sequence after 10,000 cached: 128 window keys and the indexer's 512 entries,
    K = V of 512: 2 x 512 (q·k) + 2 x 512 (p·v) FLOPs per (head, key)."""
    batch, context = 8, 10_000
    args = (meta(batch, HEADS, 1, D), meta(batch, 1, 1, D), meta(batch, 1, 1, D), meta(batch, 1, TOPK, dtype=torch.int32),
            meta(HEADS, dtype=torch.float32), context, WINDOW, 4, 0.04, 1)
    counts = tensor_cast.op_cost(tc.compressed_attention.default, *args, device="h100").counts
    pairs = batch * HEADS * (WINDOW + TOPK)
    assert counts.flops["bf16"] == 2 * pairs * (D + D)
    entries = (context + 1) // 4
    assert counts.state_bytes == batch * (WINDOW + entries) * D * 2
    picked = batch * TOPK * D * 2  # the entries the indexer picked, read once
    assert counts.bytes_read >= picked + batch * WINDOW * D * 2


def test_hca_attends_every_closed_entry():
    batch, context = 2, 8191
    args = (meta(batch, HEADS, 1, D), meta(batch, 1, 1, D), meta(batch, 1, 1, D), None, meta(HEADS, dtype=torch.float32),
            context, WINDOW, 128, 0.04, 1)
    counts = tensor_cast.op_cost(tc.compressed_attention.default, *args, device="h100").counts
    assert counts.flops["bf16"] == 2 * batch * HEADS * (WINDOW + 8192 // 128) * 2 * D


def test_compressor_writes_the_entries_the_step_closes():
    """12 cached tokens, 9 new, ratio 4: windows closing at tokens 16 and 20: 2 new entries per sequence,
    each pooled from its window's 4 rows (kv and gate, both CSA series: 2·D channels of 2 bytes each)."""
    batch, rows = 3, 2 * D * (2 + 2)  # bytes of one token's kv and gate rows
    args = (meta(batch, 9, 2 * D), meta(batch, 9, 2 * D), meta(4, 2 * D, dtype=torch.float32),
            meta(D, dtype=torch.float32), 1e-6, 4, True, 12)
    counts = tensor_cast.op_cost(tc.kv_compress.default, *args, device="h100").counts
    entries = batch * 2
    assert counts.bytes_written == entries * D * 2 + batch * 4 * rows  # entries; the open window's last rows
    projections, small = 2 * batch * 9 * 2 * D * 2, 4 * 2 * D * 4 + D * 4
    assert counts.bytes_read == projections + small + entries * 4 * rows
    assert counts.state_bytes == batch * 4 * rows
    assert counts.flops["vector"] == 6 * entries * 4 * 2 * D + 4 * entries * D


def test_decode_step_closing_no_window_pools_nothing():
    args = (meta(2, 1, D), meta(2, 1, D), meta(128, D, dtype=torch.float32), meta(D, dtype=torch.float32),
            1e-6, 128, False, 1000)  # token 1001 of 128-token windows: none closes
    counts = tensor_cast.op_cost(tc.kv_compress.default, *args, device="h100").counts
    assert counts.flops.get("vector", 0) == 0
    assert counts.bytes_written == 2 * 1 * D * (2 + 2)  # the new row appended to the open window


# ---- DeepSeek-V4-Flash --------------------------------------------------------------------------
def attention_parameters() -> int:
    return (HIDDEN * Q_LORA + Q_LORA + Q_LORA * HEADS * D + HIDDEN * D + D
            + (HEADS * D // GROUPS) * GROUPS * O_LORA + GROUPS * O_LORA * HIDDEN + HEADS)


CSA_COMPRESSOR = (2 * HIDDEN * 2 * D + 4 * 2 * D + D  # kv / gate (two series), position bias, norm
                  + 2 * HIDDEN * 2 * INDEX_D + 4 * 2 * INDEX_D + INDEX_D  # the indexer's own compressor
                  + Q_LORA * INDEX_HEADS * INDEX_D + HIDDEN * INDEX_HEADS)  # indexer queries, head weights
HCA_COMPRESSOR = 2 * HIDDEN * D + 128 * D + D
EXPERT_PARAMS = 3 * HIDDEN * EXPERT
HC = 2 * ((2 + STREAMS) * STREAMS * STREAMS * HIDDEN + (2 + STREAMS) * STREAMS + 3)  # attention's and MLP's


def test_flash_parameters_by_hand():
    report = tensor_cast.analyze(MODEL, device="h200", batch_size=1, query_len=1, quant="none")
    moe = EXPERTS * EXPERT_PARAMS + HIDDEN * EXPERTS + EXPERT_PARAMS  # routed, router, one shared
    per_layer = attention_parameters() + moe + 2 * HIDDEN + HC
    head = STREAMS * STREAMS * HIDDEN + STREAMS + 1  # the final hyper-connection collapse
    total = LAYERS * per_layer + 21 * CSA_COMPRESSOR + 20 * HCA_COMPRESSOR + 2 * VOCAB * HIDDEN + HIDDEN + head
    assert report.num_parameters == total == FLASH_PARAMETERS
    assert total == pytest.approx(registry.lookup(MODEL).public_parameters, rel=0.01)  # card: 284B
    active = total - LAYERS * (EXPERTS - TOP_K) * EXPERT_PARAMS - VOCAB * HIDDEN  # the input embedding is a lookup
    assert report.active_parameters == active
    assert active == pytest.approx(13e9, rel=0.05)  # card: 13B activated


@pytest.fixture(scope="module")
def flash_point():
    report = tensor_cast.analyze(MODEL, device="h200", symbolic=True, quant="none")
    return report.evaluate(batch_size=4, query_len=1, context_len=30_000)


def test_one_op_of_each_kind_on_the_published_layers(flash_point):
    layers = {}
    for row in flash_point.ops:
        layers.setdefault(row.op, set()).add(row.layer)
    assert layers["tensor_cast.compressed_attention"] == set(range(LAYERS))
    assert layers["tensor_cast.compressed_indexer"] == set(CSA_LAYERS)
    assert layers["tensor_cast.kv_compress"] == set(CSA_LAYERS) | set(HCA_LAYERS)
    ops = [row.op for row in flash_point.ops]
    assert ops.count("tensor_cast.kv_compress") == 2 * 21 + 20  # CSA: the attention's and the indexer's compressor
    assert ops.count("tensor_cast.hc_pre") == ops.count("tensor_cast.hc_post") == 2 * LAYERS
    assert ops.count("tensor_cast.moe") == LAYERS  # the three hash-routed layers fold as every MoE block
    assert not any(op in ("tensor_cast.attention", "tensor_cast.mla_attention", "bmm") for op in ops)


def test_window_compressed_and_index_caches_by_hand(flash_point):
    batch, cached = 4, 30_001
    window = batch * WINDOW * D * 2  # every layer: the last 128 tokens' K = V
    csa = batch * (cached // 4) * (D + INDEX_D) * 2 + batch * 4 * 2 * (2 * D + 2 * INDEX_D) * 2  # + open windows
    hca = batch * (cached // 128) * D * 2 + batch * 128 * 2 * D * 2
    assert flash_point.memory.kv_cache_bytes == LAYERS * window + 21 * csa + 20 * hca


def test_flash_checkpoint_weights_at_tp8_by_hand():
    """The released checkpoint's storage (safetensors dtypes): FP8 128x128 blocks (one fp32 scale per
    block) for the attention projections, the indexer's queries and the shared expert; FP4 routed
    experts (half a byte + one E8M0 byte per 32); bf16 compressors, indexer head weights, routers,
    embeddings and norms; float32 hyper-connection weights, sinks and position biases. TP8 splits q_b,
    o_a, o_b, the sinks, the vocabulary, every expert's width and the shared expert; the K = V
    projection, q_a, the compressors and the indexer are replicated."""
    report = tensor_cast.analyze(MODEL, device="h200", tp=8, batch_size=1, query_len=1)
    fp8, fp4, bf16, fp32 = 1 + 4 / (128 * 128), 0.5 + 1 / 32, 2, 4
    attention = (fp8 * (HIDDEN * Q_LORA + HIDDEN * D + (Q_LORA * HEADS * D + 2 * HEADS * D * O_LORA) / 8)
                 + bf16 * (Q_LORA + D) + fp32 * HEADS / 8)  # q_a / kv norms, this rank's sinks
    layer = (attention + fp4 * EXPERTS * EXPERT_PARAMS / 8 + fp8 * EXPERT_PARAMS / 8 + bf16 * HIDDEN * EXPERTS
             + bf16 * 2 * HIDDEN + fp32 * HC)  # routed / shared experts, router, norms, hyper-connections
    csa = (bf16 * (2 * HIDDEN * 2 * D + D + 2 * HIDDEN * 2 * INDEX_D + INDEX_D + HIDDEN * INDEX_HEADS)
           + fp8 * Q_LORA * INDEX_HEADS * INDEX_D + fp32 * 4 * 2 * (D + INDEX_D))
    hca = bf16 * (2 * HIDDEN * D + D) + fp32 * 128 * D
    model = 2 * bf16 * (VOCAB // 8) * HIDDEN + bf16 * HIDDEN + fp32 * (STREAMS * STREAMS * HIDDEN + STREAMS + 1)
    expected = LAYERS * layer + 21 * csa + 20 * hca + model
    assert report.memory.weights_bytes == pytest.approx(expected, rel=1e-9)
    assert "experts w4a8_mxfp4_mxfp8" in report.context.deployment.describe()


@pytest.mark.parametrize("args, fragment", [
    (["--tp", "16"], "tp=16 does not divide o_groups=8"),
])
def test_refused_in_one_line(args, fragment, capsys):
    assert main(["analyze", MODEL, "--device", "h200", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]


@pytest.fixture(scope="module")
def drafted():
    return tensor_cast.analyze(MODEL, device="h200", batch_size=8, query_len=1, context_len=4096, mtp=1)


def test_mtp_block_by_hand(drafted):
    """The shipped MTP layer (compress_ratios' 44th entry, 0: a sliding-window layer without compressor,
    top-k routed) inside vLLM's V4 MTP block: enorm / hnorm, separate e_proj / h_proj over the 4 streams,
    the layer's two hyper-connections, its own hyper-connection head, the norm before the shared head."""
    attention = (HIDDEN * Q_LORA + Q_LORA + Q_LORA * HEADS * D + HIDDEN * D + D + HEADS  # q_a, norm, q_b, kv, norm, sinks
                 + HEADS * D * O_LORA + GROUPS * O_LORA * HIDDEN)  # grouped o_a, o_b
    layer = attention + HC + 2 * HIDDEN + (EXPERTS + 1) * 3 * HIDDEN * EXPERT + EXPERTS * HIDDEN
    block = 2 * HIDDEN * HIDDEN + 3 * HIDDEN + STREAMS * STREAMS * HIDDEN + STREAMS + 1 + layer  # e/h_proj, norms, head
    assert drafted.num_parameters - FLASH_PARAMETERS == block == 6_610_048_635
    draft = [r for r in drafted.ops if r.module.startswith("mtp.0.")]
    ops = [r.op for r in draft]
    assert ops.count("tensor_cast.compressed_attention") == 1 and ops.count("tensor_cast.moe") == 1
    assert "tensor_cast.kv_compress" not in ops and "tensor_cast.compressed_indexer" not in ops  # no compressor
    assert ops.count("tensor_cast.hc_pre") == 2 and ops.count("tensor_cast.hc_post") == 2
    h_proj = next(r for r in draft if r.module == "mtp.0.h_proj" and "linear" in r.op)
    assert h_proj.flops == pytest.approx(2 * 8 * 2 * STREAMS * HIDDEN * HIDDEN, rel=0.01)  # every stream, 1 + 1 tokens
    # the draft layer holds a window like the two sliding layers of the stack
    assert drafted.kv_cache_by_kind["swa(128)"] == 3 * 8 * WINDOW * D * 2


def test_mtp_block_under_tp8_reduces_its_sub_blocks():
    report = tensor_cast.analyze(MODEL, device="h200", tp=8, batch_size=8, query_len=1, context_len=4096, mtp=1)
    reduces = [r.module for r in report.ops if r.op == "tensor_cast.all_reduce"]
    assert sorted(m for m in reduces if m.startswith("mtp.")) == ["mtp.0.layers.0.mlp", "mtp.0.layers.0.self_attn"]
    assert len(reduces) == 1 + 2 * LAYERS + 1 + 2  # embedding, the stack, the draft's embedding lookup and layer


def test_mtp_needs_the_mtp_layers_attention_kind(tmp_path, capsys):
    config = dict(registry.lookup(MODEL).config)
    config["compress_ratios"] = config["compress_ratios"][:LAYERS]  # no entry for the MTP layer
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["analyze", str(tmp_path), "--device", "h200", "--mtp", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compress_ratios has no entry past num_hidden_layers" in err[0]


def test_two_shared_experts_are_refused(tmp_path, capsys):
    config = dict(registry.lookup(MODEL).config, n_shared_experts=2)
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["analyze", str(tmp_path), "--device", "h200"]) == 2
    assert "n_shared_experts=2" in capsys.readouterr().err


def test_serving_simulation_holds_the_window_and_the_compressed_entries():
    """A closed-loop run on DeepSeek-V4-Flash's first 4 layers (sliding, sliding, CSA, HCA) through the
    serving simulator: every request is served, nothing is preempted, both latencies are positive."""
    report = tensor_cast.simulate(MODEL, device="h200", tp=8, engine="vllm", concurrency=4, num_requests=8, isl=512,
                                  osl=8, num_hidden_layers=4)
    assert len(report.requests) == 8 and report.preemptions == 0
    assert report.mean_ttft_s > 0 and report.mean_tpot_s > 0
