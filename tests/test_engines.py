"""Engine as an input: a profile holds one efficiency section per calibrated engine; `engine=`
on op_cost / analyze / the CLI picks it, an engine without a section falls back to the nearest
calibrated one with a note, and bad engine names or sections are clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from profile_text import profile_head, profile_sources

import tensor_cast
from tensor_cast.backends.device import parse_profile
from tensor_cast.backends.engines import DEFAULT_ENGINE, ENGINES, GEMM_KERNELS, NEAREST, borrowed_section
from tensor_cast.cli import main
from tensor_cast.errors import InvalidArgumentError, InvalidProfileError

HEAD = profile_head("two-engine-gpu", "Two-engine GPU")
SOURCES = profile_sources()
SRC_EFF = '"efficiency" = "a test"\n'
TWO = HEAD + """
[efficiency.vllm]
gemm_compute = 0.8
memory = 0.9

[efficiency.torch]
gemm_compute = 0.5
memory = 0.6
""" + SOURCES + """
"efficiency.vllm.gemm_compute" = "a test"
"efficiency.torch" = "a test"
"""
TORCH_ONLY = HEAD + """
[efficiency.torch]
gemm_compute = 0.5
memory = 0.6
""" + SOURCES + """
"efficiency.torch" = "a test"
"""
M = N = K = 8192  # compute-bound at any of these fractions: time = 2MNK / (400 TFLOP/s x fraction)


def gemm(profile, engine=None):
    a = torch.empty(M, K, dtype=torch.bfloat16, device="meta")
    b = torch.empty(K, N, dtype=torch.bfloat16, device="meta")
    return tensor_cast.op_cost(torch.ops.aten.mm.default, a, b, device=profile, engine=engine)


@pytest.mark.parametrize(("engine", "fraction"), [("vllm", 0.8), ("torch", 0.5)])
def test_each_engine_uses_its_own_section(engine, fraction):
    cost = gemm(parse_profile(TWO, "two.toml"), engine)
    assert cost.engine == engine and cost.engine_note == ""
    assert cost.compute_s == pytest.approx(2 * M * N * K / (400e12 * fraction), rel=1e-12)


def test_default_engine_is_vllm():
    assert DEFAULT_ENGINE == "vllm"
    cost = gemm(parse_profile(TWO, "two.toml"))
    assert cost.engine == "vllm"
    assert cost.compute_s == pytest.approx(2 * M * N * K / (400e12 * 0.8), rel=1e-12)


@pytest.mark.parametrize("engine", ["sglang", "trtllm"])
def test_engine_without_a_section_uses_the_nearest_with_a_note(engine):
    cost = gemm(parse_profile(TWO, "two.toml"), engine)
    assert NEAREST[engine][0] == "vllm"
    assert cost.engine == "vllm"
    assert engine in cost.engine_note and "vllm section" in cost.engine_note
    only_torch = gemm(parse_profile(TORCH_ONLY, "torch.toml"), engine)
    assert only_torch.engine == "torch" and "torch section" in only_torch.engine_note


def test_a_borrowed_section_drops_the_gemm_variants_whose_kernel_the_engines_do_not_share():
    """vLLM's NVFP4 fit is FlashInfer's CuTe DSL linear: it stands in for SGLang's (the same kernel), not for
    TensorRT-LLM's own FP4 GEMMs, which then take the generic GEMM parameters; other variants carry."""
    section = {"gemm_compute": 0.7, "gemm_nvfp4_compute": 0.5, "gemm_nvfp4_memory": 0.7, "gemm_fp8_compute": 0.6}
    assert GEMM_KERNELS[("vllm", "nvfp4")] != GEMM_KERNELS[("trtllm", "nvfp4")]
    assert borrowed_section(section, "vllm", "trtllm") == {"gemm_compute": 0.7, "gemm_fp8_compute": 0.6}
    assert borrowed_section(section, "vllm", "sglang") == section
    assert borrowed_section(section, "vllm", "vllm") == section
    text = TWO.replace("gemm_compute = 0.8\n", "gemm_compute = 0.8\ngemm_nvfp4_compute = 0.3\n", 1).replace(
        '"efficiency.vllm.gemm_compute" = "a test"\n',
        '"efficiency.vllm.gemm_compute" = "a test"\n"efficiency.vllm.gemm_nvfp4_compute" = "a test"\n')
    profile = parse_profile(text, "two.toml")
    assert tensor_cast.load_device(profile, "vllm").efficiency["gemm_nvfp4_compute"] == 0.3
    trt = tensor_cast.load_device(profile, "trtllm")
    assert trt.engine == "vllm" and "gemm_nvfp4_compute" not in trt.efficiency and trt.efficiency["gemm_compute"] == 0.8


def test_flat_efficiency_table_is_the_torch_section():
    flat = parse_profile(HEAD + "\n[efficiency]\ngemm_compute = 0.5\n" + SOURCES + '"efficiency" = "a test"\n',
                         "flat.toml", "torch")
    assert flat.engine == "torch" and dict(flat.efficiency) == {"gemm_compute": 0.5}
    assert set(flat.engine_sections) == {"torch"}


def test_builtin_h100_has_vllm_and_torch_sections():
    profile = tensor_cast.load_device("h100-sxm", "torch")
    assert {"vllm", "torch"} <= set(profile.engine_sections)
    assert profile.engine == "torch"
    assert tensor_cast.load_device("h100-sxm").engine == "vllm"


@pytest.mark.parametrize(("text", "match"), [
    (HEAD + "\n[efficiency.vllm]\ngemm_compute = 0.8\n[efficiency.deepspeed]\ngemm_compute = 0.5\n" + SOURCES + SRC_EFF,
     r"efficiency\.deepspeed.*accepted engines: vllm, sglang, trtllm, torch"),
    (HEAD + "\n[efficiency]\nmemory = 0.5\n[efficiency.vllm]\ngemm_compute = 0.8\n" + SOURCES + SRC_EFF, r"mixes flat keys \['memory'\]"),
    (HEAD + "\n[efficiency.vllm]\ngemm_compute = 1.8\n" + SOURCES + SRC_EFF, r"efficiency\.vllm.*gemm_compute must be a number in \[1e-06, 1\]"),
    (HEAD + "\n[efficiency.vllm]\ngemm_compute = 0.8\n" + SOURCES + "\"efficiency.vllm.gemm_memory\" = \"x\"\n",
     r"\[efficiency\.vllm\] has no key 'gemm_memory'"),
])
def test_bad_engine_sections_are_rejected(text, match):
    with pytest.raises(InvalidProfileError, match=match):
        parse_profile(text, "bad.toml")


def test_unknown_engine_is_an_argument_error():
    with pytest.raises(InvalidArgumentError, match=r"engine must be one of vllm, sglang, trtllm, torch, got 'vlm'"):
        gemm(parse_profile(TWO, "two.toml"), "vlm")
    assert ENGINES == ("vllm", "sglang", "trtllm", "torch")


def test_analyze_reports_the_section_used_and_the_fallback_note(tmp_path):
    path = tmp_path / "torch_only.toml"
    path.write_text(TORCH_ONLY)
    report = tensor_cast.analyze("meta-llama/Llama-3.1-8B", device=str(path), batch_size=1, query_len=16,
                                 num_hidden_layers=1, engine="sglang")
    assert (report.engine_requested, report.engine) == ("sglang", "torch")
    assert any("engine sglang" in note and "torch section" in note for note in report.context.notes)
    data = json.loads(report.to_json())
    assert data["engine"] == {"requested": "sglang", "efficiency_section": "torch"}
    assert "engine" in report.summary() and "sglang" in report.summary()


def test_cli_engine_flag(tmp_path, capsys):
    path = tmp_path / "two.toml"
    path.write_text(TWO)
    out = tmp_path / "r.json"
    assert main(["analyze", "meta-llama/Llama-3.1-8B", "--device", str(path), "--num-hidden-layers", "1",
                 "--query-len", "16", "--engine", "torch", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["engine"] == {"requested": "torch", "efficiency_section": "torch"}
    assert main(["analyze", "meta-llama/Llama-3.1-8B", "--device", str(path), "--engine", "tensorrt"]) == 2
    assert "engine must be one of" in capsys.readouterr().err


def test_a_section_fitted_on_another_device_is_said(tmp_path):
    """A section whose every key's source reads "transferred from ..." (as calibrate_device.py
    --transfer-engine writes them) was fitted on another device: the report names it. Fitted here, or
    one key fitted here among transferred ones: nothing is said."""
    def notes(sources):
        path = tmp_path / "p.toml"
        path.write_text(HEAD + "\n[efficiency.vllm]\ngemm_compute = 0.8\nmemory = 0.9\n" + SOURCES + sources)
        report = tensor_cast.analyze("meta-llama/Llama-3.1-8B", device=str(path), batch_size=1, query_len=16,
                                     num_hidden_layers=1, engine="vllm")
        return [n for n in report.context.notes if "efficiency section is" in n]

    assert notes('"efficiency.vllm" = "transferred from h100-sxm (same die): fitted on its tables"\n') == [
        "two-engine-gpu's vllm efficiency section is transferred from h100-sxm, not fitted on measurements of "
        "two-engine-gpu: expect larger errors than on the device it was fitted on"]
    assert notes('"efficiency.vllm" = "fitted on this GPU"\n') == []
    assert notes('"efficiency.vllm" = "transferred from b200: kept"\n'
                 '"efficiency.vllm.memory" = "measured on this GPU"\n') == []
    # the built-in profiles: H200's sections come from H100, B200's vllm section is B200's own
    h200 = tensor_cast.analyze("Qwen/Qwen3-0.6B", device="h200", batch_size=1, query_len=1, num_hidden_layers=1)
    assert any(n.startswith("h200's vllm efficiency section is transferred from h100-sxm") for n in h200.context.notes)
    b200 = tensor_cast.analyze("Qwen/Qwen3-0.6B", device="b200", batch_size=1, query_len=1, num_hidden_layers=1)
    assert not any("efficiency section is" in n for n in b200.context.notes)
