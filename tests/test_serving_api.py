"""simulate() and `tensor-cast serve` end to end on a small model: outputs, determinism, bad input."""

from __future__ import annotations

import json

import pytest

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.errors import TensorCastError
from tensor_cast.serving.disagg import kv_transfer_s, parse_disagg

MODEL = "Qwen/Qwen3-0.6B"
SMALL = {"device": "h100-sxm", "num_hidden_layers": 2}


def test_simulate_reports_the_contract_fields():
    rep = tensor_cast.simulate(MODEL, concurrency=4, num_requests=12, isl=256, osl=32, **SMALL)
    assert len(rep.requests) == 12
    for name in ("mean_ttft_s", "mean_tpot_s", "p90_ttft_s", "p90_tpot_s", "output_tokens_per_s",
                 "output_tokens_per_s_per_gpu"):
        assert getattr(rep, name) > 0
    assert rep.output_tokens_per_s == pytest.approx(12 * 32 / rep.duration_s)
    assert rep.p90_ttft_s >= rep.ttft.p50
    # every request's E2E is its TTFT plus (osl - 1) TPOTs
    for r in rep.requests:
        assert r.e2e_s == pytest.approx(r.ttft_s + 31 * r.tpot_s)


def test_same_seed_same_bytes_other_seed_other_arrivals():
    def once(seed):
        return tensor_cast.simulate(MODEL, rate=50.0, num_requests=40, isl=128, osl=16, seed=seed,
                                    **SMALL).to_json(requests=True)

    assert once(7) == once(7)
    assert once(7) != once(8)


def test_disagg_spec_and_kv_transfer_time():
    pools = parse_disagg("prefill: 2x tp4; decode: 1x tp1 dp8 ep8")
    assert (pools["prefill"].workers, pools["prefill"].tp) == (2, 4)
    assert (pools["decode"].dp, pools["decode"].ep, pools["decode"].gpus_per_worker) == (8, 8, 8)
    profile = tensor_cast.load_device("h100-sxm")
    link = profile.interconnect
    nbytes = 64e6
    # inside one node: NVLink latency + bytes / per-GPU bandwidth (comm efficiency from the profile)
    eff = float(profile.efficiency.get("comm", 1.0))
    assert kv_transfer_s(nbytes, profile, 8) == pytest.approx(
        link.intra_node_latency_us * 1e-6 + nbytes / (link.intra_node_bandwidth_gbps * 1e9 * eff))
    assert kv_transfer_s(nbytes, profile, 16) > kv_transfer_s(nbytes, profile, 8)  # across nodes: the NIC


def test_disagg_pool_batch_cap_parses_and_bad_caps_are_named():
    pools = parse_disagg("prefill: 1x tp4; decode: 2x tp1 dp8 ep8 bs64")
    assert (pools["prefill"].max_num_seqs, pools["decode"].max_num_seqs) == (None, 64)
    mapped = parse_disagg({"prefill": {"workers": 1}, "decode": {"workers": 2, "tp": 8, "max_num_seqs": 32}})
    assert mapped["decode"].max_num_seqs == 32 and mapped["decode"].workers == 2
    with pytest.raises(TensorCastError, match="max_num_seqs must be an integer >= 1, got 0"):
        parse_disagg("prefill: 1x tp1; decode: 1x tp1 bs0")
    with pytest.raises(TensorCastError, match="at 'bs4'"):
        parse_disagg("prefill: 1x tp1; decode: 1x tp1 bs2 bs4")


def test_disagg_pool_step_budget_chunks_that_pools_prefills():
    # "tok512" is the prefill pool's step budget (SGLang's chunked_prefill_size): a 1,200-token prompt
    # runs as 512 + 512 + 176 there; a TensorRT-LLM pool (no chunking) refuses a budget below the prompt
    pools = parse_disagg("prefill: 1x tp1 tok512; decode: 1x tp1")
    assert (pools["prefill"].max_num_batched_tokens, pools["decode"].max_num_batched_tokens) == (512, None)
    rep = tensor_cast.simulate(MODEL, engine="sglang", concurrency=1, num_requests=1, isl=1200, osl=4,
                               disagg="prefill: 1x tp1 tok512; decode: 1x tp1", record_steps=True, **SMALL)
    chunks = [s.prefill_tokens for s in rep.step_records if s.worker.startswith("prefill")]
    assert chunks == [512, 512, 176] and "max_num_batched_tokens 512" in rep.deployment
    with pytest.raises(TensorCastError, match="exceeds the prefill pool's max_num_batched_tokens=512"):
        tensor_cast.simulate(MODEL, engine="trtllm", concurrency=1, num_requests=1, isl=1200, osl=4,
                             disagg="prefill: 1x tp1 tok512; decode: 1x tp1", **SMALL)


def test_disagg_decode_cap_of_one_serializes_the_decode_pool():
    # two clients, one decode worker that runs one request at a time: the second request's first
    # token comes only once the first request has finished (it waits, KV transferred, for the slot)
    dis = tensor_cast.simulate(MODEL, concurrency=2, num_requests=2, isl=256, osl=16,
                               disagg="prefill: 1x tp1; decode: 1x tp1 bs1", **SMALL)
    assert "max_num_seqs 1" in dis.deployment
    first, second = sorted(dis.requests, key=lambda r: r.ttft_s)
    assert second.ttft_s >= first.e2e_s
    free = tensor_cast.simulate(MODEL, concurrency=2, num_requests=2, isl=256, osl=16,
                                disagg="prefill: 1x tp1; decode: 1x tp1", **SMALL)
    assert max(r.ttft_s for r in free.requests) < first.e2e_s  # without the cap both decode together


def test_disagg_run_adds_transfer_to_ttft():
    agg = tensor_cast.simulate(MODEL, concurrency=1, num_requests=2, isl=512, osl=8, **SMALL)
    dis = tensor_cast.simulate(MODEL, concurrency=1, num_requests=2, isl=512, osl=8,
                               disagg="prefill: 1x tp1; decode: 1x tp1", **SMALL)
    assert dis.num_gpus == 2
    for a, d in zip(agg.requests, dis.requests):
        assert d.kv_transfer_s > 0
        assert d.ttft_s == pytest.approx(a.ttft_s + d.kv_transfer_s)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"concurrency": 0, "isl": 10, "osl": 10}, "concurrency must be an integer >= 1, got 0"),
    ({"rate": -1.0, "isl": 10, "osl": 10}, "rate must be .* > 0, got -1.0"),
    ({"concurrency": 2, "isl": 40000, "osl": 1000}, "exceeds .*context of 40960"),
    ({"concurrency": 2, "isl": 10, "osl": 10, "engine": "tgi"}, "unknown engine 'tgi'; accepted engines: sglang, trtllm, vllm"),
    ({"concurrency": 2, "isl": 10, "osl": 10, "disagg": "prefill: 2x tp4"}, "needs both a prefill and a decode pool"),
    ({"concurrency": 2, "isl": 10, "osl": 10, "disagg": "prefill: 2x tq4; decode: 1x tp1"}, "at 'tq4'"),
    ({"concurrency": 2, "isl": 30000, "osl": 10000, "memory_utilization": 0.006}, "KV cache"),
    ({"concurrency": 2, "rate": 1.0, "isl": 10, "osl": 10}, "exactly one of concurrency, rate, trace"),
    ({"concurrency": 2, "isl": 10, "osl": 10, "mtp_acceptance": 0.7}, "mtp_acceptance=0.7 needs MTP drafts"),
])
def test_bad_input_names_value_and_accepted(kwargs, match):
    with pytest.raises(TensorCastError, match=match):
        tensor_cast.simulate(MODEL, **SMALL, **kwargs)


def test_malformed_trace_line_is_named(tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"arrival_s": 0, "prompt_tokens": 64, "output_tokens": 8}\n{"arrival_s": 0.1, "prompt_tokens": 64}\n')
    with pytest.raises(TensorCastError, match=r"t.jsonl:2: unknown \[\] / missing \['output_tokens'\]"):
        tensor_cast.simulate(MODEL, trace=str(trace), **SMALL)
    trace.write_text('{"arrival_s": 0, "prompt_tokens": 64, "output_tokens": 8, "prefix_id": "a"}\n'
                     '{"arrival_s": 0.5, "prompt_tokens": 64, "output_tokens": 8, "prefix_id": "a"}\n')
    rep = tensor_cast.simulate(MODEL, trace=str(trace), **SMALL)
    # the second request finds the first one's prompt cached: whole 16-token blocks of the 63 reusable tokens
    assert [r.prefix_hit_tokens for r in rep.requests] == [0, 48]
    # the run's total, in the summary and the JSON: 48 of the 128 prompt tokens
    assert (rep.prefix_hit_tokens, rep.prompt_tokens) == (48, 128)
    assert "prefix cache: 48 of 128 prompt tokens hit (37.5%)" in rep.summary()
    assert json.loads(rep.to_json())["prefix_cache"] == {"hit_tokens": 48, "prompt_tokens": 128}
    assert "prefix cache" not in tensor_cast.simulate(MODEL, concurrency=2, num_requests=2, isl=64, osl=4,
                                                      **SMALL).summary()


def test_cli_serve_writes_outputs_and_rejects_bad_input(tmp_path, capsys):
    out, steps, reqs = tmp_path / "o.json", tmp_path / "steps.json", tmp_path / "r.jsonl"
    args = ["serve", MODEL, "--device", "h100-sxm", "--num-hidden-layers", "2", "--isl", "128", "--osl", "8"]
    assert main([*args, "--concurrency", "2", "--num-requests", "4", "--json", str(out),
                 "--trace-out", str(steps), "--requests-out", str(reqs)]) == 0
    data = json.loads(out.read_text())
    assert data["num_requests"] == 4 and len(data["requests"]) == 4
    assert len(reqs.read_text().splitlines()) == 4
    assert any(e.get("ph") == "X" for e in json.loads(steps.read_text())["traceEvents"])
    bad = tmp_path / "bad.json"
    assert main([*args, "--concurrency", "0", "--json", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("tensor-cast serve: error: argument --concurrency: 0 is below 1")
    assert not bad.exists()
    assert main([*args, "--concurrency", "2", "--disagg", "prefill 2x", "--json", str(bad)]) == 2
    assert not bad.exists()


def test_warmup_requests_leave_latency_stats_not_throughput():
    full = tensor_cast.simulate(MODEL, concurrency=4, num_requests=12, isl=256, osl=8, **SMALL)
    warm = tensor_cast.simulate(MODEL, concurrency=4, num_requests=12, isl=256, osl=8, warmup_requests=4, **SMALL)
    later = [r.ttft_s for r in full.requests if r.rid >= 4]
    assert warm.mean_ttft_s == pytest.approx(sum(later) / len(later))
    assert warm.output_tokens_per_s == pytest.approx(full.output_tokens_per_s)
    assert len(warm.requests) == 12


def test_mla_kv_pool_holds_one_latent_per_token_per_layer_on_every_tp_rank():
    from tensor_cast.api import load_model
    from tensor_cast.backends.device import load_device
    from tensor_cast.serving.api import kv_pool, step_cost
    from tensor_cast.serving.engines import engine_profile

    # DeepSeek-R1's MLA caches kv_lora_rank 512 + qk_rope_head_dim 64 = 576 values per token per
    # layer, the same on every TP rank (the latent is not split over heads); FP8 KV: 1 byte each
    spec, device = load_model("deepseek-ai/DeepSeek-R1", num_hidden_layers=2), load_device("h100-sxm")
    sym, _ = step_cost(spec, device=device, tp=8, kv_cache_dtype="fp8")
    pool = kv_pool(sym, device, engine_profile("vllm"), 1024, 0.9)
    assert pool.bytes_per_token == (512 + 64) * 2 * 1


def test_kernels_choose_the_profile_section_that_costs_the_steps():
    """One request alone: its TTFT is one prefill step, so moving the step costs from the `vllm`
    section to the `torch` one moves the TTFT by exactly the difference `analyze` gives for that
    prefill under the two sections (a second route: the plain report, not the batch-cost table)."""
    spec = tensor_cast.load_model(MODEL, num_hidden_layers=2)
    prefill = {engine: float(tensor_cast.analyze(spec, device="h100-sxm", engine=engine, batch_size=1,
                                                 query_len=256).total_time_s) for engine in ("vllm", "torch")}
    assert prefill["vllm"] != pytest.approx(prefill["torch"], rel=1e-3)  # the two sections differ here
    # the host overhead added, not overlapped: a two-layer prefill is shorter than it, and max() would hide
    # the kernels' difference (engines.py "Host overlap")
    added = {"engine_args": {"host_overlap": False}}
    own = tensor_cast.simulate(MODEL, concurrency=1, num_requests=1, isl=256, osl=4, **SMALL, **added)
    torch_kernels = tensor_cast.simulate(MODEL, concurrency=1, num_requests=1, isl=256, osl=4, kernels="torch",
                                         **SMALL, **added)
    assert torch_kernels.requests[0].ttft_s - own.requests[0].ttft_s == pytest.approx(
        prefill["torch"] - prefill["vllm"], rel=1e-6, abs=1e-9)
    assert any("'torch' kernel section" in note for note in torch_kernels.notes)
    assert not any("kernel section" in note for note in own.notes)
    with pytest.raises(TensorCastError, match="unknown kernels 'cutlass'; accepted: vllm, sglang, trtllm, torch"):
        tensor_cast.simulate(MODEL, concurrency=1, isl=16, osl=2, kernels="cutlass", **SMALL)


def test_trtllm_prefill_pool_runs_without_the_overlap_scheduler():
    # TensorRT-LLM's context servers run with disable_overlap_scheduler (engines.py, "Async scheduling").
    # Prefill pool, step budget of two 512-token prompts, no chunking: r0, r1, r2 arrive at 0, step 1
    # prefills r0 and r1 (P seconds), r2 waits; r3 arrives at 0.5 P. Synchronously step 2 [P, 2P] takes
    # r2 and r3; with the overlap scheduler step 2 was scheduled (r2 alone) while step 1 ran, so r3
    # waits for step 3 [2P, 3P].
    from tensor_cast.serving.workload import TraceEntry

    def prefill_steps(engine_args, r3_at):
        trace = [TraceEntry(0.0, 512, 4)] * 3 + [TraceEntry(r3_at, 512, 4)]
        rep = tensor_cast.simulate(MODEL, engine="trtllm", trace=trace, engine_args=engine_args,
                                   disagg="prefill: 1x tp1 tok1100; decode: 1x tp1", record_steps=True, **SMALL)
        return [s for s in rep.step_records if s.worker.startswith("prefill")]

    p = prefill_steps(None, 10.0)[0].duration_s  # step 1 (r0 + r1) alone: r3 arrives long after
    sync = prefill_steps(None, 0.5 * p)
    overlap = prefill_steps({"async_scheduling": True}, 0.5 * p)
    assert [s.prefill_tokens for s in sync] == [1024, 1024]
    assert [s.prefill_tokens for s in overlap] == [1024, 512, 512]
    assert overlap[2].start_s == pytest.approx(overlap[1].start_s + overlap[1].duration_s)


def test_the_step_costs_notes_reach_the_serving_report():
    """What the step costs say about the deployment reaches the serving report: the quantization as served
    (fp8 asked for on DeepSeek-V3's block-FP8 checkpoint runs its blocks), the engine's own fusion default
    worded as the engine's (the simulator passes it to the step costs as a value), a note both pools of a
    disagg deployment share said once, a pool's own prefixed with it."""
    ds = {"device": "h100-sxm", "num_hidden_layers": 2, "tp": 2}
    rep = tensor_cast.simulate("deepseek-ai/DeepSeek-V3", engine="trtllm", concurrency=2, num_requests=2, isl=64,
                               osl=4, quant="fp8", **ds)
    assert "weights fp8_block (checkpoint)" in rep.deployment
    served = [n for n in rep.notes if n.startswith("quant=fp8 on a checkpoint stored as fp8_block")]
    assert len(served) == 1
    assert "TensorRT-LLM fuses the TP all-reduce with the residual add and RMSNorm by default" in rep.notes
    assert not any("set by the user" in n for n in rep.notes)
    off = tensor_cast.simulate("deepseek-ai/DeepSeek-V3", engine="trtllm", concurrency=2, num_requests=2, isl=64,
                               osl=4, engine_args={"allreduce_fusion": False}, **ds)
    assert not any("fusion" in n for n in off.notes)
    split = tensor_cast.simulate("deepseek-ai/DeepSeek-V3", engine="trtllm", concurrency=2, num_requests=2, isl=64,
                                 osl=4, quant="fp8", disagg="prefill: 1x tp2; decode: 1x tp2", **ds)
    assert sum(n.startswith("quant=fp8 on a checkpoint") for n in split.notes) == 1
    assert any(n.startswith("prefill: trtllm's context servers schedule without the overlap") for n in split.notes)
    uneven = tensor_cast.simulate("deepseek-ai/DeepSeek-V3", engine="trtllm", concurrency=2, num_requests=2, isl=64,
                                  osl=4, disagg="prefill: 1x tp2; decode: 1x tp1", **ds)  # one TP group to fuse
    fusion = [n for n in uneven.notes if "all-reduce with the residual add" in n]
    assert fusion == ["prefill: TensorRT-LLM fuses the TP all-reduce with the residual add and RMSNorm by default"]
    # H100 has no FP4 tensor cores: NVFP4 GEMMs are costed at FP8, as analyze's summary says
    fp4 = tensor_cast.simulate(MODEL, concurrency=2, num_requests=2, isl=64, osl=4, quant="nvfp4", **SMALL)
    assert any(n.startswith("precision fallbacks on ") and n.endswith(": fp4->fp8") for n in fp4.notes)
    assert not any("precision fallbacks" in n for n in rep.notes)


def test_lock_step_waves_of_fixed_lengths_are_said():
    """All clients start together; with fixed lengths they also finish together, so every wave of follow-ups
    prefills at once: the report says so, and not when lengths are spread or arrivals are Poisson."""
    def waves(**kw):
        rep = tensor_cast.simulate(MODEL, num_requests=8, isl=64, osl=8, **kw, **SMALL)
        return any(n.startswith("fixed prompt and output lengths: the clients") for n in rep.notes)

    assert waves(concurrency=4)
    assert not waves(concurrency=4, range_ratio=0.1)
    assert not waves(concurrency=1)
    assert not waves(rate=10.0)


def test_an_overloaded_open_loop_is_said():
    """Poisson arrivals faster than the deployment serves: at the last arrival most requests still wait for
    their first token, and the report says the latencies grow with the run; a light rate and a closed loop
    (which cannot outpace its server) say nothing. `backlog` counted by hand on made-up records."""
    from tensor_cast.serving.report import RequestRecord, backlog

    def overloaded(**kw):
        rep = tensor_cast.simulate(MODEL, num_requests=200, isl=512, osl=64, **kw, **SMALL)
        return [n for n in rep.notes if "arrivals outpaced the deployment" in n]

    (note,) = overloaded(rate=5000.0)
    waiting = int(note.split("arrived, ")[1].split(" of 200")[0])
    assert waiting >= 20
    assert overloaded(rate=1.0) == []
    assert overloaded(concurrency=64) == []
    records = [RequestRecord(rid=i, arrival_s=a, prompt_tokens=8, output_tokens=4, ttft_s=t, tpot_s=0.01, e2e_s=1.0,
                             preemptions=0, prefix_hit_tokens=0, kv_transfer_s=0.0) for i, (a, t) in enumerate([(0.0, 0.5), (1.0, 2.5), (2.0, 0.1), (3.0, 0.2)])]
    assert backlog(records) == 2  # the second (first token at 3.5 s) and the last one
