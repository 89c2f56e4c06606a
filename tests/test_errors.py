"""Bad input gets one clear line naming the problem and the accepted values, exit status 2."""

from __future__ import annotations

import json
import re

import pytest

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.errors import (
    InvalidArgumentError,
    MalformedConfigError,
    TensorCastError,
    UnknownDeviceError,
    UnknownModelError,
    UnsupportedModelError,
)
from tensor_cast.models import registry

LLAMA = "meta-llama/Llama-3.2-1B"


def run_cli(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("argv, message", [
    (["analyze", "nobody/no-such-model", "--device", "h100"], "unknown model 'nobody/no-such-model'"),
    (["analyze", LLAMA, "--device", "tpu-v9"], "unknown device 'tpu-v9'; known devices: "),
    (["analyze", LLAMA, "--device", "h100", "--batch-size", "0"], "argument --batch-size: 0 is below 1 (accepted: integers >= 1)"),
    (["analyze", LLAMA, "--device", "h100", "--query-len", "-3"], "argument --query-len: -3 is below 1 (accepted: integers >= 1)"),
    (["analyze", LLAMA, "--device", "h100", "--context-len", "-1"], "argument --context-len: -1 is below 0 (accepted: integers >= 0)"),
    (["analyze", LLAMA, "--device", "h100", "--per-layer-config", '{"99": {"skip_mlp": true}}'], "names layer 99"),
    (["analyze", LLAMA, "--device", "h100", "--per-layer-config", "{not json"], "--per-layer-config is neither"),
    (["analyze", LLAMA, "--device", "h100", "--by", "colour"], "unknown grouping 'colour'; accepted: op, kind"),
    (["analyze", LLAMA, "--device", "h100", "--num-hidden-layers", "40"], "num_hidden_layers must be an integer in 1..16"),
])
def test_cli_errors_are_one_line_exit_2(capsys, argv, message):
    status, out, err = run_cli(capsys, *argv)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("tensor-cast: error: ", "tensor-cast analyze: error: "))
    assert message in lines[0]
    assert "Traceback" not in err


def test_unknown_model_lists_registry_ids():
    with pytest.raises(UnknownModelError, match=re.escape(registry.ids()[0])):
        tensor_cast.analyze("no-such-model", device="h100", batch_size=1, query_len=1)


def test_malformed_config_json(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
    with pytest.raises(MalformedConfigError, match=r"config.json is not valid JSON \(line 1"):
        tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1)


def test_config_without_model_type(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 64}')
    with pytest.raises(MalformedConfigError, match="no 'model_type' field"):
        tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1)


def test_directory_without_config(tmp_path):
    with pytest.raises(MalformedConfigError, match="has no config.json"):
        tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1)


def test_unsupported_model_type_lists_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    with pytest.raises(UnsupportedModelError, match="model_type 'bert' is not supported; supported model types: "):
        tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1)


def test_remote_code_is_never_run_without_consent(tmp_path):
    config = {"model_type": "my_custom_llm", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "configuration_custom.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(UnsupportedModelError, match="--trust-remote-code"):
        tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1)


def test_unknown_keyword_lists_accepted_options():
    with pytest.raises(InvalidArgumentError, match=r"unknown option\(s\) \['tensor_parallel'\]"):
        tensor_cast.analyze(LLAMA, device="h100", batch_size=1, query_len=1, tensor_parallel=2)


def test_missing_point_needs_symbolic():
    with pytest.raises(InvalidArgumentError, match="batch_size and query_len are required"):
        tensor_cast.analyze(LLAMA, device="h100")


def test_local_config_directory_is_analyzed(tmp_path):
    from tensor_cast.models import registry

    (tmp_path / "config.json").write_text(json.dumps(registry.lookup(LLAMA).config))
    local = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=2, query_len=16)
    builtin = tensor_cast.analyze(LLAMA, device="h100", batch_size=2, query_len=16)
    assert local.total_flops == builtin.total_flops
    assert local.num_parameters == builtin.num_parameters


def test_errors_share_one_base_class():
    for cls in (UnknownModelError, UnknownDeviceError, MalformedConfigError, InvalidArgumentError):
        assert issubclass(cls, TensorCastError)
