"""The serving engines' launch flags this project writes, as each engine spells them, with sources.

One table per engine: flag -> the documentation page that defines it (looked up 2026-11 in the
engines' own docs). `launch.py` writes only flags from this table, and a test checks every flag
of every generated command against it, so a misspelled or invented flag cannot ship.
TensorRT-LLM settings without a `trtllm-serve` flag (attention DP, KV-cache dtype) go in the
YAML file `--extra_llm_api_options` names; its keys are tabled the same way.
"""

from __future__ import annotations

VLLM_ENGINE_ARGS = "https://docs.vllm.ai/en/v0.8.5/serving/engine_args.html"
VLLM_EP = "https://docs.vllm.ai/en/latest/serving/expert_parallel_deployment/"
SGLANG_ARGS = "https://docs.sglang.io/advanced_features/server_arguments.html"
SGLANG_PARALLEL = "https://docs.sglang.io/cookbook/base/reference/server_arguments"
SGLANG_DISAGG = "https://mintlify.com/sgl-project/sglang/backend/launch-server"
TRTLLM_SERVE = "https://nvidia.github.io/TensorRT-LLM/0.18.2/commands/trtllm-serve.html"
TRTLLM_SERVE_1 = "https://nvidia.github.io/TensorRT-LLM/1.0.0rc6/commands/trtllm-serve/trtllm-serve.html"
TRTLLM_BENCH = "https://nvidia.github.io/TensorRT-LLM/1.0.0/commands/trtllm-serve/run-benchmark-with-trtllm-serve.html"

ENGINE_COMMANDS = {
    "vllm": "vllm serve",
    "sglang": "python -m sglang.launch_server",
    "trtllm": "trtllm-serve",
}

ENGINE_FLAGS: dict[str, dict[str, str]] = {
    "vllm": {
        "--tensor-parallel-size": VLLM_ENGINE_ARGS,
        "--pipeline-parallel-size": VLLM_ENGINE_ARGS,
        "--data-parallel-size": VLLM_EP,
        "--enable-expert-parallel": VLLM_EP,
        "--quantization": VLLM_ENGINE_ARGS,
        "--kv-cache-dtype": VLLM_ENGINE_ARGS,
        "--max-num-seqs": VLLM_ENGINE_ARGS,
        "--max-num-batched-tokens": VLLM_ENGINE_ARGS,
        "--gpu-memory-utilization": VLLM_ENGINE_ARGS,
        "--max-model-len": VLLM_ENGINE_ARGS,
        "--kv-transfer-config": "https://docs.ray.io/en/latest/serve/llm/pd-dissagregation.html",
    },
    "sglang": {
        "--model-path": SGLANG_ARGS,
        "--tp-size": SGLANG_PARALLEL,
        "--dp-size": SGLANG_PARALLEL,
        "--ep-size": SGLANG_PARALLEL,
        "--enable-dp-attention": SGLANG_PARALLEL,
        "--pp-size": SGLANG_PARALLEL,
        "--quantization": SGLANG_ARGS,
        "--kv-cache-dtype": SGLANG_ARGS,
        "--max-running-requests": "https://www.mintlify.com/sgl-project/sglang/backend/server-arguments",
        "--mem-fraction-static": SGLANG_ARGS,
        "--chunked-prefill-size": SGLANG_ARGS,
        "--context-length": SGLANG_ARGS,
        "--disaggregation-mode": SGLANG_DISAGG,
    },
    "trtllm": {
        "--backend": TRTLLM_SERVE,
        "--tp_size": TRTLLM_SERVE,
        "--pp_size": TRTLLM_SERVE,
        "--ep_size": TRTLLM_SERVE_1,
        "--max_batch_size": TRTLLM_SERVE,
        "--max_num_tokens": TRTLLM_SERVE,
        "--max_seq_len": TRTLLM_SERVE,
        "--kv_cache_free_gpu_memory_fraction": TRTLLM_SERVE,
        "--extra_llm_api_options": TRTLLM_BENCH,
    },
}

# Keys of TensorRT-LLM's --extra_llm_api_options YAML (LLM API arguments) this project writes.
TRTLLM_YAML_KEYS: dict[str, str] = {
    "enable_attention_dp": TRTLLM_BENCH,
    "kv_cache_config.dtype": "https://nvidia.github.io/TensorRT-LLM/1.0.0/llm-api/reference.html",
    # a disaggregated context server runs without the overlap scheduler (serving/engines.py,
    # "Async scheduling"; TensorRT-LLM examples/disaggregated/README.md ctx_config.yaml)
    "disable_overlap_scheduler": "https://github.com/NVIDIA/TensorRT-LLM/blob/main/examples/disaggregated/README.md",
}

# tensor_cast KV-cache dtype -> each engine's spelling
KV_CACHE_DTYPE: dict[str, dict[str, str]] = {
    "vllm": {"fp8": "fp8", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"},
    "sglang": {"fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"},
    "trtllm": {"fp8": "fp8", "fp8_e4m3": "fp8"},
}

# Quantization an engine applies on the fly to a 16-bit checkpoint (`--quantization`); any other
# scheme needs a checkpoint quantized that way (the command then says so in a comment).
ONLINE_QUANT: dict[str, dict[str, str]] = {
    "vllm": {"fp8": "fp8"},
    "sglang": {"fp8": "fp8"},
    "trtllm": {},
}
