"""SGLang's default `mem_fraction_static`: computed from the GPU's memory, not a constant.

Owns `sglang_mem_fraction_static(...)`, the rule of sgl-project/sglang
`python/sglang/srt/server_args.py::ServerArgs._handle_gpu_memory_settings` when the user does not
pass `--mem-fraction-static`: the fraction of total GPU memory for weights + KV pool is
(gpu_mem - reserved) / gpu_mem, rounded to 3 digits, with reserved (MiB) =

    512                                          constant metadata (attention backends)
    + 1.5 x max(chunked_prefill_size, 2048)      activations of the largest prefill chunk
    + 2 x cuda_graph_max_bs                      CUDA-graph buffers
    + tp_size x pp_size / 8 x 1024               large parallel sizes
    + 3 x cuda_graph_max_bs x dp_size            with DP attention (padding), and
      + 1.5 x cuda_graph_max_bs x dp_size        more when cuda_graph_max_bs > 300
    at least 10 GiB on a GPU of more than 60 GiB,
    + 2 GiB with a speculative draft (EAGLE / MTP).

`cuda_graph_max_bs` follows the same function's GPU-memory tiers: 256 below 4-way TP and 512 from
4-way on for 60-160 GiB GPUs (H100, H200), 512 above (B200). SGLang's `tp_size` counts every rank
of the model (with DP attention, `--tp 8 --dp 8` is tp_size 8): tensor_cast's tp·dp then. The 0.88
that the engine profile carries is the same function's fallback when the GPU memory is unknown.
Plain arithmetic; it must not read a device profile or a trace.
"""

from __future__ import annotations

MIB_PER_GIB = 1024


def sglang_cuda_graph_max_bs(gpu_mem_mib: float, tp_size: int) -> int:
    """`cuda_graph_max_bs` of `_handle_gpu_memory_settings` for GPUs of 60 GiB and more."""
    if gpu_mem_mib < 60 * MIB_PER_GIB:
        raise ValueError(f"the rule is transcribed for GPUs of >= 60 GiB, got {gpu_mem_mib / MIB_PER_GIB:.0f} GiB")
    if gpu_mem_mib < 160 * MIB_PER_GIB:
        return 256 if tp_size < 4 else 512
    return 512


def sglang_mem_fraction_static(gpu_mem_mib: float, *, tp_size: int, pp_size: int = 1, dp_size: int = 1,
                               dp_attention: bool = False, chunked_prefill_size: int = 8192,
                               speculative: bool = False) -> float:
    """SGLang's default mem_fraction_static for this GPU and parallelism (module docstring)."""
    graph_bs = sglang_cuda_graph_max_bs(gpu_mem_mib, tp_size)
    reserved = 512 + max(chunked_prefill_size, 2048) * 1.5 + graph_bs * 2 + tp_size * pp_size / 8 * 1024
    if dp_attention:
        reserved += graph_bs * dp_size * 3
        if graph_bs > 300:
            reserved += graph_bs * dp_size * 1.5
    if gpu_mem_mib > 60 * MIB_PER_GIB:
        reserved = max(reserved, 10 * MIB_PER_GIB)
    if speculative:
        reserved += 2 * MIB_PER_GIB
    return round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)
