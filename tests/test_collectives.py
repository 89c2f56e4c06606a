"""Collective ops, their byte counts, and the interconnect time model — derived here."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import tensor_cast
import tensor_cast.ops  # registers torch.ops.tensor_cast.*
from tensor_cast.backends.communication import collective_time_s
from tensor_cast.backends.counts import CommInfo, Counts
from tensor_cast.errors import InvalidProfileError

tc = torch.ops.tensor_cast
BATCH, HIDDEN, N = 64, 8192, 8
M = BATCH * HIDDEN * 2  # bytes of a bf16 (64, 8192) activation


def hidden(*shape):
    return torch.empty(*(shape or (BATCH, HIDDEN)), dtype=torch.bfloat16, device="meta")


@pytest.mark.parametrize("op, args", [
    (tc.all_reduce.default, (4, 1, "tp")),
    (tc.all_gather.default, (-1, 4, 1, "tp")),
    (tc.reduce_scatter.default, (0, 2, 1, "tp")),
    (tc.all_to_all.default, (8, 2, "ep")),
    (tc.send_recv.default, (2, "pp")),
])
def test_opcheck(op, args):
    torch.library.opcheck(op, (torch.randn(4, 6), *args))


def test_reference_semantics_every_rank_holds_the_same_tensor():
    x = torch.randn(4, 6)
    torch.testing.assert_close(tc.all_reduce(x, 4, 1, "tp"), 4 * x)
    assert tc.all_gather(x, 1, 3, 1, "tp").shape == (4, 18)
    torch.testing.assert_close(tc.reduce_scatter(x, 0, 2, 1, "tp"), 2 * x[:2])


def test_ring_bytes(h100_cluster):
    ar = tensor_cast.op_cost(tc.all_reduce.default, hidden(), N, 1, "tp", device=h100_cluster)
    assert ar.counts.comm_bytes == 2 * (N - 1) * M // N  # ring: reduce-scatter + all-gather
    assert ar.counts.comm == CommInfo("all_reduce", N, M, "tp", 1)
    a2a = tensor_cast.op_cost(tc.all_to_all.default, hidden(), N, 1, "ep", device=h100_cluster)
    assert a2a.counts.comm_bytes == (N - 1) * M // N  # 1/N of the data stays on the rank
    gather = tensor_cast.op_cost(tc.all_gather.default, hidden(BATCH, HIDDEN // N), -1, N, 1, "tp", device=h100_cluster)
    assert gather.counts.comm.payload_bytes == M and gather.counts.comm_bytes == (N - 1) * M // N
    scatter = tensor_cast.op_cost(tc.reduce_scatter.default, hidden(), 0, N, 1, "tp", device=h100_cluster)
    assert scatter.counts.comm_bytes == (N - 1) * M // N
    p2p = tensor_cast.op_cost(tc.send_recv.default, hidden(), 1, "pp", device=h100_cluster)
    assert p2p.counts.comm_bytes == M
    assert ar.bound == "comm" and ar.kind == "collective"


def _time(profile, collective, n, payload, nodes=1):
    return collective_time_s(Counts(comm=CommInfo(collective, n, payload, "tp", nodes)), profile)


def test_all_reduce_time_ring_or_tree(h100_cluster):
    link = h100_cluster.interconnect
    bw, lat = link.intra_node_bandwidth_gbps * 1e9, link.intra_node_latency_us * 1e-6
    for payload in (16 * 1024, 1 << 30):  # latency-bound and bandwidth-bound messages
        ring = 2 * (N - 1) * lat + 2 * (N - 1) / N * payload / bw
        tree = 2 * math.ceil(math.log2(N)) * lat + 2 * payload / bw
        assert _time(h100_cluster, "all_reduce", N, payload) == pytest.approx(min(ring, tree), rel=1e-12)
    big = 1 << 30
    assert _time(h100_cluster, "all_reduce", N, big) == pytest.approx(
        2 * (N - 1) * lat + 2 * (N - 1) / N * big / bw)  # the ring wins on large messages


def test_group_spanning_nodes_runs_at_the_slower_level(h100_cluster):
    """Bandwidth: the slower link. Latency as NCCL's tuner models a ring over 2 nodes (src/graph/
    tuning.cc): one of each pass's n - 1 steps crosses the node boundary at the inter-node latency, the
    rest at the intra-node one; its tree: a chain of 8 in each node plus a log2(2) = 1 step between."""
    link = h100_cluster.interconnect
    inter_bw, inter_lat = link.inter_node_bandwidth_gbps * 1e9, link.inter_node_latency_us * 1e-6
    intra_lat = link.intra_node_latency_us * 1e-6
    hop = max(intra_lat, 1e-6)  # an intra-node ring step of a multi-node ring: at least NCCL's 1 us net overhead
    n = 16
    for payload in (1 << 28, 64 * 1024):  # bandwidth-bound, latency-bound
        ring = 2 * (14 * hop + inter_lat) + 2 * (n - 1) / n * payload / inter_bw
        tree = 2 * (7 * intra_lat + inter_lat) + 2 * payload / inter_bw
        assert _time(h100_cluster, "all_reduce", n, payload, nodes=2) == pytest.approx(min(ring, tree))
        gather = 14 * hop + inter_lat + (n - 1) / n * payload / inter_bw
        assert _time(h100_cluster, "all_gather", n, payload, nodes=2) == pytest.approx(gather)
        assert _time(h100_cluster, "reduce_scatter", n, payload, nodes=2) == pytest.approx(gather)
    payload = 1 << 28
    assert _time(h100_cluster, "all_reduce", n, payload, nodes=2) > 5 * _time(h100_cluster, "all_reduce", 8, payload)
    # four nodes: three crossings per pass
    four = 3 * inter_lat + 28 * hop + 31 / 32 * payload / inter_bw
    assert _time(h100_cluster, "all_gather", 32, payload, nodes=4) == pytest.approx(four)


def test_a_call_spanning_nodes_pays_its_measured_fixed_cost_too():
    """With measured protocols (the vllm section's NCCL fit) a group inside a node costs the fitted
    protocols; one spanning nodes the alpha-beta model plus the call's fitted fixed cost t0
    (`<collective>_latency_us`): launch and setup do not vanish across nodes."""
    vllm, torch_ = tensor_cast.load_device("h100-sxm", "vllm"), tensor_cast.load_device("h100-sxm", "torch")
    n, payload = 16, 16 * 1024  # a TP16 decode all-reduce of one token: latency-bound
    for collective in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all"):
        t0 = vllm.efficiency[f"{collective}_latency_us"] * 1e-6
        without = _time(torch_, collective, n, payload, nodes=2)  # same links, no measured protocols
        assert _time(vllm, collective, n, payload, nodes=2) == pytest.approx(t0 + without)
    assert _time(vllm, "all_reduce", 8, payload) < _time(vllm, "all_reduce", n, payload, nodes=2)


def test_all_to_all_splits_intra_and_inter_node_traffic(h100_cluster):
    link = h100_cluster.interconnect
    intra_bw, inter_bw = link.intra_node_bandwidth_gbps * 1e9, link.inter_node_bandwidth_gbps * 1e9
    n, per_node, payload = 16, 8, 1 << 26
    # 7/16 of a rank's data goes to the 7 peers in its node, 8/16 to the other node, concurrently
    expected = link.inter_node_latency_us * 1e-6 + max((per_node - 1) / n * payload / intra_bw,
                                                           (n - per_node) / n * payload / inter_bw)
    assert _time(h100_cluster, "all_to_all", n, payload, nodes=2) == pytest.approx(expected)
    intra = link.intra_node_latency_us * 1e-6 + (N - 1) / N * payload / intra_bw
    assert _time(h100_cluster, "all_to_all", N, payload) == pytest.approx(intra)


def test_send_recv_and_symbolic_payload(h100_cluster):
    from tensor_cast.sizes import B, S

    link = h100_cluster.interconnect
    t = _time(h100_cluster, "send_recv", 2, 2 * B * S * HIDDEN * 2, nodes=2)
    expected = link.inter_node_latency_us * 1e-6 + 2 * 4 * 1 * HIDDEN * 2 / (link.inter_node_bandwidth_gbps * 1e9)
    assert float(t.subs({B: 4, S: 1})) == pytest.approx(expected)


def test_missing_interconnect_is_a_clear_error():
    bare = dataclasses.replace(tensor_cast.load_device("h100-sxm"), interconnect=None)
    with pytest.raises(InvalidProfileError, match=r"device h100-sxm .*has no \[interconnect\] table, needed for a "
                                                  r"all_reduce over 8 GPUs \(tp\); add one with keys: gpus_per_node"):
        _time(bare, "all_reduce", 8, 1024)
