"""Mellum (`mellum`, JetBrains): sliding / full GQA layers with q/k norms over Qwen3-MoE-style experts
(softmax top-k, no shared expert), dense layers where `mlp_layer_types` says.

No published config.json was found here (no registry entry; the family loads from a config.json):
transformers' own default config (hidden 2304, 32 / 4 heads of 128, 64 experts of 896, top-8, window
1024) cut to 4 layers (3 sliding + 1 full; the first dense). Checked: parameters against transformers'
own modules, one MoE op per sparse layer, the KV cache per kind by hand, and the expert count given
under either of its config class's names (num_experts / num_local_experts); MTP drafting refused in
one line (its MTP layers are not modelled).
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig
from transformers_reference import transformers_parameters, write_config

import tensor_cast

MLP_TYPES = ["dense", "sparse", "sparse", "sparse"]
LAYER_TYPES = ["sliding_attention"] * 3 + ["full_attention"]
BATCH, CONTEXT = 2, 4096


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    config = AutoConfig.for_model("mellum", num_hidden_layers=4, mlp_layer_types=MLP_TYPES, layer_types=LAYER_TYPES)
    folder = tmp_path_factory.mktemp("mellum")
    data = write_config(config, folder)
    reference = transformers_parameters(config)
    report = tensor_cast.analyze(str(folder), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    return config, data, report, reference


def test_parameters_and_layers(case):
    _, _, report, reference = case
    assert report.num_parameters == reference
    assert sorted(r.layer for r in report.ops if r.op == "tensor_cast.moe") == [1, 2, 3]


def test_kv_cache_by_kind(case):
    config, _, report, _ = case
    per_token = config.num_key_value_heads * 2 * config.head_dim * 2
    window = config.sliding_window
    assert report.kv_cache_by_kind == {f"sliding({window})": 3 * BATCH * window * per_token,
                                       "full": BATCH * (CONTEXT + 1) * per_token}


def test_expert_count_under_its_alias(case, tmp_path):
    _, data, report, _ = case
    renamed = {k: v for k, v in data.items() if k != "num_local_experts"}
    renamed["num_experts"] = data["num_local_experts"]  # the config class's attribute_map alias
    (tmp_path / "config.json").write_text(json.dumps(renamed))
    again = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    assert again.num_parameters == report.num_parameters


def test_mtp_is_refused(case, tmp_path, capsys):
    from tensor_cast.cli import main

    _, data, _, _ = case
    (tmp_path / "config.json").write_text(json.dumps(dict(data, num_nextn_predict_layers=1)))  # num_mtp_layers
    assert main(["analyze", str(tmp_path), "--device", "h100", "--mtp", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MTP layers (num_mtp_layers" in err[0]
