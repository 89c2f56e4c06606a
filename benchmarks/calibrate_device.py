"""Measure a CUDA GPU's kernels, fit tensor_cast's efficiency models, write a device profile.

    # on a machine with the GPU (writes the measurements and the fitted profile):
    python benchmarks/calibrate_device.py --base h100-sxm --csv h100.csv --out my_h100.toml [--hf]
    # refit a profile from measurements taken earlier (how the shipped H100 profile was made):
    python benchmarks/calibrate_device.py --from-csv ../shared/calibration/h100/h100_microbench.csv \\
        --base backends/profiles/h100_sxm.toml --out backends/profiles/h100_sxm.toml
    # fit an engine's section from NVIDIA AIConfigurator's tables of that engine's kernels:
    python benchmarks/calibrate_device.py --from-aic ../shared/calibration/aic/h100_sxm --engine vllm \\
        --base backends/profiles/h100_sxm.toml --out backends/profiles/h100_sxm.toml
    # ... from TensorRT-LLM's (AIConfigurator 0.12.0's package tables, converted by aic_package_tables.py; the
    # engine must be the one the tables' framework column names, aic_engine_kernels.py):
    python benchmarks/calibrate_device.py --from-aic /tmp/aic_engines/trtllm/h100_sxm --engine trtllm \
        --base backends/profiles/h100_sxm.toml --out backends/profiles/h100_sxm.toml
    # give a same-die device the section fitted on another (marked as transferred):
    python benchmarks/calibrate_device.py --transfer-engine vllm --from-profile backends/profiles/h100_sxm.toml \\
        --base backends/profiles/h200.toml --out backends/profiles/h200.toml
    # ... or a related one, saying how (how b300 / gb200 / gb300 got B200's sections, torch then vllm):
    python benchmarks/calibrate_device.py --transfer-engine vllm --from-profile backends/profiles/b200.toml \
        --relation "same compute die at higher power" --base backends/profiles/gb200.toml --out backends/profiles/gb200.toml
    # exercise the measuring harness on a CPU with tiny shapes (no GPU, numbers meaningless):
    python benchmarks/calibrate_device.py --dry-run --csv /tmp/dry.csv --no-fit

Method (that of shared/calibration/h100/README.md): each kernel is captured R times into a CUDA
graph (so no host launch gaps, but the in-graph gap counts, as in a graph-captured serving step);
the graph is replayed 7 times, each replay timed with CUDA events; a row is the median replay
divided by R. Weight-like operands (GEMM weights, KV caches) rotate among enough copies that
the working set exceeds twice the L2, as each layer of a real forward reads fresh weights from
HBM. Data are random normal (power, hence clocks, depends on bit patterns: never zeros).

The rows use the CSV format and names of `calibration_cases.py`; the fit is
`calibration_fit.fit_profile`, the same code that produced the shipped H100 numbers. The base
profile supplies the datasheet peaks the fitted fractions refer to (for a GPU without a profile,
copy the closest one and edit its [compute]/[memory]/[chip] first).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from calibration_cases import Row, build_cases, read_rows, write_rows  # noqa: E402

# Shapes of real model projections: name -> (N, K) of y[M, N] = x[M, K] @ W^T.
GEMM_SHAPES: dict[str, tuple[int, int]] = {
    "llama3_8b.qkv_proj": (6144, 4096), "llama3_8b.o_proj": (4096, 4096),
    "llama3_8b.gate_up_proj": (28672, 4096), "llama3_8b.down_proj": (4096, 14336),
    "llama3_8b.lm_head": (128256, 4096),
    "qwen3_32b.qkv_proj": (10240, 5120), "qwen3_32b.gate_up_proj": (51200, 5120), "qwen3_32b.down_proj": (5120, 25600),
    "dsv3.q_a_proj": (1536, 7168), "dsv3.q_b_proj": (24576, 1536), "dsv3.kv_a_proj": (576, 7168),
    "dsv3.kv_b_proj": (32768, 512), "dsv3.o_proj": (7168, 16384), "dsv3.dense_gate_up": (36864, 7168),
    "dsv3.dense_down": (7168, 18432), "dsv3.shared_gate_up": (4096, 7168), "dsv3.shared_down": (7168, 2048),
    "dsv3.router": (256, 7168),
}
FP8_SHAPES = ("llama3_8b.qkv_proj", "llama3_8b.gate_up_proj", "llama3_8b.down_proj", "qwen3_32b.gate_up_proj",
              "dsv3.q_b_proj", "dsv3.o_proj")
M_VALUES = (1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
PREFILL = ((1, 512), (1, 2048), (1, 8192), (4, 2048), (1, 32768))  # (B, S)
DECODE = ((1, 1024), (1, 8192), (16, 2048), (64, 1024), (64, 4096), (128, 4096), (32, 16384))  # (B, L)
TOKENS = (1, 16, 64, 256, 1024, 4096, 16384, 65536)
HIDDEN, INTERMEDIATE, VOCAB = (4096, 7168), (14336, 2048), 128256
HF_PREFILL = ((1, 512), (1, 2048), (8, 1024))
HF_DECODE = ((1, 1024), (16, 2048), (64, 4096))
DRY = {"m": (1, 64), "tokens": (1, 64), "prefill": ((1, 128),), "decode": ((2, 256),),
       "hf_prefill": ((1, 16),), "hf_decode": ((2, 32),),
       "hf_config": {"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 512, "bos_token_id": None,
                     "eos_token_id": None}}


# ---- timing -------------------------------------------------------------------------------------
class GraphTimer:
    """R calls captured in one CUDA graph; 7 replays timed with CUDA events; median / R."""

    def __init__(self, replays: int = 7, target_ms: float = 2.0) -> None:
        import torch

        self.torch, self.replays, self.target_ms = torch, replays, target_ms

    def _reps(self, fn: Callable[[int], object], copies: int) -> int:
        torch = self.torch
        for i in range(max(copies, 2)):  # warm up every copy: cuBLAS handles, compiled kernels, caches
            fn(i % copies)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(8):
            fn(i % copies)
        end.record()
        torch.cuda.synchronize()
        per_ms = start.elapsed_time(end) / 8
        return max(4, min(500, math.ceil(self.target_ms / max(per_ms, 1e-4))))

    def time(self, fn: Callable[[int], object], copies: int = 1) -> tuple[float, float, float]:
        torch = self.torch
        reps = self._reps(fn, copies)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn(0)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for i in range(reps):
                fn(i % copies)
        graph.replay()
        times = []
        for _ in range(self.replays):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) * 1e3 / reps)
        del graph
        return _summary(times)


class WallTimer:
    """--dry-run on a CPU: the same protocol with perf_counter (no graphs, no events)."""

    def __init__(self, replays: int = 3, reps: int = 1) -> None:
        self.replays, self.reps = replays, reps

    def time(self, fn: Callable[[int], object], copies: int = 1) -> tuple[float, float, float]:
        fn(0)
        times = []
        for _ in range(self.replays):
            start = time.perf_counter()
            for i in range(self.reps):
                fn(i % copies)
            times.append((time.perf_counter() - start) * 1e6 / self.reps)
        return _summary(times)


def _summary(times_us: list[float]) -> tuple[float, float, float]:
    ordered = sorted(times_us)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return statistics.median(ordered), pick(0.1), pick(0.9)


# ---- kernels ------------------------------------------------------------------------------------
class Bench:
    def __init__(self, device: str, timer: GraphTimer | WallTimer, l2_bytes: int, dry: bool) -> None:
        import torch

        self.torch, self.device, self.timer, self.l2_bytes, self.dry = torch, device, timer, l2_bytes, dry
        self.dtype = torch.float32 if dry else torch.bfloat16  # CPU bf16 kernels are needlessly slow

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def randn(self, *shape: int, dtype: object = None) -> object:
        return self.torch.randn(*shape, device=self.device, dtype=dtype or self.dtype)

    def copies(self, nbytes: int) -> int:
        """Enough copies of an operand that cycling through them exceeds twice the L2."""
        return 1 if self.dry else max(1, min(64, math.ceil(2 * self.l2_bytes / max(nbytes, 1))))

    def row(self, section: str, name: str, params: dict, dtype: str, fn: Callable[[int], object], copies: int = 1,
            extra: str = "") -> Row:
        median, p10, p90 = self.timer.time(fn, copies)
        return Row(section, name, params, dtype, median, p10, p90, extra)

    def compiled(self, fn: Callable) -> Callable:
        return fn if self.dry else self.torch.compile(fn, dynamic=False)

    # ceilings
    def ceilings(self) -> Iterator[Row]:
        torch = self.torch
        n = 2**20 if self.dry else 2**30
        src, dst = torch.empty(n, dtype=torch.uint8, device=self.device), torch.empty(n, dtype=torch.uint8, device=self.device)
        row = self.row("ceiling", "d2d_copy", {"bytes": n}, "u8", lambda i: dst.copy_(src))
        yield replace(row, extra=f"GBps_rw={2 * n / row.median_us / 1e3:.1f}")
        m = 256 if self.dry else 8192
        for dtype in ("bf16", "fp32") + (() if self.dry else ("fp8",)):
            fn = self._gemm_fn(m, m, m, dtype, copies=1)
            if fn is None:
                continue
            row = self.row("ceiling", f"gemm_{dtype}_{m}", {"m": m}, dtype, fn)
            yield replace(row, extra=f"TFLOPs={2 * m**3 / row.median_us / 1e6:.1f}")

    def _gemm_fn(self, m: int, n: int, k: int, dtype: str, copies: int) -> Callable[[int], object] | None:
        torch = self.torch
        torch.backends.cuda.matmul.allow_tf32 = False
        if dtype == "fp8":
            if self.dry or not hasattr(torch, "_scaled_mm") or torch.cuda.get_device_capability() < (8, 9):
                return None
            m = max(16, math.ceil(m / 16) * 16)  # _scaled_mm needs multiples of 16
            x = self.randn(m, k).to(torch.float8_e4m3fn)
            ws = [self.randn(n, k).to(torch.float8_e4m3fn) for _ in range(copies)]
            one = torch.ones((), device=self.device, dtype=torch.float32)
            return lambda i: torch._scaled_mm(x, ws[i].t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        dt = torch.float32 if dtype == "fp32" else self.dtype
        x = self.randn(m, k, dtype=dt)
        ws = [self.randn(n, k, dtype=dt) for _ in range(copies)]
        return lambda i: torch.nn.functional.linear(x, ws[i])

    def gemms(self) -> Iterator[Row]:
        ms = DRY["m"] if self.dry else M_VALUES
        shapes = dict(list(GEMM_SHAPES.items())[:2]) if self.dry else GEMM_SHAPES
        for name, (n, k) in shapes.items():
            if self.dry:
                n, k = n // 16, k // 16
            for dtype in ("bf16", "fp8") if name in FP8_SHAPES else ("bf16",):
                for m in ms:
                    copies = self.copies(n * k * (1 if dtype == "fp8" else 2))
                    fn = self._gemm_fn(m, n, k, dtype, copies)
                    if fn is not None:
                        mm = max(16, math.ceil(m / 16) * 16) if dtype == "fp8" else m
                        yield self.row("gemm", name, {"M": mm, "N": n, "K": k}, dtype, fn, copies)

    def attention(self) -> Iterator[Row]:
        sdpa = self.torch.nn.functional.scaled_dot_product_attention
        hq, hkv, d = (8, 2, 64) if self.dry else (32, 8, 128)
        for b, s in DRY["prefill"] if self.dry else PREFILL:
            q, k, v = self.randn(b, hq, s, d), self.randn(b, hkv, s, d), self.randn(b, hkv, s, d)
            yield self.row("attn", "llama3_8b.prefill_causal", {"B": b, "S": s, "hq": hq, "hkv": hkv, "d": d}, "bf16",
                           lambda i, q=q, k=k, v=v: sdpa(q, k, v, is_causal=True, enable_gqa=True))
        for b, length in DRY["decode"] if self.dry else DECODE:
            copies = self.copies(2 * b * hkv * length * d * 2)
            q = self.randn(b, hq, 1, d)
            kv = [(self.randn(b, hkv, length, d), self.randn(b, hkv, length, d)) for _ in range(copies)]
            yield self.row("attn", "llama3_8b.decode", {"B": b, "L": length, "hq": hq, "hkv": hkv, "d": d}, "bf16",
                           lambda i, q=q, kv=kv: sdpa(q, *kv[i], enable_gqa=True), copies)

    def elementwise(self) -> Iterator[Row]:
        torch = self.torch
        f32 = torch.float32

        def rms_eager(x: object, w: object) -> object:  # transformers' LlamaRMSNorm
            h = x.to(f32)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5)
            return w * h.to(x.dtype)

        def add_rms(x: object, r: object, w: object) -> object:
            s = x + r
            return rms_eager(s, w), s

        rms_c, add_rms_c = self.compiled(rms_eager), self.compiled(add_rms)
        silu_mul = lambda g, u: torch.nn.functional.silu(g) * u  # noqa: E731
        silu_mul_c = self.compiled(silu_mul)
        for t in DRY["tokens"] if self.dry else TOKENS:
            for h in HIDDEN:
                x, r, w = self.randn(t, h), self.randn(t, h), self.randn(h)
                p = {"T": t, "H": h}
                yield self.row("elem", "rmsnorm_eager", p, "bf16", lambda i, x=x, w=w: rms_eager(x, w))
                yield self.row("elem", "rmsnorm_compiled", p, "bf16", lambda i, x=x, w=w: rms_c(x, w))
                yield self.row("elem", "add_rmsnorm_compiled", p, "bf16", lambda i, x=x, r=r, w=w: add_rms_c(x, r, w))
                yield self.row("elem", "residual_add", p, "bf16", lambda i, x=x, r=r: x + r)
            for inter in INTERMEDIATE:
                g, u = self.randn(t, inter), self.randn(t, inter)
                p = {"T": t, "I": inter}
                yield self.row("elem", "silu_mul_eager", p, "bf16", lambda i, g=g, u=u: silu_mul(g, u))
                yield self.row("elem", "silu_mul_compiled", p, "bf16", lambda i, g=g, u=u: silu_mul_c(g, u))
            vocab = 1024 if self.dry else VOCAB
            table = self.randn(vocab, HIDDEN[0])
            ids = torch.randint(0, vocab, (t,), device=self.device)
            yield self.row("elem", "embedding", {"T": t, "H": HIDDEN[0], "V": vocab}, "bf16",
                           lambda i, ids=ids, table=table: torch.nn.functional.embedding(ids, table))
            rows = min(t, 1024)
            logits = self.randn(rows, vocab)
            yield self.row("elem", "argmax_sample", {"T": rows, "V": vocab}, "bf16", lambda i, z=logits: z.argmax(-1))

    # whole-model rows: a Llama-3.1-8B-shaped model with 4 layers and random weights
    def hf(self, layers: int = 4) -> Iterator[Row]:
        torch = self.torch
        from transformers import AutoModelForCausalLM, LlamaConfig

        from tensor_cast.models import registry

        fields = {k: v for k, v in registry.lookup("meta-llama/Llama-3.1-8B").config.items()
                  if k not in ("architectures", "model_type", "transformers_version")}
        if self.dry:  # a toy model with the same structure: exercises the code path only
            fields.update(DRY["hf_config"])
        config = LlamaConfig(**fields)
        config.num_hidden_layers = layers
        model = AutoModelForCausalLM.from_config(config, dtype=self.dtype, attn_implementation="sdpa").to(self.device)
        model.eval()
        vocab = config.vocab_size
        with torch.no_grad():
            for b, s in DRY["hf_prefill"] if self.dry else HF_PREFILL:
                ids = torch.randint(0, vocab, (b, s), device=self.device)
                params = {"B": b, "S": s, "attn": "sdpa", "layers": layers}
                step = lambda i, ids=ids: model(input_ids=ids, use_cache=False, logits_to_keep=1)  # noqa: E731
                yield self.row("hf", f"llama3_8b.prefill_{layers}layers_graph", params, "bf16", step)
                yield self._eager_row(f"llama3_8b.prefill_{layers}layers_eager", params, step)
            for b, length in DRY["hf_decode"] if self.dry else HF_DECODE:
                ids = torch.randint(0, vocab, (b, length), device=self.device)
                out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
                cache, nxt = out.past_key_values, torch.randint(0, vocab, (b, 1), device=self.device)

                def decode(i: int, cache=cache, nxt=nxt, length=length) -> object:
                    result = model(input_ids=nxt, past_key_values=cache, use_cache=True, logits_to_keep=1)
                    cache.crop(length - cache.get_seq_length())  # negative: drop the appended token (any 5.x)
                    return result

                yield self._eager_row(f"llama3_8b.decode_{layers}layers_eager",
                                      {"B": b, "L": length, "attn": "sdpa", "layers": layers}, decode)

    def _eager_row(self, name: str, params: dict, fn: Callable[[int], object]) -> Row:
        """Eager wall time of a whole step (host launches included): median of 7 synchronized runs."""
        times = []
        for i in range(10):
            self.sync()
            start = time.perf_counter()
            fn(i)
            self.sync()
            if i >= 3:
                times.append((time.perf_counter() - start) * 1e6)
        median, p10, p90 = _summary(times)
        return Row("hf", name, params, "bf16", median, p10, p90, "eager")


def measure(args: argparse.Namespace) -> list[Row]:
    import torch

    if args.dry_run:
        torch.set_num_threads(1)
        bench = Bench("cpu", WallTimer(), l2_bytes=0, dry=True)
        rows = [Row("device", "cpu (dry run)", {"torch": torch.__version__}, "", 0.0)]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU here: use --from-csv to fit measurements taken elsewhere, or --dry-run")
        props = torch.cuda.get_device_properties(0)
        l2 = int(getattr(props, "L2_cache_size", 50 * 2**20))
        bench = Bench("cuda", GraphTimer(), l2_bytes=l2, dry=False)
        rows = [Row("device", props.name, {"sms": props.multi_processor_count, "l2_bytes": l2,
                                           "mem_gib": props.total_memory / 2**30, "torch": torch.__version__}, "", 0.0)]
    torch.manual_seed(0)
    sections = [bench.ceilings, bench.gemms, bench.attention, bench.elementwise]
    if args.hf:
        sections.append(bench.hf)
    for section in sections:
        for row in section():
            rows.append(row)
            print(f"{row.section:8s} {row.name:34s} {row.dtype:5s} {row.params} {row.median_us:10.3f} us", flush=True)
            if args.csv:
                write_rows(args.csv, rows)
    return rows


def fit_and_write(rows: list[Row], args: argparse.Namespace) -> None:
    import calibration_fit as cf

    from tensor_cast.backends.device import load_device

    base = load_device(args.base, "torch")  # the PyTorch-kernel harness measures the torch section
    base_text = Path(base.path).read_text() if Path(base.path).is_file() else _builtin_text(base)
    device_rows = [r for r in rows if r.section == "device"]
    measured_on = device_rows[0].name if device_rows else "unknown GPU"
    if device_rows and "sms" in device_rows[0].params and device_rows[0].params["sms"] != base.compute_units:
        print(f"warning: measured GPU has {device_rows[0].params['sms']} SMs, base profile {base.name} says "
              f"{base.compute_units}: the fitted fractions refer to the base profile's peaks", file=sys.stderr)
    cases, _ = build_cases(rows, l2_bytes=base.l2_cache_mib * 2**20)
    provenance = args.provenance or f"{Path(args.from_csv).name if args.from_csv else 'measured'} on {measured_on}, {date.today()}"
    result = cf.fit_profile(cases, base, provenance=provenance)
    values, sources = dict(result.values), dict(result.sources)
    gaps = cf.launch_gaps(rows, result.profile)
    launch, detail = cf.fit_launch_gap(gaps, result.profile.graph_kernel_us)
    if launch:
        values.update(launch)
        sources["overhead.kernel_launch_us"] = f"{detail} [{provenance}]"
    for key in base.efficiency:
        if f"efficiency.{key}" not in values:
            sources[f"efficiency.{key}"] = "kept from the base profile: not measured by this calibration"
    sources.setdefault("overhead.graph_max_tokens",
                       "engine setting, not measured: vLLM captures CUDA graphs up to 512 tokens by default")
    text = cf.update_profile_text(base_text, values, sources,
                                  header="fitted by benchmarks/calibrate_device.py; provenance in [sources]")
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)


def _tables_of(folder: str, engine: str) -> Any:
    """The kernel-table entry of the engine whose kernels `folder`'s tables timed (their `framework`
    column); exit 2 when that is not the section asked for (a section fitted on another engine's kernels)."""
    import aic_engine_kernels

    try:
        measured = aic_engine_kernels.engine_of(folder)
    except aic_engine_kernels.UnknownEngineTables as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if measured != engine:
        print(f"error: --from-aic {folder} timed {measured}'s kernels, not {engine}'s; pass --engine {measured}",
              file=sys.stderr)
        raise SystemExit(2)
    return aic_engine_kernels.kernels(measured)


def fit_engine_and_write(args: argparse.Namespace) -> None:
    """--from-aic: the engine's section fitted from AIC tables (aic_fit.py), written beside the
    profile's other sections; keys the tables do not inform are kept from the vllm section where the
    profile has one and another engine's section is fitted (the nearest serving-engine kernels: SGLang's
    tables time no MLA module, for one), else from the torch section."""
    import aic_fit
    import aic_tables
    import calibration_fit as cf

    from tensor_cast.backends.device import load_device
    from tensor_cast.backends.engines import check_engine

    engine = check_engine(args.engine)
    torch_base = load_device(args.base, "torch")
    base_text = Path(torch_base.path).read_text() if Path(torch_base.path).is_file() else _builtin_text(torch_base)
    provenance = args.provenance or (f"AIConfigurator {Path(args.from_aic).name} tables ({engine} kernels), "
                                     f"{date.today()}")
    if args.stages:
        refit_stages_and_write(args, engine, base_text, provenance)
        return
    tables = _tables_of(args.from_aic, engine)
    cases = aic_tables.all_cases(args.from_aic, engine=tables)
    start = "vllm" if engine != "vllm" and "vllm" in torch_base.engine_sections else "torch"
    fit = aic_fit.fit_engine(cases, aic_fit.engine_profile(torch_base, {}, start), provenance=provenance,
                             engine=tables)
    values, sources = dict(fit.values), dict(fit.sources)
    kept = ("kept from the torch section (PyTorch-harness fit): the AIC tables do not time this kernel"
            if start == "torch" else f"kept from the vllm section: the {engine} AIC tables do not time this kernel")
    for key, value in torch_base.engine_sections.get(start, {}).items():
        if f"efficiency.{key}" not in values:
            values[f"efficiency.{key}"] = value
            origin = torch_base.sources.get(f"efficiency.{start}.{key}", "") if start != "torch" else ""
            sources[f"efficiency.{key}"] = kept + (f" (vllm's source: {origin})" if origin else "")
    text = cf.update_profile_text(base_text, values, sources, engine=engine, overhead_too=False,
                                  header=f"{engine} kernels: fitted by benchmarks/calibrate_device.py --from-aic; "
                                         f"provenance in [sources]")
    print(aic_fit.error_table(aic_fit.class_errors(cases, aic_fit.engine_profile(torch_base, values, start,
                                                                                 engine=engine))))
    _emit(text, args.out)


# the AIC table family (aic_tables.BUILDERS) each fitting stage's rows come from, by the stage name's first word
STAGE_FAMILIES = {"gemm": "gemm", "attention": "attention", "moe": "moe", "nccl": "collectives",
                  "custom": "collectives", "mla": "mla", "dsa": "dsa", "gdn": "gdn"}


def refit_stages_and_write(args: argparse.Namespace, engine: str, base_text: str, provenance: str) -> None:
    """--from-aic with --stages: refit only the named stages, starting from the profile's shipped
    `engine` section (every other stage's values as shipped); only those stages' keys and sources
    are rewritten."""
    import aic_fit
    import aic_tables
    import calibration_fit as cf

    from tensor_cast.backends.device import load_device

    names = [name.strip() for name in args.stages.split(",") if name.strip()]
    known = {stage.name: stage for stage in aic_fit.STAGES}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        print(f"error: --stages: unknown stage {', '.join(map(repr, unknown)) or '(none given)'}; "
              f"accepted: {', '.join(known)}", file=sys.stderr)
        raise SystemExit(2)
    shipped = load_device(args.base, engine)
    if shipped.engine != engine:
        print(f"error: --stages refits from the shipped [efficiency.{engine}] section, which {args.base} does "
              f"not have; fit the whole section first (without --stages)", file=sys.stderr)
        raise SystemExit(2)
    families = sorted({STAGE_FAMILIES[name.split()[0]] for name in names})
    tables = _tables_of(args.from_aic, engine)
    cases = aic_tables.all_cases(args.from_aic, families, engine=tables)
    fit = aic_fit.fit_engine(cases, shipped, provenance=provenance, stages=[known[name] for name in names],
                             warm_start=args.warm_start, engine=tables)
    sources = {f"efficiency.{key}": shipped.sources[f"efficiency.{engine}.{key}"] for key in shipped.efficiency
               if f"efficiency.{engine}.{key}" in shipped.sources}  # the other stages' entries, as shipped
    sources.update(fit.sources)
    text = cf.update_profile_text(base_text, fit.values, sources, engine=engine, overhead_too=False,
                                  header=f"{engine} kernels: fitted by benchmarks/calibrate_device.py --from-aic; "
                                         f"provenance in [sources]")
    for key, value in sorted(fit.values.items()):
        print(f"{key} = {value} (was {shipped.efficiency.get(key.split('.', 1)[1])})")
    print(aic_fit.error_table(aic_fit.class_errors([c for c in cases if c.stage in names], fit.profile)))
    _emit(text, args.out)


# What a section transferred between architectures cannot carry as a fraction of the target's peaks:
# (source architecture, target architecture) -> {key: (factor, datasheet reason)}. The transfer multiplies
# the key by the factor and says so in its source.
SFU_X2 = ("Blackwell Ultra doubles Blackwell's SFU (MUFU.EX2) throughput at the same tensor-core rate per clock "
          "(NVIDIA technical blog 'Inside NVIDIA Blackwell Ultra: The Chip Powering the AI Factory Era', Table 2: "
          "attention-layer acceleration 10.7 vs 5 TeraExponentials/s; 'Making Softmax More Efficient with NVIDIA "
          "Blackwell Ultra', 2026-02-25: an exp2 loop measured at 4,943 Gop/s on GB200 and 10,024 on GB300): the "
          "softmax work the MMAs do not hide, counted in tensor-FLOP equivalents per score, halves (an upper bound: "
          "the max / scale / convert work on the FP32 cores is not doubled)")
TRANSFER_SCALES: dict[tuple[str, str], dict[str, tuple[float, str]]] = {
    ("blackwell", "blackwell-ultra"): {"attention_prefill_score_flops": (0.5, SFU_X2),
                                       "attention_fp8kv_prefill_score_flops": (0.5, SFU_X2)},
}


def transfer_engine_and_write(args: argparse.Namespace) -> None:
    """--transfer-engine: copy a same-die (or `--relation`) device's fitted section (fractions of this device's
    peaks), every key's source saying `transferred from <device> (<relation>; ...)`; keys the architectures
    differ in (`TRANSFER_SCALES`) are scaled and their sources say by what and why."""
    import calibration_fit as cf

    from tensor_cast.backends.device import load_device
    from tensor_cast.backends.engines import check_engine

    engine = check_engine(args.transfer_engine)
    source = load_device(args.from_profile, engine)
    if source.engine != engine:
        raise SystemExit(f"{args.from_profile} has no [efficiency.{engine}] section to transfer")
    target = load_device(args.base, "torch")
    text = Path(target.path).read_text() if Path(target.path).is_file() else _builtin_text(target)
    values = {f"efficiency.{k}": v for k, v in source.efficiency.items()}
    section_source = source.sources.get(f"efficiency.{engine}", "see the source profile")
    sources = {f"efficiency.{k}": f"transferred from {source.name} ({args.relation}; fractions of {target.name}'s "
                                  f"own peaks, bandwidth and links, unvalidated on {target.name}): "
                                  + source.sources.get(f"efficiency.{engine}.{k}", section_source)
               for k in source.efficiency}
    for k, (factor, why) in TRANSFER_SCALES.get((source.architecture, target.architecture), {}).items():
        if k in source.efficiency:
            values[f"efficiency.{k}"] = float(f"{source.efficiency[k] * factor:.3g}")
            sources[f"efficiency.{k}"] += f"; then x {factor} on {target.name}: {why}"
    text = cf.update_profile_text(text, values, sources, engine=engine, overhead_too=False,
                                  header=f"{engine} kernels: transferred from {source.name}; provenance in [sources]")
    _emit(text, args.out)


def _emit(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text)
        print(f"wrote {out}")
    else:
        print(text)


def _builtin_text(profile: object) -> str:
    from importlib import resources

    folder = resources.files("tensor_cast.backends") / "profiles"
    return (folder / Path(str(profile.path)).name).read_text()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--base", default="h100-sxm", help="profile whose datasheet peaks the fit refers to")
    parser.add_argument("--out", help="write the fitted profile here (default: print it)")
    parser.add_argument("--csv", help="write the measurements here (CSV, calibration_cases format)")
    parser.add_argument("--from-csv", help="fit measurements taken earlier instead of measuring")
    parser.add_argument("--hf", action="store_true", help="also time a 4-layer Llama-3.1-8B-shaped HF model")
    parser.add_argument("--dry-run", action="store_true", help="run the harness on the CPU with tiny shapes")
    parser.add_argument("--no-fit", action="store_true", help="only measure")
    parser.add_argument("--provenance", help="text recorded in [sources] (default: file, GPU, date)")
    parser.add_argument("--from-aic", help="fit an engine section from a folder of AIConfigurator tables (*.csv.gz)")
    parser.add_argument("--engine", default="vllm", help="the engine section --from-aic writes (default vllm)")
    parser.add_argument("--stages", help="with --from-aic: refit only these stages of benchmarks/aic_fit.py "
                                         "(comma-separated names, e.g. 'gemm fp8,nccl all_to_all') from the "
                                         "profile's shipped engine section, rewriting only their keys")
    parser.add_argument("--warm-start", action="store_true",
                        help="with --stages: start each refitted parameter at the shipped section's value "
                             "(a local refit) instead of the stage's default start")
    parser.add_argument("--transfer-engine", help="copy this engine's section from --from-profile into --base")
    parser.add_argument("--from-profile", help="the calibrated profile --transfer-engine copies from")
    parser.add_argument("--relation", default="same compute die",
                        help="how --from-profile's device relates to --base's, recorded in every transferred source "
                             "(e.g. 'same compute die at higher power')")
    args = parser.parse_args(argv)
    if args.from_aic:
        fit_engine_and_write(args)
        return 0
    if args.transfer_engine:
        transfer_engine_and_write(args)
        return 0
    rows = read_rows(args.from_csv) if args.from_csv else measure(args)
    if not args.no_fit:
        fit_and_write(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
