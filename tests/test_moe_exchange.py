"""The MoE exchange of attention DP + EP (dp > 1, moe_tp = 1): all_to_all or allgather, the engines'
defaults (tensor_cast/deployment/moe_exchange.py), the pass on a tiny graph, Qwen3-30B-A3B end to
end with the all-gather bytes derived from named dimensions, the CLI and bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from moe_graphs import TinyMoE, call_targets

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.deployment.moe_exchange import resolve_moe_exchange
from tensor_cast.errors import DeploymentError, InvalidArgumentError
from tensor_cast.models import registry
from tensor_cast.passes.insert_ep_collectives import insert_ep_collectives
from tensor_cast.passes.op_args import arg
from tensor_cast.report.serialize import report_to_dict
from tensor_cast.serving.disagg import parse_disagg

tc = torch.ops.tensor_cast
BF16 = 2
QWEN = "Qwen/Qwen3-30B-A3B"


@pytest.mark.parametrize("engine, spans_nodes, expected", [
    ("vllm", False, "allgather"),  # ParallelConfig.all2all_backend = "allgather_reducescatter"
    ("vllm", True, "allgather"),
    ("sglang", False, "allgather"),  # moe_a2a_backend "none": DP attention gathers the tokens
    ("trtllm", False, "all_to_all"),  # one NVLink domain: the NVLink all-to-all
    ("trtllm", True, "allgather"),  # across InfiniBand, DeepEP off by default: AllGatherReduceScatter
    ("torch", True, "all_to_all"),
])
def test_engine_defaults(engine, spans_nodes, expected):
    assert resolve_moe_exchange(None, engine, spans_nodes)[0] == expected
    other = "all_to_all" if expected == "allgather" else "allgather"
    assert resolve_moe_exchange(other, engine, spans_nodes) == (other, "moe_exchange given")


def test_pass_allgathers_whole_experts_on_request(capture_module):
    x = torch.randn(3, 16)
    gm, inputs = capture_module(TinyMoE(), x)
    with torch.no_grad():
        expected = gm(*inputs)
    count = len(gm.graph.nodes)
    gm = insert_ep_collectives(gm, ep=4, dp=4, nodes=1, exchange="allgather")
    targets = call_targets(gm)
    assert targets.count(tc.ep_allgather.default) == 1 and targets.count(tc.ep_reducescatter.default) == 1
    assert tc.ep_dispatch.default not in targets and len(gm.graph.nodes) == count + 2
    moe = next(n for n in gm.graph.nodes if n.target is tc.moe.default)
    gather, scatter = arg(moe, "hidden"), next(iter(moe.users))
    assert gather.target is tc.ep_allgather.default and scatter.target is tc.ep_reducescatter.default
    assert [arg(gather, k) for k in ("group_size", "ep_dp", "nodes")] == [4, 4, 1]
    assert (arg(moe, "ep"), arg(moe, "ep_dp")) == (4, 4)  # the experts' share and routed work: as with all_to_all
    with torch.no_grad():
        torch.testing.assert_close(gm(*inputs), expected)
    gm, _ = capture_module(TinyMoE(), x)
    with pytest.raises(DeploymentError, match="unknown MoE exchange 'ring'; accepted: all_to_all, allgather"):
        insert_ep_collectives(gm, ep=4, dp=4, exchange="ring")


@pytest.fixture(scope="module")
def qwen_dep8(h100_cluster):
    """vLLM --data-parallel-size 8 --enable-expert-parallel on one node: its default exchange."""
    return tensor_cast.analyze(QWEN, device=h100_cluster, engine="vllm", batch_size=64, query_len=1,
                               context_len=4096, dp=8, ep=8)


def test_vllm_default_allgathers_every_replicas_tokens(qwen_dep8, h100_cluster):
    c = registry.lookup(QWEN).config
    layers, hidden = c["num_hidden_layers"], c["hidden_size"]
    layer0 = [r.op for r in qwen_dep8.ops if r.layer == 0]
    i = layer0.index("tensor_cast.moe")
    assert layer0[i - 1:i + 2] == ["tensor_cast.ep_allgather", "tensor_cast.moe", "tensor_cast.ep_reducescatter"]
    assert "all-gather/reduce-scatter" in qwen_dep8.context.deployment.describe()
    # each rank receives the other 7 replicas' 8 tokens whole (bf16 wire: unquantized experts), and
    # reduce-scatters the 64 rows' partial outputs: (n-1)/n of 64 rows x hidden, twice per MoE layer
    rows, dp = 64, 8
    per_exchange = (dp - 1) * rows * hidden * BF16 // dp
    assert qwen_dep8.total_comm_bytes == 2 * layers * per_exchange
    # the routed work is the all_to_all deployment's (same pairs per rank), only the exchange differs
    a2a = tensor_cast.analyze(QWEN, device=h100_cluster, engine="vllm", batch_size=64, query_len=1, context_len=4096,
                              dp=8, ep=8, moe_exchange="all_to_all")
    moe = [sum(r.flops for r in rep.ops if r.op == "tensor_cast.moe") for rep in (qwen_dep8, a2a)]
    assert moe[0] == moe[1] and "all_to_all dispatch/combine" in a2a.context.deployment.describe()
    # top-8 over 8 ranks: all_to_all moves k/ep = 1 row per token each way, as many as the gather
    assert a2a.total_comm_bytes == qwen_dep8.total_comm_bytes
    assert [report_to_dict(r)["deployment"]["moe_exchange"] for r in (qwen_dep8, a2a)] == ["allgather", "all_to_all"]
    tp8 = tensor_cast.analyze(QWEN, device=h100_cluster, engine="vllm", batch_size=8, query_len=1, tp=8, ep=8)
    assert report_to_dict(tp8)["deployment"]["moe_exchange"] is None  # dp = 1: the outputs are all-reduced


def test_trtllm_all_to_all_within_one_nvlink_domain():
    point = dict(engine="trtllm", batch_size=16, query_len=1, context_len=1024)
    nvl72 = tensor_cast.analyze(QWEN, device="gb200", dp=16, ep=16, **point)  # 16 GPUs of one NVL72 rack
    node = tensor_cast.analyze(QWEN, device="h100-sxm", dp=8, ep=8, **point)  # one HGX node
    two_nodes = tensor_cast.analyze(QWEN, device="h100-sxm", dp=16, ep=16, **point)  # over InfiniBand
    for report, exchange in ((nvl72, "all_to_all dispatch/combine"), (node, "all_to_all dispatch/combine"),
                             (two_nodes, "all-gather/reduce-scatter")):
        assert exchange in report.context.deployment.describe()
    assert two_nodes.ep_comm_time_s > nvl72.ep_comm_time_s  # two nodes of InfiniBand against one NVLink domain


def test_bad_exchange_is_one_line_exit_2(capsys):
    with pytest.raises(DeploymentError, match="unknown moe_exchange 'ring'; accepted: all_to_all, allgather"):
        tensor_cast.analyze(QWEN, device="h100-sxm", batch_size=8, query_len=1, dp=8, ep=8, moe_exchange="ring")
    code = main(["analyze", QWEN, "--device", "h100-sxm", "--dp", "8", "--ep", "8", "--moe-exchange", "ring"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "accepted: all_to_all, allgather" in err


def test_cli_and_simulate_take_the_exchange(capsys):
    code = main(["analyze", QWEN, "--device", "h100-sxm", "--dp", "8", "--ep", "8", "--moe-exchange", "all_to_all",
                 "--batch-size", "8", "--query-len", "1"])
    assert code == 0 and "all_to_all dispatch/combine" in capsys.readouterr().out
    reports = [tensor_cast.simulate(QWEN, device="h100-sxm", engine="vllm", concurrency=16, num_requests=16, isl=128,
                                    osl=8, dp=8, ep=8, **extra) for extra in ({}, {"moe_exchange": "all_to_all"})]
    assert "all-gather/reduce-scatter" in reports[0].deployment and "all_to_all" in reports[1].deployment


def test_replace_keeps_the_request_checked():
    from tensor_cast.deployment.config import Deployment

    with pytest.raises(DeploymentError, match="accepted: all_to_all, allgather"):
        dataclasses.replace(Deployment(dp=2, ep=2), moe_exchange="nccl")


def test_disagg_pools_take_their_own_exchange():
    spec = "prefill: 1x tp1 dp8 ep8 a2a; decode: 1x tp1 dp8 ep8"
    pools = parse_disagg(spec)
    assert pools["prefill"].deployment()["moe_exchange"] == "all_to_all"
    assert "moe_exchange" not in pools["decode"].deployment()  # the engine's default (SGLang: all-gather)
    assert parse_disagg({"prefill": {"tp": 1, "dp": 8, "ep": 8, "moe_exchange": "allgather"},
                         "decode": {"tp": 8}})["prefill"].moe_exchange == "allgather"
    report = tensor_cast.simulate(QWEN, device="h100-sxm", engine="sglang", concurrency=16, num_requests=16, isl=128,
                                  osl=8, disagg=spec)
    prefill, decode = report.deployment.split("; decode")
    assert "all_to_all dispatch/combine" in prefill and "all-gather/reduce-scatter" in decode
    with pytest.raises(InvalidArgumentError, match=r"at 'ring'; accepted: .*\[a2a\|allgather\]"):
        parse_disagg("prefill: 1x tp1 dp8 ep8 ring; decode: 1x tp8")
    with pytest.raises(InvalidArgumentError, match="moe_exchange must be all_to_all or allgather, got 'ring'"):
        parse_disagg({"prefill": {"moe_exchange": "ring"}, "decode": {"tp": 8}})
