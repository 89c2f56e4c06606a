"""Argument helpers shared by subcommands: checked argparse types and the deployment flags.

Nothing here imports torch or transformers (see `tensor_cast/commands/__init__.py`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError


def int_at_least(minimum: int) -> Any:
    """An argparse type: an integer >= minimum, with an error naming the accepted range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer (accepted: integers >= {minimum})") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum} (accepted: integers >= {minimum})")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def list_of(item: Any) -> Any:
    """An argparse type: a comma-separated list of `item` values (one value is a list of one)."""

    def parse(text: str) -> list[Any]:
        parts = [p.strip() for p in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty value (accepted: comma-separated values, e.g. 1,8,64)")
        return [item(p) for p in parts]

    parse.__name__ = f"comma-separated {getattr(item, '__name__', 'values')}"
    return parse


def add_mtp_arguments(p: argparse.ArgumentParser) -> None:
    """`--mtp` and `--mtp-acceptance` (speculative decoding with the model's MTP layers)."""
    p.add_argument("--mtp", type=int_at_least(0), default=0,
                   help="MTP draft tokens per step (speculative decoding; models shipping MTP layers); default 0")
    p.add_argument("--mtp-acceptance", type=_acceptance,
                   help="draft acceptance in (0, 1]: one rate for every draft, or one per draft (e.g. 0.85,0.7); "
                        "default 0.85 for the first draft, falling at later ones (tensor_cast/speculative.py)")


def _acceptance(text: str) -> float | tuple[float, ...]:
    """`--mtp-acceptance`: one value is the rate of every draft, several are one per draft."""
    values = list_of(finite_float)(text)
    return values[0] if len(values) == 1 else tuple(values)


def finite_float(text: str) -> float:
    """An argparse type: a finite number (range checks stay with the API, which names them)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def per_layer_config(text: str | None) -> dict[str, Any] | None:
    """`--per-layer-config`: a JSON object, inline or in a file."""
    if not text:
        return None
    source = Path(text).read_text() if Path(text).is_file() else text
    try:
        data = json.loads(source)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"--per-layer-config is neither a JSON object nor a JSON file: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InvalidArgumentError("--per-layer-config must be a JSON object {layer: {field: value}}")
    return data


# flag destinations passed to the API as deployment keywords when given
DEPLOYMENT_FLAGS = ("tp", "ep", "dp", "pp", "moe_tp", "quant", "kv_cache_dtype", "nodes", "gpus_per_node", "memory_utilization",
                    "moe_exchange", "keep_unquantized")


def add_deployment_arguments(p: argparse.ArgumentParser) -> None:
    """Deployment flags (tensor_cast/deployment/): parallelism, quantization, cluster shape."""
    from ..deployment.quantization import KV_CACHE_DTYPES, accepted_quant

    g = p.add_argument_group("deployment (world size = tp x dp x pp; times and memory are per GPU)")
    g.add_argument("--tp", type=int_at_least(1), help="tensor-parallel degree (default 1)")
    g.add_argument("--ep", type=int_at_least(1), help="expert-parallel degree: MoE routed experts split over ep groups "
                                         "of the tp x dp GPUs of a stage; --tp 1 --dp 8 --ep 8 is attention DP8 + MoE EP8 "
                                         "(default 1)")
    g.add_argument("--moe-tp", type=int_at_least(1),
                   help="TP degree inside each routed expert; moe-tp x ep must equal tp x dp (default tp x dp / ep "
                        "with --ep, else tp: each DP replica holds every expert); --tp 4 --ep 2 is TensorRT-LLM's "
                        "moe_tp 2 x moe_ep 2, --dp 4 --moe-tp 4 attention DP4 with MoE TP4")
    g.add_argument("--moe-exchange", help="how attention-DP ranks exchange tokens with their experts (dp > 1, "
                                          "moe-tp 1): all_to_all (DeepEP-style dispatch / combine) or allgather "
                                          "(all-gather + reduce-scatter); default the engine's: allgather for vllm "
                                          "and sglang; trtllm all_to_all within one NVLink domain (node or NVL72 rack), "
                                          "allgather across nodes")
    g.add_argument("--dp", type=int_at_least(1), help="data-parallel replicas; --batch-size is split over them (default 1)")
    g.add_argument("--pp", type=int_at_least(1), help="pipeline-parallel stages (default 1)")
    g.add_argument("--quant", help=f"weight/activation quantization: {', '.join(accepted_quant())} "
                                   "(default: the checkpoint's quantization_config, else none)")
    g.add_argument("--kv-cache-dtype", help=f"KV cache dtype: {', '.join(KV_CACHE_DTYPES)} (default: the model dtype)")
    g.add_argument("--nodes", type=int_at_least(1), help="nodes (nodes x gpus-per-node must equal the world size)")
    g.add_argument("--gpus-per-node", type=int_at_least(1), help="GPUs per node (default: the device profile's)")
    g.add_argument("--quantize-lm-head", action="store_true", help="quantize the lm_head too (excluded by default)")
    g.add_argument("--quantize-router", action="store_true", help="quantize MoE routers too (excluded by default)")
    g.add_argument("--keep-unquantized", action="append", metavar="PATTERN",
                   help="leave the modules matching this pattern in the model dtype (fnmatch over module paths; "
                        "repeatable), e.g. 'mtp.*': the MTP block NVIDIA's NVFP4 DeepSeek-R1 checkpoints keep BF16")
    g.add_argument("--memory-utilization", type=float,
                   help="fraction of device memory the engine may use (default 0.9, vLLM's)")


def deployment_options(args: argparse.Namespace) -> dict[str, Any]:
    """The deployment keywords for `tensor_cast.analyze` from parsed flags (only those given)."""
    options = {name: getattr(args, name) for name in DEPLOYMENT_FLAGS if getattr(args, name) is not None}
    for flag in ("quantize_lm_head", "quantize_router"):
        if getattr(args, flag):
            options[flag] = True
    return options


def model_or_spec(args: argparse.Namespace) -> Any:
    """The model argument as the simulator and the search take it: the id, or with --trust-remote-code the
    spec read with consent (their own loading never runs remote code)."""
    if not args.trust_remote_code:
        return args.model
    from ..api import load_model

    return load_model(args.model, trust_remote_code=True)
