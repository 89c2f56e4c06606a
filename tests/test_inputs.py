"""Every bad input gets one line naming the value and the accepted ones (exit 2 from the CLI, a
`TensorCastError` from the API), nothing half-written; legal edge inputs are costed correctly.

One section per category of issue 9: crashes, output files, API arguments, device profiles,
silently wrong results, messages, a newcomer's first run.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import tensor_cast
from tensor_cast import outputs
from tensor_cast.backends.device import load_device, parse_profile
from tensor_cast.backends.formulas.moe import experts_hit, inclusion_probabilities
from tensor_cast.cli import main
from tensor_cast.errors import (
    InvalidArgumentError,
    InvalidProfileError,
    MalformedConfigError,
    TensorCastError,
    UnknownDeviceError,
    UnknownModelError,
    UnsupportedModelError,
)
from tensor_cast.models import registry
from tensor_cast.models.adapters import adapter_for
from tensor_cast.models.translations import translate

LLAMA = "meta-llama/Llama-3.2-1B"  # hidden 2048, 32 heads, 8 KV heads, head_dim 64, 16 layers
tc = torch.ops.tensor_cast


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def llama_dir(tmp_path: Path, layers: int = 2, **changes) -> str:
    config = dict(registry.lookup(LLAMA).config, num_hidden_layers=layers)
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def meta(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(*shape, dtype=dtype, device="meta")


# ==== crashes: MoE top-k = number of experts ===================================================
def moe_args(tokens: int, *, experts: int, top_k: int, hidden: int, inter: int) -> tuple:
    return (meta(tokens, hidden), meta(experts, hidden), [], meta(experts, 2 * inter, hidden),
            meta(experts, hidden, inter), None, None, [], [], top_k, "softmax", "silu", "concat", False, "none")


@pytest.mark.parametrize("skew", [0.0, 1.0])
def test_moe_with_top_k_equal_to_experts_hits_every_expert(skew):
    t, e, h, i = 4, 8, 64, 32
    assert inclusion_probabilities(e, e, skew) == (1.0,) * e  # every token picks every expert
    assert experts_hit(t, e, e, skew) == pytest.approx(e)
    cost = tensor_cast.op_cost(tc.moe, *moe_args(t, experts=e, top_k=e, hidden=h, inter=i), device="h100",
                               moe_skew=skew)
    router = 2 * t * e * h
    routed = 2 * t * e * h * (2 * i) + 2 * t * e * i * h  # gate+up and down for all t·E pairs
    assert cost.counts.flops["bf16"] == router + routed
    every_expert = e * (2 * i * h + h * i) * 2  # all experts' weights are read (bf16)
    assert cost.counts.bytes_read >= every_expert and np.isfinite(cost.time_s) and cost.time_s > 0


def test_mixtral_layer_with_every_expert_is_costed_and_more_is_refused(capsys):
    mixtral = "mistralai/Mixtral-8x7B-v0.1"  # 8 experts, top-2, hidden 4096, expert width 14336
    status, out, err = run_cli(capsys, "analyze", mixtral, "--device", "h100", "--num-hidden-layers", "2",
                               "--per-layer-config", '{"0": {"num_experts_per_tok": 8}}', "--by", "layer")
    assert status == 0, err
    report = tensor_cast.analyze(mixtral, device="h100", batch_size=1, query_len=1, num_hidden_layers=2,
                                 per_layer_config={0: {"num_experts_per_tok": 8}})
    by_layer = {}
    for row in report.ops:
        by_layer[row.layer] = by_layer.get(row.layer, 0) + row.flops
    expert_flops = 2 * 4096 * (2 * 14336) + 2 * 14336 * 4096  # one token through one expert
    # the six extra experts per token: their GEMMs, plus per-pair activation and weighted sum (< 0.1 %)
    assert (8 - 2) * expert_flops <= by_layer[0] - by_layer[1] <= (8 - 2) * expert_flops * 1.001
    status, _, err = run_cli(capsys, "analyze", mixtral, "--device", "h100",
                             "--per-layer-config", '{"0": {"num_experts_per_tok": 9}}')
    assert_one_line_error(status, err, "num_experts_per_tok=9", "num_experts=8", "1..8")


# ==== crashes: config values ======================================================================
def test_mla_head_dim_must_be_the_rotary_width(tmp_path):
    config = dict(registry.lookup("deepseek-ai/DeepSeek-V3").config, head_dim=128)  # qk_rope_head_dim = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(MalformedConfigError, match="head_dim=128 contradicts qk_rope_head_dim=64"):
        tensor_cast.load_model(str(tmp_path))


@pytest.mark.parametrize("changes, fragments", [
    ({"hidden_size": 0}, ["hidden_size must be an integer >= 1, got 0"]),
    ({"hidden_size": -64}, ["hidden_size must be an integer >= 1, got -64"]),
    ({"intermediate_size": 0}, ["intermediate_size must be an integer >= 1, got 0"]),
    ({"vocab_size": 0}, ["vocab_size must be an integer >= 1"]),
    ({"num_attention_heads": 0}, ["num_attention_heads must be an integer >= 1"]),
    ({"hidden_size": "2048"}, ["hidden_size", "'2048' (a string)"]),
    ({"hidden_size": 2048.0}, ["hidden_size", "2048.0 (a float)"]),
    ({"num_hidden_layers": True}, ["num_hidden_layers", "True (a bool)"]),
    ({"num_hidden_layers": 0}, ["num_hidden_layers must be an integer >= 1, got 0"]),
    ({"hidden_size": 2050, "head_dim": None}, ["hidden_size=2050 is not divisible by num_attention_heads=32",
                                               "give head_dim"]),
    ({"num_key_value_heads": 0}, ["num_key_value_heads must be an integer >= 1, got 0"]),
    ({"head_dim": 0}, ["head_dim must be an integer >= 1, got 0"]),
])
def test_bad_config_values_are_one_line(tmp_path, capsys, changes, fragments):
    path = llama_dir(tmp_path, **changes)
    with pytest.raises(MalformedConfigError) as info:
        tensor_cast.load_model(path)
    for fragment in fragments:
        assert fragment in str(info.value)
    status, _, err = run_cli(capsys, "analyze", path, "--device", "h100")
    assert_one_line_error(status, err, *fragments)


@pytest.mark.parametrize("missing", [("hidden_size",), ("intermediate_size", "vocab_size")])
def test_missing_required_fields_are_refused_not_defaulted(tmp_path, missing):
    path = llama_dir(tmp_path, **dict.fromkeys(missing))
    with pytest.raises(MalformedConfigError, match="lacks required field") as info:
        tensor_cast.load_model(path)
    assert all(name in str(info.value).split("(required")[0] for name in missing)


def test_published_configs_omit_only_accepted_defaults(tmp_path):
    for entry in registry.all_entries():  # every registry config names all its family's required fields
        data = translate(entry.config, entry.id)  # a config written for remote code: as tensor_cast builds it
        adapter_for(data["model_type"]).check_given(data, entry.id)
    # what published Llama configs omit (Llama-2: no num_key_value_heads; no head_dim) keeps its default
    spec = tensor_cast.load_model(llama_dir(tmp_path, num_key_value_heads=None, head_dim=None))
    assert spec.layers[0].attention.num_kv_heads == 32 and spec.layers[0].attention.head_dim == 2048 // 32


REMOTE_CONFIG = """
from transformers import PretrainedConfig

class CustomConfig(PretrainedConfig):
    model_type = "my_custom_llm"
    def __init__(self, **kwargs):
        {body}
        super().__init__(**kwargs)
"""


@pytest.mark.parametrize("body, error, fragment", [
    ("self.hidden_size = kwargs['hidden_size']", MalformedConfigError, "KeyError: 'hidden_size'"),
    ("pass", UnsupportedModelError, "model_type 'my_custom_llm' is not supported"),
])
def test_trust_remote_code_config_failures_are_one_line(tmp_path, capsys, body, error, fragment):
    config = {"model_type": "my_custom_llm", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "configuration_custom.py").write_text(REMOTE_CONFIG.format(body=body))
    with pytest.raises(error, match=fragment):
        tensor_cast.load_model(str(tmp_path), trust_remote_code=True)
    status, _, err = run_cli(capsys, "analyze", str(tmp_path), "--device", "h100", "--trust-remote-code")
    assert_one_line_error(status, err, fragment)


@pytest.mark.parametrize("command", [
    ("serve", "--device", "h100", "--concurrency", "2", "--isl", "16", "--osl", "4"),
    ("search", "--devices", "h100", "--gpus", "1", "--isl", "16", "--osl", "4"),
    ("recommend", "--rate", "1", "--devices", "h100", "--isl", "16", "--osl", "4"),
])
def test_serve_search_and_recommend_take_trust_remote_code(tmp_path, capsys, command):
    """The refusal names --trust-remote-code; serve, search and recommend accept it (the consented config is
    read, then refused for its model_type: remote code ran only with the flag)."""
    config = {"model_type": "my_custom_llm", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "configuration_custom.py").write_text(REMOTE_CONFIG.format(body="pass"))
    name, *options = command
    status, _, err = run_cli(capsys, name, str(tmp_path), *options)
    assert_one_line_error(status, err, "--trust-remote-code")
    status, _, err = run_cli(capsys, name, str(tmp_path), *options, "--trust-remote-code")
    assert_one_line_error(status, err, "model_type 'my_custom_llm' is not supported")


def test_serve_moe_skew_is_checked(capsys):
    status, _, err = run_cli(capsys, "serve", "Qwen/Qwen3-30B-A3B", "--device", "h100", "--concurrency", "2",
                             "--isl", "16", "--osl", "4", "--num-hidden-layers", "1", "--moe-skew", "-1")
    assert_one_line_error(status, err, "moe_skew")


# ==== output files ================================================================================
@pytest.mark.parametrize("where, fragment", [
    ("missing/out.json", "does not exist"),
    ("a_directory", "is a directory"),
    ("a_file/out.json", "is a file, not a directory"),
])
def test_output_paths_are_checked_before_analysis(tmp_path, capsys, where, fragment):
    (tmp_path / "a_directory").mkdir()
    (tmp_path / "a_file").write_text("mine")
    before = sorted(tmp_path.rglob("*"))
    for option in ("--json", "--trace"):
        # an unknown model after the path: had the path not been checked first, the error would name the model
        status, _, err = run_cli(capsys, "analyze", "no-such/model-x", "--device", "h100", option, str(tmp_path / where))
        assert_one_line_error(status, err, option, fragment)
    assert sorted(tmp_path.rglob("*")) == before


def test_dump_graph_onto_a_file_and_bad_grouping_write_nothing(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    status, _, err = run_cli(capsys, "analyze", LLAMA, "--device", "h100", "--dump-graph", str(tmp_path / "taken"))
    assert_one_line_error(status, err, "--dump-graph", "is an existing file")
    status, _, err = run_cli(capsys, "analyze", LLAMA, "--device", "h100", "--dump-graph", str(tmp_path / "d"),
                             "--by", "nope")
    assert_one_line_error(status, err, "unknown grouping 'nope'")
    status, _, err = run_cli(capsys, "analyze", LLAMA, "--device", "h100", "--json", str(tmp_path / "same.json"),
                             "--trace", str(tmp_path / "same.json"))
    assert_one_line_error(status, err, "--json and --trace name the same file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    real_replace = os.replace
    calls = []

    def full_disk(src, dst):  # the second rename fails as on a full disk
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", full_disk)
    files = [(tmp_path / "a.json", "{}"), (tmp_path / "b.json", "{}")]
    with pytest.raises(InvalidArgumentError, match="No space left on device; nothing was written"):
        outputs.write_all(files, [outputs.DumpSet(tmp_path / "dumps", (("00_capture.txt", "graph"),))])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "b.json" not in left and "dumps" not in left and not [n for n in left if n.endswith(".tmp")]


def test_cli_writes_all_outputs_or_none(tmp_path, capsys, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.os, "fdopen", no_space)  # the paths pass their checks; writing fails
    status, _, err = run_cli(capsys, "analyze", LLAMA, "--device", "h100", "--num-hidden-layers", "1",
                             "--json", str(tmp_path / "ok.json"), "--trace", str(tmp_path / "t.json"),
                             "--dump-graph", str(tmp_path / "d"))
    assert_one_line_error(status, err, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_stale_dumps_of_an_earlier_run_are_cleared_and_user_files_kept(tmp_path):
    folder = tmp_path / "dumps"
    folder.mkdir()
    (folder / "notes.md").write_text("mine")
    (folder / "99_old_pass.txt").write_text("stale")
    (folder / outputs.MANIFEST).write_text("99_old_pass.txt\n")
    tensor_cast.analyze(LLAMA, device="h100", batch_size=1, query_len=1, num_hidden_layers=1, dump_graph=folder)
    names = {p.name for p in folder.iterdir()}
    assert "notes.md" in names and "99_old_pass.txt" not in names and "00_capture.txt" in names
    assert set((folder / outputs.MANIFEST).read_text().split()) == names - {"notes.md", outputs.MANIFEST}


# ==== API arguments ================================================================================
@pytest.mark.parametrize("call, fragment", [
    (lambda: tensor_cast.analyze(LLAMA, device="h100", batch_size=1, query_len=1, per_layer_config=[1, 2]),
     "per_layer_config must be a mapping"),
    (lambda: tensor_cast.analyze(LLAMA, device="h100", batch_size=1, query_len=1, fuse="no"),
     "fuse must be True or False, got 'no'"),
    (lambda: tensor_cast.op_cost(torch.ops.aten.mm.default, meta(0, 64), meta(64, 64), device="h100"),
     "tensor argument 0 has shape (0, 64)"),
    (lambda: tensor_cast.op_cost(torch.ops.aten.mm.default, meta(8, 64), meta(64, 64), device="h100",
                                 cuda_graphs="bogus"), "cuda_graphs must be one of auto, always, never"),
    (lambda: tensor_cast.op_cost("aten.nosuchop", meta(8, 64), device="h100"), "no torch op named 'aten.nosuchop'"),
])
def test_api_argument_errors(call, fragment):
    with pytest.raises(TensorCastError) as info:
        call()
    assert fragment in str(info.value)


@pytest.fixture(scope="module")
def symbolic_llama():
    return tensor_cast.analyze(LLAMA, device="h100", symbolic=True, num_hidden_layers=2)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(batch_size=[1, 2, 3], query_len=[1, 2]), "do not broadcast together"),
    (dict(batch_size=[1], query_len=1, metrics=("nope",)), "unknown sweep metric(s) ['nope']; accepted: total_time_s"),
    (dict(batch_size=[-1, 2], query_len=1), "batch_size must be integers >= 1, got -1.0"),
    (dict(batch_size=[float("nan")], query_len=1), "batch_size must be integers >= 1, got nan"),
    (dict(batch_size=[1], query_len=1, context_len=[0.5]), "context_len must be integers >= 0, got 0.5"),
])
def test_sweep_checks_its_points_as_evaluate_does(symbolic_llama, kwargs, fragment):
    with pytest.raises(InvalidArgumentError) as info:
        symbolic_llama.sweep(**kwargs)
    assert fragment in str(info.value)


def test_fit_on_a_symbolic_report_and_top_are_user_errors(symbolic_llama):
    with pytest.raises(InvalidArgumentError, match="fit needs a concrete point"):
        _ = symbolic_llama.fit
    report = symbolic_llama.evaluate(batch_size=1, query_len=1)
    with pytest.raises(InvalidArgumentError, match="top must be an integer >= 1"):
        report.table(top=-1)
    assert len(report.table(top=1).splitlines()) == 3  # header, rule, one row


# ==== device profiles ===========================================================================
def builtin_text() -> str:
    from importlib import resources

    return (resources.files("tensor_cast.backends") / "profiles" / "h100_sxm.toml").read_text()


def renamed(text: str) -> str:
    """The H100 profile as a user's own file (its own name, no aliases)."""
    lines = [line for line in text.splitlines() if not line.startswith("aliases")]
    return "\n".join('name = "my-h100"' if line.startswith("name =") else line for line in lines) + "\n"


@pytest.mark.parametrize("old, new, fragment", [
    ("bandwidth_gbps = ", "bandwidth_gbps = nan #", "bandwidth_gbps must be a finite number >= 0, got nan"),
    ("bandwidth_gbps = ", "bandwidth_gbps = inf #", "bandwidth_gbps must be a finite number >= 0, got inf"),
    ("capacity_gib = ", "capacity_gib = 0 #", "[memory] capacity_gib must be > 0, got 0"),
])
def test_profile_values_must_be_finite_and_positive(old, new, fragment):
    text = renamed(builtin_text())
    assert old in text
    with pytest.raises(InvalidProfileError) as info:
        parse_profile(text.replace(old, new, 1), "mine.toml")
    assert fragment in str(info.value)


def test_profile_needs_sources_for_every_section():
    lines, without, skipping = renamed(builtin_text()).splitlines(), [], False
    for line in lines:  # the profile without its [sources] table
        if line.startswith("["):
            skipping = line.strip() == "[sources]"
        if not skipping:
            without.append(line)
    with pytest.raises(InvalidProfileError, match=r"missing section \[sources\]; required sections: .*sources"):
        parse_profile("\n".join(without), "mine.toml")
    only_compute = "\n".join(without) + '\n[sources]\ncompute = "the datasheet"\n'
    with pytest.raises(InvalidProfileError, match=r"\[sources\] names no source for section\(s\) \[memory\], \[chip\]"):
        parse_profile(only_compute, "mine.toml")


def test_custom_profile_never_passes_for_a_builtin_and_a_directory_is_named(tmp_path, capsys):
    (tmp_path / "h100.toml").write_text(builtin_text().replace("\nbandwidth_gbps = 3350.0", "\nbandwidth_gbps = 3000.0"))
    copy = load_device(str(tmp_path / "h100.toml"))  # a copy with other numbers keeps no built-in name
    assert copy.name == "h100-sxm (h100.toml)" and copy.aliases == () and copy.memory_bandwidth_gbps == 3000
    report = tensor_cast.analyze(LLAMA, device=copy, batch_size=1, query_len=1, num_hidden_layers=1)
    assert report.device == "h100-sxm (h100.toml)"
    from importlib import resources

    own_file = resources.files("tensor_cast.backends") / "profiles" / "h100_sxm.toml"
    assert load_device(str(own_file)) is load_device("h100")  # the built-in's own file, by path
    (tmp_path / "mine.toml").write_text(renamed(builtin_text()))
    assert load_device(str(tmp_path / "mine.toml")).name == "my-h100"
    (tmp_path / "profiles.toml").mkdir()
    status, _, err = run_cli(capsys, "analyze", LLAMA, "--device", str(tmp_path / "profiles.toml"))
    assert_one_line_error(status, err, "is a directory; give a .toml file")


# ==== silently wrong ==========================================================================
@pytest.mark.parametrize("kv_heads, fragment", [
    (5, "num_key_value_heads=5 does not divide num_attention_heads=32; valid: 1, 2, 4, 8, 16, 32"),
    (64, "num_key_value_heads=64 does not divide num_attention_heads=32"),
])
def test_invalid_kv_head_counts_are_refused(tmp_path, kv_heads, fragment):
    with pytest.raises(MalformedConfigError) as info:
        tensor_cast.load_model(llama_dir(tmp_path, num_key_value_heads=kv_heads))
    assert fragment in str(info.value)
    with pytest.raises(MalformedConfigError, match="layer 1: num_key_value_heads=5 does not divide"):
        tensor_cast.load_model(LLAMA, per_layer_config={1: {"num_key_value_heads": 5}})


def test_options_that_do_not_apply_are_warned(capsys):
    report = tensor_cast.analyze(LLAMA, device="h100", batch_size=1, query_len=1, num_hidden_layers=1,
                                 moe_skew=1.0, mla_form="absorbed", quant="fp8", quantize_router=True)
    assert report.warnings == (
        f"moe_skew=1 is ignored: {LLAMA} has no MoE layers",
        f"mla_form='absorbed' is ignored: {LLAMA} has no MLA attention",
        f"quantize_router is ignored: {LLAMA} has no MoE router",
    )
    assert "warning" in report.summary() and json.loads(report.to_json())["warnings"] == list(report.warnings)
    status, out, err = run_cli(capsys, "analyze", LLAMA, "--device", "h100", "--num-hidden-layers", "1",
                               "--moe-skew", "1")
    assert status == 0 and err.strip() == f"tensor-cast: warning: moe_skew=1 is ignored: {LLAMA} has no MoE layers"


def test_context_beyond_max_position_embeddings_is_warned(symbolic_llama):
    limit = registry.lookup(LLAMA).config["max_position_embeddings"]
    assert symbolic_llama.evaluate(batch_size=1, query_len=1, context_len=limit - 1).warnings == ()
    (warning,) = symbolic_llama.evaluate(batch_size=1, query_len=1, context_len=limit).warnings
    assert f"context_len + query_len = {limit + 1} is beyond max_position_embeddings = {limit}" in warning


def test_mtp_on_prefill_gives_no_decode_figure():
    report = tensor_cast.analyze("deepseek-ai/DeepSeek-V3", device="h200", batch_size=1, query_len=64, mtp=1,
                                 num_hidden_layers=1)
    assert report.speculative is None and "output tokens/s" not in report.summary()
    assert any("MTP on a prefill step" in note for note in report.context.notes)


# ==== messages ========================================================================================
def test_did_you_mean_for_models_and_devices():
    with pytest.raises(UnknownModelError) as info:
        tensor_cast.load_model("meta-llama/Lama-3.1-8B")
    message = str(info.value)
    assert "did you mean 'meta-llama/Llama-3.1-8B'" in message
    listed = message.split("ids: ")[1]
    assert listed.startswith("meta-llama/Llama-3.1-8B")  # close matches first
    with pytest.raises(UnknownDeviceError, match="did you mean 'h100-sxm'"):
        load_device("h100sxm")


def test_op_cost_by_name_and_fp8_int8_gemms():
    m, n, k = 16, 4096, 2048
    by_name = tensor_cast.op_cost("aten.mm", meta(m, k), meta(k, n), device="h100")
    assert by_name.flops == 2 * m * n * k == tensor_cast.op_cost(torch.ops.aten.mm, meta(m, k), meta(k, n),
                                                                 device="h100").flops
    fp8 = torch.float8_e4m3fn
    scale = torch.ones((), device="meta")
    scaled = tensor_cast.op_cost("aten._scaled_mm", meta(m, k, dtype=fp8), meta(n, k, dtype=fp8).t(), scale, scale,
                                 out_dtype=torch.bfloat16, device="h100")
    assert scaled.counts.flops == {"fp8": 2 * m * n * k}
    assert scaled.bytes == m * k + k * n + 2 * 4 + m * n * 2  # fp8 operands, two fp32 scales, bf16 output
    int8 = tensor_cast.op_cost(torch.ops.aten._int_mm.default, meta(32, k, dtype=torch.int8),
                               meta(k, n, dtype=torch.int8), device="h100")
    assert int8.counts.flops == {"int8": 2 * 32 * n * k} and int8.bytes == 32 * k + k * n + 32 * n * 4


# ==== a newcomer's first run =====================================================================
def test_registry_configs_trigger_no_deprecation_warning():
    import logging

    from transformers.utils import logging as hf_logging

    from tensor_cast.models.build import build_representative
    from tensor_cast.models.loader import load_spec

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # as a user without TRANSFORMERS_VERBOSITY sees it
    logging.Logger.warning_once.cache_clear()  # transformers warns once per process
    hf_logging.get_logger("transformers").addHandler(handler)
    try:
        for entry in registry.all_entries():
            load_spec(entry.id)
        build_representative(load_spec("google/gemma-3-12b-it"))  # its text_config has no dtype of its own
    finally:
        hf_logging.get_logger("transformers").removeHandler(handler)
        hf_logging.set_verbosity(previous)
    assert not [r.getMessage() for r in records if "deprecated" in r.getMessage()]


def test_progress_is_shown_on_a_terminal_only(capsys):
    from tensor_cast.progress import stderr_progress, step

    with stderr_progress():  # pytest's stderr is not a terminal
        step("tracing")
    assert capsys.readouterr().err == ""
    with stderr_progress(force=True):
        step("tracing")
    assert capsys.readouterr().err.rstrip().endswith("tracing")
