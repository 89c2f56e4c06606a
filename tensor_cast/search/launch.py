"""The engine launch command of a configuration, with flags spelled as the engine spells them.

`launch(model, candidate, engine, max_len)` -> `Launch` (one per role: a single "serve"
instance, or the "prefill" and "decode" workers of a disaggregated pair), each holding the argv,
the YAML a TensorRT-LLM launch needs, and notes (a quantization the engine cannot apply on the
fly needs a checkpoint quantized that way). Every flag comes from `engine_flags.ENGINE_FLAGS`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from ..errors import InvalidArgumentError, choices
from .engine_flags import ENGINE_COMMANDS, ENGINE_FLAGS, KV_CACHE_DTYPE, ONLINE_QUANT, TRTLLM_YAML_KEYS
from .space import Candidate, Variant

ENGINES = tuple(ENGINE_COMMANDS)


@dataclass(frozen=True)
class Launch:
    engine: str
    role: str  # serve | prefill | decode
    instances: int  # how many of these to start
    argv: tuple[str, ...]
    yaml: str = ""  # TensorRT-LLM --extra_llm_api_options file content ("" when none)
    notes: tuple[str, ...] = field(default=())

    @property
    def flags(self) -> list[str]:
        return [a for a in self.argv if a.startswith("--")]

    def shell(self) -> str:
        text = " ".join(shlex.quote(a) for a in self.argv)
        if self.yaml:
            text = f"cat > extra_llm_api_options.yaml <<'EOF'\n{self.yaml}EOF\n{text}"
        return text


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise InvalidArgumentError(f"unknown engine {engine!r}; accepted: {choices(ENGINES)}")
    return engine


def _quant(engine: str, variant: Variant, notes: list[str]) -> list[str]:
    if variant.quant is None or variant.quant == "none":
        return []
    online = ONLINE_QUANT[engine].get(variant.quant)
    if online is None:
        notes.append(f"{variant.quant}: serve a checkpoint quantized as {variant.quant} (the engine reads its "
                     f"quantization_config; no flag)")
        return []
    return ["--quantization", online]


def _kv(engine: str, variant: Variant) -> str | None:
    if variant.kv_cache_dtype is None:
        return None
    table = KV_CACHE_DTYPE[engine]
    if variant.kv_cache_dtype not in table:
        raise InvalidArgumentError(f"{engine} has no KV-cache dtype for {variant.kv_cache_dtype!r}; "
                                   f"accepted: {choices(table)}")
    return table[variant.kv_cache_dtype]


def _one(engine: str, model: str, variant: Variant, max_seqs: int, max_len: int, role: str,
         memory_utilization: float) -> tuple[list[str], str, list[str]]:
    lay = variant.layout
    notes: list[str] = []
    kv = _kv(engine, variant)
    yaml = ""
    if engine == "vllm":
        argv = ["vllm", "serve", model, "--tensor-parallel-size", str(lay.tp)]
        if lay.pp > 1:
            argv += ["--pipeline-parallel-size", str(lay.pp)]
        if lay.dp > 1:
            argv += ["--data-parallel-size", str(lay.dp)]
        if lay.ep > 1:
            argv += ["--enable-expert-parallel"]
        argv += _quant(engine, variant, notes)
        if kv:
            argv += ["--kv-cache-dtype", kv]
        argv += ["--max-num-seqs", str(max_seqs), "--max-model-len", str(max_len),
                 "--gpu-memory-utilization", f"{memory_utilization:g}"]
        if role != "serve":
            argv += ["--kv-transfer-config", json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})]
    elif engine == "sglang":
        argv = ["python", "-m", "sglang.launch_server", "--model-path", model, "--tp-size", str(lay.tp * lay.dp)]
        if lay.dp > 1:  # SGLang: attention DP inside a tp_size group (DeepSeek recipe)
            argv += ["--dp-size", str(lay.dp), "--enable-dp-attention"]
        if lay.ep > 1:
            argv += ["--ep-size", str(lay.ep)]
        if lay.pp > 1:
            argv += ["--pp-size", str(lay.pp)]
        argv += _quant(engine, variant, notes)
        if kv:
            argv += ["--kv-cache-dtype", kv]
        argv += ["--max-running-requests", str(max_seqs), "--context-length", str(max_len),
                 "--mem-fraction-static", f"{memory_utilization:g}"]
        if role != "serve":
            argv += ["--disaggregation-mode", role]
    else:  # trtllm
        argv = ["trtllm-serve", model, "--backend", "pytorch", "--tp_size", str(lay.tp * lay.dp)]
        if lay.pp > 1:
            argv += ["--pp_size", str(lay.pp)]
        if lay.ep > 1:
            argv += ["--ep_size", str(lay.ep)]
        _quant(engine, variant, notes)
        argv += ["--max_batch_size", str(max_seqs), "--max_seq_len", str(max_len),
                 "--kv_cache_free_gpu_memory_fraction", f"{memory_utilization:g}"]
        lines = []
        if lay.dp > 1:
            lines.append("enable_attention_dp: true")
        if kv:
            lines.append(f"kv_cache_config:\n  dtype: {kv}")
        if role == "prefill":  # the context servers' loop, as simulated (engines.py, "Async scheduling")
            lines.append("disable_overlap_scheduler: true")
        if lines:
            yaml = "\n".join(lines) + "\n"
            argv += ["--extra_llm_api_options", "extra_llm_api_options.yaml"]
        if role != "serve":
            notes.append("disaggregated TensorRT-LLM: start these workers with trtllm-serve disaggregated "
                         "(its own config file); the per-worker flags are as shown")
    return argv, yaml, notes


def launch(model: str, candidate: Candidate, engine: str, max_len: int,
           memory_utilization: float = 0.9) -> list[Launch]:
    check_engine(engine)
    roles: list[tuple[str, Variant, int, int]]
    if candidate.prefill is not None and candidate.decode is not None:
        roles = [("prefill", candidate.prefill.variant, candidate.prefill.workers * candidate.replicas,
                  candidate.concurrency),
                 ("decode", candidate.decode.variant, candidate.decode.workers * candidate.replicas,
                  candidate.concurrency)]
    else:
        roles = [("serve", candidate.variant, candidate.replicas, candidate.concurrency)]
    out = []
    for role, variant, instances, seqs in roles:
        argv, yaml, notes = _one(engine, model, variant, seqs, max_len, role, memory_utilization)
        unknown = [a for a in argv if a.startswith("--") and a not in ENGINE_FLAGS[engine]]
        assert not unknown, f"launch flags {unknown} are not in the {engine} flag table"
        assert all(k.split(".")[0] in {key.split(".")[0] for key in TRTLLM_YAML_KEYS}
                   for k in (line.split(":")[0].strip() for line in yaml.splitlines() if not line.startswith(" ")))
        out.append(Launch(engine=engine, role=role, instances=instances, argv=tuple(argv), yaml=yaml,
                          notes=tuple(notes)))
    return out
