"""keep_unquantized: module patterns left in the model dtype beside the checkpoint's own, the pass that
refuses a pattern naming no module, and the clear errors for bad patterns (API and CLI)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.deployment.config import Deployment
from tensor_cast.errors import DeploymentError, InvalidArgumentError
from tensor_cast.passes.check_kept_unquantized import check_kept_unquantized
from tensor_cast.passes.node_facts import facts
from tensor_cast.passes.quantize_linears import quantize_linears

tc = torch.ops.tensor_cast


class Block(nn.Module):
    def __init__(self, hidden=64, inter=96):
        super().__init__()
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x):
        return self.norm(x + self.down_proj(torch.relu(self.up_proj(x))))


def test_kept_module_stays_a_16_bit_gemm(capture_module):
    gm, _ = capture_module(Block().to(torch.bfloat16), torch.randn(2, 5, 64, dtype=torch.bfloat16))
    gm = quantize_linears(gm, scheme="fp8", not_converted=("down_proj",))
    assert sum(n.target == tc.quant_linear.default for n in gm.graph.nodes) == 1  # up_proj only
    assert sum(n.target == torch._C._nn.linear for n in gm.graph.nodes) == 1  # down_proj left alone
    stored = {n.name: facts(n).stored_bytes for n in gm.graph.nodes if n.op == "placeholder"}
    assert [k for k, v in stored.items() if v == 1.0] == [k for k in stored if "up_proj" in k]
    assert check_kept_unquantized(gm, patterns=("down_proj", "*_proj", "up_*")) is gm  # each names a module


@pytest.mark.parametrize("pattern", ["down_projection", "norm", "mtp.*"])
def test_a_pattern_naming_no_weight_matrix_is_refused(capture_module, pattern):
    """A typo, a module holding only a vector (the norm), or the MTP block of a model run without drafts."""
    gm, _ = capture_module(Block().to(torch.bfloat16), torch.randn(2, 5, 64, dtype=torch.bfloat16))
    with pytest.raises(DeploymentError, match=rf"keep_unquantized pattern {pattern!r} matches no module with weights "
                                              r"\(fnmatch over module paths such as 'up_proj', 'down_proj'"):
        check_kept_unquantized(gm, patterns=(pattern,))


@pytest.mark.parametrize("value", [[""], [3], "  ", None, [["mtp.*"]]])
def test_bad_patterns_are_clear_errors(value):
    with pytest.raises(InvalidArgumentError, match=r"keep_unquantized must be module-name patterns"):
        Deployment(keep_unquantized=value)


def test_one_string_is_one_pattern():
    assert Deployment(keep_unquantized="mtp.*").keep_unquantized == ("mtp.*",)
    assert Deployment(keep_unquantized=["a", " b "]).keep_unquantized == ("a", "b")


def test_patterns_without_quantization_are_refused():
    with pytest.raises(DeploymentError, match=r"keep_unquantized=\['model.layers.0.\*'\] needs quantized weights: "
                                              r"meta-llama/Llama-3.2-1B runs unquantized here"):
        tensor_cast.analyze("meta-llama/Llama-3.2-1B", device="h100", batch_size=1, query_len=1,
                            keep_unquantized=("model.layers.0.*",))


def test_cli_keep_unquantized(capsys):
    args = ["analyze", "meta-llama/Llama-3.2-1B", "--device", "h100", "--batch-size", "4", "--quant", "fp8", "--top", "1"]
    assert main([*args, "--keep-unquantized", "*.mlp.*", "--keep-unquantized", "model.layers.0.self_attn.*"]) == 0
    out = capsys.readouterr().out
    assert "weights fp8, *.mlp.* model.layers.0.self_attn.* unquantized" in out
    assert main([*args, "--keep-unquantized", "*.mlpp.*"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keep_unquantized pattern '*.mlpp.*' matches no module with weights" in err[0]


def test_kept_mlps_cost_their_16_bit_weights():
    """Llama-3.2-1B with fp8 linears but its MLPs kept bf16: the weights grow by one byte per MLP parameter
    (16 layers x 3 x 2048 x 8192, the config's hidden and intermediate sizes), nothing else moves."""
    kw = dict(device="h100", batch_size=4, query_len=1, context_len=1024, quant="fp8")
    fp8 = tensor_cast.analyze("meta-llama/Llama-3.2-1B", **kw)
    kept = tensor_cast.analyze("meta-llama/Llama-3.2-1B", keep_unquantized=("*.mlp.*",), **kw)
    assert kept.memory.weights_bytes - fp8.memory.weights_bytes == pytest.approx(16 * 3 * 2048 * 8192, rel=1e-9)
    assert kept.total_time_s > fp8.total_time_s
    assert kept.to_dict()["deployment"]["keep_unquantized"] == ["*.mlp.*"]
    assert "keep_unquantized" not in fp8.to_dict()["deployment"]
