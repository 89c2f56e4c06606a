"""The MLA module tables' reading (benchmarks/aic_mla_tables.py `mla_cases`): which rows are kept, what
each row's shape means (prefill prompt vs decode cache), that the costed module is DeepSeek-V3's
projections + attention with the named dimensions, and that the H100 tables' unfused RMSNorms are
costed as the 8-kernel chain they ran. Synthetic rows written here; no measured table is read."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest
from benchmark_modules import benchmarks

COLUMNS = ("framework", "version", "device", "op_name", "kernel_source", "model", "architecture", "mla_dtype",
           "kv_cache_dtype", "gemm_type", "num_heads", "batch_size", "isl", "tp_size", "step", "latency")
HIDDEN, Q_LORA, KV_LORA, NOPE, ROPE, V = 7168, 1536, 512, 128, 64, 128  # DeepSeek-V3 config.json


@pytest.fixture(scope="module")
def tables():
    (aic_tables,) = benchmarks("aic_tables")
    return aic_tables


def write(folder: Path, name: str, rows: list[dict[str, str]]) -> None:
    with gzip.open(folder / f"{name}.csv.gz", "wt", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c, "vLLM" if c == "framework" else "x") for c in COLUMNS})  # vLLM's tables


def row(heads: int, batch: int, isl: int, step: int, ms: float, gemm: str = "bfloat16", kv: str = "bfloat16",
        device: str = "NVIDIA B200"):
    return {"device": device, "kernel_source": "FLASHMLA", "mla_dtype": "bfloat16", "kv_cache_dtype": kv, "gemm_type": gemm,
            "num_heads": str(heads), "batch_size": str(batch), "isl": str(isl), "tp_size": "1", "step": str(step),
            "latency": str(ms)}


def test_mla_rows_read_as_module_cases(tables, tmp_path):
    write(tmp_path, "mla_context_module_perf", [row(128, 2, 1024, 0, 1.5), row(16, 1, 64, 0, 0.2, gemm="fp8_block")])
    write(tmp_path, "mla_generation_module_perf", [row(8, 64, 1, 4096, 0.3, kv="fp8")])
    cases = tables.mla_cases(tmp_path)
    assert len(cases) == 2  # the fp8_block-projection row is left out
    prefill, decode = sorted(cases, key=lambda c: c.row.params["step"])
    assert prefill.cls == "mla prefill" and decode.cls == "mla decode fp8 KV"
    assert prefill.stage == decode.stage == "mla"
    assert prefill.row.median_us == pytest.approx(1500.0) and decode.group == "heads8"

    def projection_flops(tokens: int, heads: int) -> float:
        return 2.0 * tokens * (HIDDEN * (Q_LORA + KV_LORA + ROPE) + Q_LORA * heads * (NOPE + ROPE) + heads * V * HIDDEN)

    for case, tokens, heads in ((prefill, 2 * 1024, 128), (decode, 64, 8)):
        linears = [o for o in case.ops if o.kind == "gemm"]
        assert len(linears) == 3  # fused q_a + kv_a, q_b, o_proj
        assert sum(float(o.counts.flops["bf16"]) for o in linears) == pytest.approx(projection_flops(tokens, heads))
    attention = [o for o in decode.ops if "mla_attention" in str(o.call.op)]
    assert len(attention) == 1
    # decode: one new token over isl + step cached tokens; the latent (KV_LORA + ROPE per token) is
    # read at 1 byte per value from the fp8 cache, at least once per sequence
    assert float(attention[0].counts.bytes_read) >= 64 * 4096 * (KV_LORA + ROPE)


def test_mla_prefill_costs_more_with_a_longer_prompt(tables, tmp_path):
    write(tmp_path, "mla_context_module_perf", [row(128, 1, 512, 0, 1.0), row(128, 1, 4096, 0, 1.0)])
    short, long = sorted(tables.mla_cases(tmp_path), key=lambda c: c.row.params["isl"])
    attn = [next(o for o in c.ops if "mla_attention" in str(o.call.op)) for c in (short, long)]
    # causal attention FLOPs grow with the square of the prompt: 8x the tokens, > 8x the FLOPs
    assert float(attn[1].counts.flops["bf16"]) > 8 * float(attn[0].counts.flops["bf16"])


def test_h100_tables_ran_the_unfused_rmsnorm_chain(tables, tmp_path):
    tokens = 64
    write(tmp_path, "mla_generation_module_perf", [row(8, tokens, 1, 4096, 0.3, device="NVIDIA H100 80GB HBM3"),
                                                   row(8, tokens, 1, 4096, 0.3)])
    h100, other = sorted(tables.mla_cases(tmp_path), key=lambda c: len(c.ops), reverse=True)
    norms = [o for o in other.ops if o.kind == "norm"]
    assert len(norms) == 2 and len(other.ops) == 6  # 3 linears, 2 fused norms, attention
    assert len(h100.ops) == 3 + 2 * 8 + 1  # each norm: to fp32, pow, mean, add eps, rsqrt, mul, to bf16, x weight
    upcasts = [o for o in h100.ops if "_to_copy" in str(o.call.op)]
    # the fp32 upcast writes 4 bytes and the downcast 2 per element of both latents (1536 + 512 wide)
    written = sum(float(o.counts.bytes_written) for o in upcasts)
    assert written == pytest.approx(tokens * (Q_LORA + KV_LORA) * (4 + 2))
