"""How tokens reach their experts under attention DP + expert parallelism (dp > 1, moe_tp = 1): the
engine's MoE exchange, `all_to_all` or `allgather`, and each engine's default.

`resolve_moe_exchange(value, engine, profile) -> (exchange, reason)`: the user's choice
(`moe_exchange="all_to_all" | "allgather"`, CLI `--moe-exchange`) or the engine's default.

- `all_to_all`: each (token, expert) row goes to its expert's rank and back (`ep_dispatch` /
  `ep_combine`): DeepEP, pplx, TensorRT-LLM's NVLink one-/two-sided kernels on a multi-node NVLink
  domain. Rows exchanged ~ T·k/ep per rank: cheaper than a gather when the top-k is below the EP size.
- `allgather`: every rank all-gathers the tokens of all dp replicas, runs its E/ep experts on the
  pairs routed to them, and reduce-scatters the partial outputs (`ep_allgather` /
  `ep_reducescatter`); rows ~ dp·T per rank whatever the top-k.

Engine defaults (the exchange when the launch names no all-to-all backend):
- vLLM: `ParallelConfig.all2all_backend` defaults to "allgather_reducescatter" (vllm/config/
  parallel.py; the DeepEP / FlashInfer backends are opt-in, `--all2all-backend`).
- SGLang: `--moe-a2a-backend` defaults to "none": with `--enable-dp-attention` the replicas' tokens are
  gathered before the MoE layer and scattered after it (`dp_gather` / `dp_scatter`,
  python/sglang/srt/layers/dp_attention.py); DeepEP is opt-in.
- TensorRT-LLM: `CommunicationFactory.create_strategy` (tensorrt_llm/_torch/modules/fused_moe/
  communication/communication_factory.py) tries the NVLink one-sided / two-sided all-to-all first —
  `MnnvlMemory.supports_mnnvl()` asks only that every NVLink be up, and their workspace is NVLink
  memory shared by the EP group — then DeepEP only when `TRTLLM_CAN_USE_DEEP_EP=1` (off by default:
  NVIDIA/TensorRT-LLM PR #4792, and again after the revert of PR #11532, February 2026), else
  `AllGatherReduceScatter`: all_to_all when the EP group lies in one NVLink domain (an HGX node,
  an NVL72 rack), allgather when it spans nodes over InfiniBand. InferenceMAX's B200 gpt-oss script
  forces the NVLink all-to-all on one node (`TRTLLM_FORCE_ALLTOALL_METHOD=MNNVL` for EP > 1), which
  it could not on a node without it.
- torch (the PyTorch harness, no serving engine): all_to_all, the exchange without replicated work.
Measured (README "Serving accuracy", eighth round; none of these rows fitted anything): H100
TensorRT-LLM DeepSeek-R1 DEP16 decode over two nodes, predicted / measured TPOT 0.60 -> 1.03 at 256
sequences per rank (4,916 clients), 0.56 -> 0.77 at 32 (1,845), 1.20 -> 1.43 at 4 (231) — with a bf16
KV cache, under which the 4,916-client row's decode pool could hold only part of its 256 per rank; with
the recipes' FP8 KV cache (twelfth round) it holds all of them and the all-gather predicts 1.39 there
(one decode step of 4,096 sequences at 1,500 cached tokens: 164 ms with the all-gather, 92 ms with the
all-to-all, against 118 ms measured TPOT; which exchange the recipe's H100 run used is not public); the vLLM
attention-DP rows (MiniMax-M2.5 FP8 and Kimi-K2.5 NVFP4, DP4 + EP4: top-8 over 4 ranks, where the
gather moves half the rows of an all_to_all) 1.00-1.24 -> 0.98-1.17.
"""

from __future__ import annotations

from typing import Any

from ..errors import DeploymentError, choices

EXCHANGES = ("all_to_all", "allgather")

# engine -> its default exchange (None: decided by the device, `_trtllm_default`), and why
ENGINE_DEFAULTS: dict[str, tuple[str | None, str]] = {
    "vllm": ("allgather", "vLLM's default all2all_backend allgather_reducescatter"),
    "sglang": ("allgather", "SGLang's default moe_a2a_backend none: DP attention gathers the tokens"),
    "trtllm": (None, "TensorRT-LLM's CommunicationFactory"),
    "torch": ("all_to_all", "no serving engine: the all-to-all exchange"),
}


def check_moe_exchange(value: Any) -> str | None:
    """None (the engine's default) or one of EXCHANGES; anything else is a DeploymentError."""
    if value is None or value in EXCHANGES:
        return value
    raise DeploymentError(f"unknown moe_exchange {value!r}; accepted: {choices(EXCHANGES)} (default: the engine's)")


def resolve_moe_exchange(value: Any, engine: str, spans_nodes: bool) -> tuple[str, str]:
    """The exchange of attention-DP + EP MoE layers, and why; `spans_nodes`: the EP group crosses
    NVLink domains (the profile's nodes)."""
    chosen = check_moe_exchange(value)
    if chosen is not None:
        return chosen, "moe_exchange given"
    default, why = ENGINE_DEFAULTS.get(engine, ENGINE_DEFAULTS["vllm"])
    if default is not None:
        return default, why
    if spans_nodes:
        return "allgather", f"{why}: AllGatherReduceScatter for an EP group across nodes"
    return "all_to_all", f"{why}: the NVLink all-to-all within one NVLink domain"
