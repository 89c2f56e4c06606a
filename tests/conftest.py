"""Shared fixtures. Tests are offline: the hub is disabled, models come from the registry."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from collections.abc import Callable
from typing import Any

import pytest
import torch

import tensor_cast

# The trace cache (tensor_cast/cache/) of this test run: never the user's own. The process that starts the
# run makes it; pytest-xdist's workers inherit its environment, so a model one worker traced is a disk hit
# on the other (entries are written by atomic rename: store.py; the directory is read at call time, not at
# import). Only the process that made it removes it.
_RUN_CACHE = "TENSOR_CAST_TEST_RUN_CACHE_DIR"
_OWNS_RUN_CACHE = _RUN_CACHE not in os.environ
if _OWNS_RUN_CACHE:
    os.environ[_RUN_CACHE] = tempfile.mkdtemp(prefix="tensor_cast_test_cache_")
    atexit.register(shutil.rmtree, os.environ[_RUN_CACHE], True)
os.environ["TENSOR_CAST_CACHE_DIR"] = os.environ[_RUN_CACHE]


@pytest.fixture(scope="session")
def llama8b() -> tensor_cast.Report:
    """Llama-3.1-8B traced once, symbolic in B, S, C (every test evaluates its own point)."""
    return tensor_cast.analyze("meta-llama/Llama-3.1-8B", device="h100-sxm", symbolic=True)


@pytest.fixture(scope="session")
def llama8b_config() -> dict[str, Any]:
    from tensor_cast.models import registry

    return registry.lookup("meta-llama/Llama-3.1-8B").config


def _capture(module: torch.nn.Module, *inputs: torch.Tensor) -> tuple[torch.fx.GraphModule, list[Any]]:
    """Dynamo-capture a small module on real CPU tensors: (graph, the real inputs in placeholder order)."""
    graphs: list[tuple[torch.fx.GraphModule, list[Any]]] = []

    def record(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        graphs.append((gm, list(example_inputs)))
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(module, backend=record, fullgraph=True, dynamic=False)
    with torch.no_grad():
        compiled(*inputs)
    torch._dynamo.reset()
    assert len(graphs) == 1
    from tensor_cast.capture.provenance import attach_provenance

    attach_provenance(graphs[0][0], module, graphs[0][1])  # as capture() does: module paths, parameter names
    return graphs[0]


@pytest.fixture
def capture_module() -> Callable[..., tuple[torch.fx.GraphModule, list[Any]]]:
    return _capture


# ---- deployment tests: a device profile with a known interconnect ------------------------------------
@pytest.fixture(scope="session")
def h100_cluster() -> tensor_cast.DeviceProfile:
    """The built-in H100 profile with test interconnect numbers (independent of the shipped ones).

    Public facts: H100 SXM NVLink4 is 900 GB/s bidirectional (450 per direction per GPU); one 400 Gb/s
    InfiniBand NDR NIC per GPU is 50 GB/s per direction. The latencies are test values. The torch
    efficiency section: it has no measured collective protocols, so collectives follow the link
    (alpha-beta) model these numbers feed (the vllm section's NCCL fit is tested in test_engine_fit).
    """
    import dataclasses

    from tensor_cast.backends.device import Interconnect

    interconnect = Interconnect(gpus_per_node=8, intra_node="nvlink4", intra_node_bandwidth_gbps=450.0,
                                intra_node_latency_us=3.0, inter_node="infiniband-ndr",
                                inter_node_bandwidth_gbps=50.0, inter_node_latency_us=10.0)
    return dataclasses.replace(tensor_cast.load_device("h100-sxm", "torch"), interconnect=interconnect)
