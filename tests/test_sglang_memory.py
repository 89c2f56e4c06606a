"""SGLang's default mem_fraction_static (serving/sglang_memory.py), each case worked out here from
the terms of server_args.py `_handle_gpu_memory_settings` (reserved MiB, then (gpu - reserved) / gpu)."""

from __future__ import annotations

import pytest

import tensor_cast
from tensor_cast.deployment.config import Deployment, resolve
from tensor_cast.serving.api import default_utilization
from tensor_cast.serving.engines import engine_profile
from tensor_cast.serving.sglang_memory import sglang_mem_fraction_static

GIB = 1024  # MiB


@pytest.mark.parametrize(("gpu_gib", "kwargs", "reserved"), [
    # H100, TP1: 512 + 1.5 x 8192 + 2 x 256 (graph max bs below 4-way TP) + 1/8 x 1024
    (80, {"tp_size": 1}, 512 + 12288 + 512 + 128),
    # H100, TP8: graph max bs 512, 8/8 x 1024
    (80, {"tp_size": 8}, 512 + 12288 + 1024 + 1024),
    # B200, TP4 with SGLang's 16k chunk on Blackwell
    (180, {"tp_size": 4, "chunked_prefill_size": 16384}, 512 + 24576 + 1024 + 512),
    # B200, --tp 8 --dp 8 --enable-dp-attention: + 3 x 512 x 8 padding, + 1.5 x 512 x 8 (graph bs > 300)
    (180, {"tp_size": 8, "dp_size": 8, "dp_attention": True, "chunked_prefill_size": 16384},
     512 + 24576 + 1024 + 1024 + 12288 + 6144),
    # a small chunk: the 10 GiB floor of GPUs above 60 GiB, + 2 GiB for a speculative draft
    (80, {"tp_size": 1, "chunked_prefill_size": 2048, "speculative": True}, 10 * GIB + 2 * GIB),
])
def test_mem_fraction_static_from_the_rule(gpu_gib, kwargs, reserved):
    gpu = gpu_gib * GIB
    assert sglang_mem_fraction_static(gpu, **kwargs) == round((gpu - reserved) / gpu, 3)


def test_rule_refuses_gpus_it_was_not_transcribed_for():
    with pytest.raises(ValueError, match="transcribed for GPUs of >= 60 GiB, got 24 GiB"):
        sglang_mem_fraction_static(24 * GIB, tp_size=1)


def test_simulate_default_uses_the_rule_for_sglang_only(h100_cluster):
    d = resolve(Deployment(tp=2), tensor_cast.load_model("meta-llama/Llama-3.1-8B"), h100_cluster)
    gpu = h100_cluster.memory_capacity_gib * GIB
    expected = round((gpu - (512 + 12288 + 512 + 256)) / gpu, 3)  # TP2: graph max bs 256, 2/8 x 1024
    assert default_utilization(engine_profile("sglang"), None, h100_cluster, d, mtp=0) == expected
    user = {"memory_utilization": 0.8}  # the user's engine_args win
    assert default_utilization(engine_profile("sglang", user), user, h100_cluster, d, mtp=0) == 0.8
    assert default_utilization(engine_profile("vllm"), None, h100_cluster, d, mtp=0) == 0.9  # a constant
