"""`search(...)` and `recommend(...)`: enumerate, prune by memory, simulate, answer.

Stages (each a function below):
1. `_inputs`: resolve and check everything the user passed (devices, GPU counts, engine, SLOs,
   prices) before any work — bad input is one `TensorCastError` naming the value.
2. `_fit_variant` (fanned out, one task per variant = one trace): each variant's memory fit on
   every device — the largest batch at context ISL + OSL (`Report.fit`) — so what cannot hold
   one request is pruned before any simulation.
3. `_simulate_group` (fanned out, one task per device x variant): the serving simulator at every
   concurrency level up to that batch, lowest first. One simulated instance serves every GPU
   count it divides. Screening: once a level misses the SLOs, the higher levels of the same
   instance are not simulated — TTFT and TPOT only rise with concurrency in a closed loop (more
   sequences share every step, and each waits behind more prefills) — and the result lists them
   as screened, with the level that missed and by how much (`Screened`; `screen=False` simulates
   them all; benchmarks/search_speed.py --check-screening checks that none would have met them).
4. `select.py` answers: SLO filter, Pareto frontier, best per device, cost, fewest GPUs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..backends.device import device_names, load_device
from ..errors import DeploymentError, InvalidArgumentError, TensorCastError, UnknownDeviceError, choices
from ..models.spec import ModelSpec
from ..serving.accuracy import accuracy_note
from ..serving.workload import check_range_ratio, longest_request
from .fanout import default_jobs, fan_out
from .launch import ENGINES, check_engine, launch
from .metrics import SLO, Metrics
from .results import FitInfo, Screened, SearchResult
from .select import Row, best_per_device, binding, fewest_gpus, meeting, pareto, per_device_key
from .space import DEFAULT_CONCURRENCY, Candidate, Layout, Pool, Variant, instance_sizes, layouts
from .units import duration, int_list
from .units import prices as parse_prices
from .units import rate as parse_rate

KV_CHOICES = ("auto", "fp8")
REQUESTS_PER_CLIENT = 4  # closed loop: each client sends this many requests (waves to steady state)
MIN_REQUESTS = 16


@dataclass(frozen=True)
class Inputs:
    model: str | ModelSpec
    model_name: str
    devices: tuple[str, ...]
    gpus: tuple[int, ...]
    isl: int
    osl: int
    slo: SLO
    engine: str
    quants: tuple[str | None, ...]
    kv_dtypes: tuple[str | None, ...]
    concurrency: tuple[int, ...]
    prices: Mapping[str, float]
    requests_per_client: int
    cache: bool
    jobs: int
    ray: str | None
    simulator: Callable[..., Any] | None = field(default=None, compare=False)
    disagg: bool = False
    screen: bool = True
    range_ratio: float = 0.0  # prompt / output lengths uniform in [L(1 - r), L(1 + r)] (simulate's range_ratio)
    model_type: str = ""  # the config's model_type: the measured-accuracy line of each recommendation
    engines: tuple[str, ...] = ()  # every engine searched (`engine` is the one being explored); > 1: compared


def _device(name: str) -> str:
    """The canonical name of a built-in profile, or the path of the user's own profile file."""
    try:
        profile = load_device(name)
        return profile.name if profile.name in device_names() else name
    except UnknownDeviceError:
        raise UnknownDeviceError(f"unknown device {name!r}; accepted: {choices(device_names())}") from None


def _split(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(i).strip() for i in items if str(i).strip()]


def _inputs(model: str | ModelSpec, *, devices: Any, gpus: Any, isl: int, osl: int, ttft: Any, tpot: Any,
            engine: str | Sequence[str], quant: Any, kv_cache_dtype: Any, concurrency: Any, prices: Any, slo_stat: str,
            requests_per_client: int, cache: bool, jobs: int | None, ray: str | None,
            simulator: Callable[..., Any] | None, disagg: bool = False, screen: bool = True,
            range_ratio: float = 0.0) -> Inputs:
    from ..api import load_model

    engines = tuple(dict.fromkeys(check_engine(e) for e in _split(engine)))
    if not engines:
        raise InvalidArgumentError(f"no engine given; accepted: {choices(ENGINES)}")
    names = tuple(dict.fromkeys(_device(d) for d in _split(devices)))
    if not names:
        raise InvalidArgumentError(f"no devices given; accepted: {choices(device_names())}")
    for name, value in (("isl", isl), ("osl", osl)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    slo = SLO(ttft_s=_seconds(ttft, "ttft"), tpot_s=_seconds(tpot, "tpot"), stat=slo_stat)
    price_map = prices if isinstance(prices, Mapping) else parse_prices(_split(prices))
    price_map = {_device(k): float(v) for k, v in price_map.items()}
    kv: list[str | None] = []
    for item in _split(kv_cache_dtype) or list(KV_CHOICES):
        if item not in KV_CHOICES:
            raise InvalidArgumentError(f"unknown KV-cache dtype {item!r} to search; accepted: {choices(KV_CHOICES)}")
        kv.append(None if item == "auto" else item)
    from ..deployment.quantization import accepted_quant, scheme_from_hf, served_scheme

    spec = load_model(model)
    stored = scheme_from_hf(spec.quantization).scheme
    quants: list[str | None] = [None]  # the checkpoint's own
    for item in _split(quant):
        if item not in accepted_quant():
            raise InvalidArgumentError(f"unknown quant {item!r}; accepted: {choices(accepted_quant())}")
        if served_scheme(item, stored) != stored:  # else the same configurations as the checkpoint's own
            quants.append(item)
    spread = check_range_ratio(range_ratio)
    longest = longest_request(isl, osl, spread)
    if longest > spec.max_position_embeddings > 0:
        what = f"isl + osl = {isl + osl}" if not spread else \
            f"the longest request, (isl + osl) x {1 + spread:g} = {longest},"
        raise InvalidArgumentError(f"{what} exceeds {spec.name}'s context of {spec.max_position_embeddings} tokens")
    return Inputs(model=model, model_name=spec.name, model_type=spec.family_model_type, devices=names, gpus=int_list(gpus, name="--gpus"),
                  isl=isl, osl=osl, slo=slo, engine=engines[0], engines=engines, quants=tuple(dict.fromkeys(quants)),
                  kv_dtypes=tuple(dict.fromkeys(kv)), concurrency=int_list(concurrency, name="--concurrency"),
                  prices=price_map, requests_per_client=requests_per_client, cache=cache,
                  jobs=jobs or default_jobs(), ray=ray, simulator=simulator, disagg=bool(disagg),
                  screen=bool(screen), range_ratio=spread)


def _seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise InvalidArgumentError(f"{name} must be > 0 seconds, got {value!r}")
        return float(value)
    return duration(str(value), name=f"--{name}")


# ---- 2. memory fit per variant -----------------------------------------------------------------


@dataclass(frozen=True)
class FitTask:
    model: Any
    variant: Variant
    devices: tuple[str, ...]
    isl: int
    osl: int
    cache: bool
    engine: str = "vllm"


def _fit_variant(task: FitTask) -> list[FitInfo]:
    from ..api import analyze

    out = []
    for device in task.devices:
        try:
            sym = analyze(task.model, device=device, symbolic=True, cache=task.cache, engine=task.engine,
                          **task.variant.options())
            decode = sym.evaluate(batch_size=task.variant.layout.dp, query_len=1,
                                  context_len=task.isl + task.osl - 1).fit
            prefill = sym.evaluate(batch_size=task.variant.layout.dp, query_len=min(task.isl, 8192),
                                   context_len=0).fit
        except TensorCastError as exc:
            out.append(FitInfo(device, task.variant, 0, 0.0, str(exc).splitlines()[0]))
            continue
        weights = float(sym.memory.weights_bytes)
        reason = "" if decode.max_batch_size >= 1 and prefill.fits else (
            f"does not fit: {weights / 1e9:.0f} GB weights per GPU, "
            f"{decode.usable_bytes / 1e9:.0f} GB usable")
        out.append(FitInfo(device, task.variant, decode.max_batch_size if not reason else 0, weights, reason))
    return out


# ---- 3. simulation per device x variant --------------------------------------------------------


@dataclass(frozen=True)
class SimTask:
    model: Any
    device: str
    variant: Variant
    concurrencies: tuple[int, ...]
    engine: str
    isl: int
    osl: int
    requests_per_client: int
    cache: bool
    simulator: Callable[..., Any] | None = None
    prefill: Pool | None = None  # disaggregated: the prefill pool (the decode pool in `decode`)
    decode: Pool | None = None
    slo: SLO | None = None  # screening: levels above one that misses it are not simulated
    range_ratio: float = 0.0
    shares: SLO | None = None  # the attainment statistic: the shares of requests within its targets are measured

    @property
    def unit_gpus(self) -> int:
        if self.prefill is not None and self.decode is not None:
            return self.prefill.gpus + self.decode.gpus
        return self.variant.layout.gpus

    def options(self) -> dict[str, Any]:
        if self.prefill is None or self.decode is None:
            return self.variant.options()
        out = {k: v for k, v in self.variant.options().items() if k in ("quant", "kv_cache_dtype")}
        out["disagg"] = {role: {"workers": pool.workers, "tp": pool.variant.layout.tp, "dp": pool.variant.layout.dp,
                                "ep": pool.variant.layout.ep, "pp": pool.variant.layout.pp}
                         for role, pool in (("prefill", self.prefill), ("decode", self.decode))}
        return out

    def describe(self) -> str:
        if self.prefill is None or self.decode is None:
            return self.variant.describe()
        return Candidate(self.device, self.unit_gpus, self.variant, 1, 1, self.prefill, self.decode).describe()


def _simulate_group(task: SimTask) -> list[Metrics | str | Screened]:
    """The metrics at each of `task.concurrencies` (ascending), a one-line failure, or — above a
    level that missed `task.slo` — `Screened` (see the module docstring)."""
    simulate = task.simulator
    if simulate is None:
        from .. import simulate as default_simulate  # type: ignore[attr-defined]

        simulate = default_simulate
    out: list[Metrics | str | Screened] = []
    missed: Screened | None = None
    for c in task.concurrencies:
        if missed is not None:
            out.append(missed)
            continue
        try:
            report = simulate(task.model, device=task.device, engine=task.engine, concurrency=c,
                              num_requests=max(MIN_REQUESTS, task.requests_per_client * c), isl=task.isl,
                              osl=task.osl, range_ratio=task.range_ratio, **task.options())
        except TensorCastError as exc:
            out.append(str(exc).splitlines()[0])
            continue
        tokens_per_s = float(report.output_tokens_per_s)
        metrics = Metrics(mean_ttft_s=float(report.mean_ttft_s), mean_tpot_s=float(report.mean_tpot_s),
                          p90_ttft_s=float(report.p90_ttft_s), p90_tpot_s=float(report.p90_tpot_s),
                          output_tokens_per_s=tokens_per_s, unit_gpus=int(report.num_gpus),
                          requests_per_s=tokens_per_s / task.osl, **_shares(report, task.shares))
        out.append(metrics)
        if task.slo is not None and not task.slo.met(metrics):
            missed = Screened(c, task.slo.violations(metrics))
    return out


def _shares(report: Any, slo: SLO | None) -> dict[str, float]:
    """The shares of `report`'s requests within each target of `slo` and within both (its goodput)."""
    if slo is None or slo.stat != "attainment":
        return {}
    targets = {k: v * 1e3 for k, v in (("ttft", slo.ttft_s), ("tpot", slo.tpot_s)) if v is not None}
    if not targets:
        return {}
    shares = {f"{k}_share": report.goodput({k: v}).share for k, v in targets.items()}
    return {**shares, "joint_share": report.goodput(targets).share}


# ---- the pipeline ------------------------------------------------------------------------------
MIXED_EP_ENGINES = ("sglang", "trtllm")  # split each expert over an EP group's ranks (space.py)



def _variants(spec: ModelSpec, inputs: Inputs, sizes: Iterable[int]) -> list[Variant]:
    found: set[Layout] = set()
    for device in inputs.devices:
        profile = load_device(device)
        for size in sizes:
            found.update(layouts(spec, profile, size, mixed_ep=inputs.engine in MIXED_EP_ENGINES))
    return [Variant(layout, q, kv) for layout in sorted(found) for q in inputs.quants for kv in inputs.kv_dtypes]


def _explore(inputs: Inputs, sizes: Sequence[int], check_counts: bool = True,
             ) -> tuple[list[FitInfo], list[tuple[SimTask, list[Metrics | str | Screened]]]]:
    from ..api import load_model
    from ..cache.store import source_fingerprint

    source_fingerprint()  # once, before the workers fork: every task of this search keys alike
    if inputs.simulator is None:
        import tensor_cast.serving.api  # noqa: F401  (imported once here, inherited by every forked worker)
    spec = load_model(inputs.model)
    variants = _variants(spec, inputs, sizes)
    fit_tasks = [FitTask(inputs.model, v, inputs.devices, inputs.isl, inputs.osl, inputs.cache, inputs.engine)
                 for v in variants]
    fits = [f for group in fan_out(_fit_variant, fit_tasks, jobs=inputs.jobs, ray_address=inputs.ray,
                                   desc="memory fit") for f in group]
    fits += _pipeline_fits(spec, inputs, sizes, fits)
    if check_counts:
        _check_counts(inputs, fits)
    sim_tasks = []
    for f in fits:
        if f.reason:
            continue
        levels = tuple(c for c in inputs.concurrency if c <= f.max_batch) or (f.max_batch,)
        sim_tasks.append(SimTask(inputs.model, f.device, f.variant, levels, inputs.engine, inputs.isl, inputs.osl,
                                 inputs.requests_per_client, inputs.cache, inputs.simulator,
                                 slo=_screening(inputs), range_ratio=inputs.range_ratio, shares=inputs.slo))
    if inputs.disagg:
        sim_tasks += _disagg_tasks(inputs, fits)
    results = fan_out(_simulate_group, sim_tasks, jobs=inputs.jobs, ray_address=inputs.ray, desc="simulate",
                      weights=[len(t.concurrencies) for t in sim_tasks])
    return fits, list(zip(sim_tasks, results))


def _pipeline_fits(spec: ModelSpec, inputs: Inputs, sizes: Iterable[int], fits: Sequence[FitInfo]) -> list[FitInfo]:
    """Pipeline stages inside a node, fitted for the (device, GPU count) at which no other layout
    fits in memory (space.py's module docstring). A PP layout is not even traced when the same
    layout without PP (fitted above) holds more than pp x the device's memory in weights per GPU:
    its heaviest stage holds at least 1/pp of them, so it cannot fit."""
    fitting = {(f.device, f.variant.layout.gpus) for f in fits if not f.reason}
    weights = {(f.device, f.variant): f.weights_bytes for f in fits if f.weights_bytes}
    tasks = []
    for device in inputs.devices:
        profile = load_device(device)
        for size in sizes:
            if (device, size) in fitting:
                continue
            for layout in layouts(spec, profile, size, pp_in_node=True):
                flat = Layout(tp=layout.tp, dp=layout.dp, ep=layout.ep)
                for q in inputs.quants:
                    for kv in inputs.kv_dtypes:
                        base = weights.get((device, Variant(flat, q, kv)))
                        if base is not None and base / layout.pp > profile.memory_bytes:
                            continue
                        tasks.append(FitTask(inputs.model, Variant(layout, q, kv), (device,), inputs.isl, inputs.osl,
                                             inputs.cache, inputs.engine))
    if not tasks:
        return []
    return [f for group in fan_out(_fit_variant, tasks, jobs=inputs.jobs, ray_address=inputs.ray,
                                   desc="memory fit (pipeline stages)") for f in group]


DISAGG_PREFILL_WORKERS = (1, 2, 4)


def _disagg_tasks(inputs: Inputs, fits: Sequence[FitInfo]) -> list[SimTask]:
    """Disaggregated units per device and (quantization, KV dtype): x prefill workers of the
    smallest fitting TP-only layout (prefill is compute-bound: the cheapest instance) + one decode
    worker of every fitting layout, kept when the unit's GPU count divides a requested count.
    Concurrency: the levels the decode worker holds."""
    tasks = []
    by_key: dict[tuple[str, Any, Any], list[FitInfo]] = {}
    for f in fits:
        if not f.reason:
            by_key.setdefault((f.device, f.variant.quant, f.variant.kv_cache_dtype), []).append(f)
    for (device, _, _), group in by_key.items():
        tp_only = [f for f in group if f.variant.layout.dp == 1 and f.variant.layout.ep == 1]
        if not tp_only:
            continue
        prefill = min(tp_only, key=lambda f: f.variant.layout.gpus)
        for decode in group:
            for workers in DISAGG_PREFILL_WORKERS:
                unit = workers * prefill.variant.layout.gpus + decode.variant.layout.gpus
                if not any(n % unit == 0 for n in inputs.gpus):
                    continue
                levels = tuple(c for c in inputs.concurrency if c <= decode.max_batch) or (decode.max_batch,)
                tasks.append(SimTask(inputs.model, device, decode.variant, levels, inputs.engine, inputs.isl,
                                     inputs.osl, inputs.requests_per_client, inputs.cache, inputs.simulator,
                                     prefill=Pool(prefill.variant, workers), decode=Pool(decode.variant, 1),
                                     slo=_screening(inputs), range_ratio=inputs.range_ratio, shares=inputs.slo))
    return tasks


def _screening(inputs: Inputs) -> SLO | None:
    """The SLO simulations are screened by (None: every level is simulated)."""
    has_target = inputs.slo.ttft_s is not None or inputs.slo.tpot_s is not None
    return inputs.slo if inputs.screen and has_target else None


def _check_counts(inputs: Inputs, fits: Sequence[FitInfo]) -> None:
    """A GPU count no fitting layout divides is bad input: name it and the counts that work
    (the fitting instance sizes among powers of two up to twice the largest count asked)."""
    sizes = {f.variant.layout.gpus for f in fits if not f.reason}
    bad = [n for n in inputs.gpus if not any(n % s == 0 for s in sizes)]
    if not bad:
        return
    from ..api import load_model

    limit = 2 * max(inputs.gpus)
    extra = [2**k for k in range(16) if 2**k <= limit and 2**k not in {f.variant.layout.gpus for f in fits}]
    tasks = [FitTask(inputs.model, v, inputs.devices, inputs.isl, inputs.osl, inputs.cache, inputs.engine)
             for v in _variants(load_model(inputs.model), inputs, extra)]
    more = [f for group in fan_out(_fit_variant, tasks, jobs=inputs.jobs, desc="memory fit") for f in group]
    sizes |= {f.variant.layout.gpus for f in more if not f.reason}
    accepted = sorted({k * s for s in sizes for k in range(1, limit + 1) if k * s <= limit})
    raise DeploymentError(
        f"--gpus {','.join(map(str, bad))}: no parallelism of {inputs.model_name} that fits in "
        f"{'/'.join(inputs.devices)} memory divides {'them' if len(bad) > 1 else 'it'}; accepted GPU counts "
        f"(up to {limit}): {choices(accepted, 24) if accepted else 'none: the model fits no layout of up to ' + str(limit) + ' GPUs'}")


def _rows(inputs: Inputs, simulated: Sequence[tuple[SimTask, list[Metrics | str | Screened]]],
          ) -> tuple[list[Row], list[str], list[tuple[Candidate, Screened]]]:
    rows, failures, screened = [], [], []
    for task, results in simulated:
        for c, result in zip(task.concurrencies, results, strict=True):
            if isinstance(result, str):
                failures.append(f"{task.device} {task.describe()} c={c}: {result}")
                continue
            for total in inputs.gpus:
                if total % task.unit_gpus:
                    continue
                candidate = Candidate(device=task.device, gpus=total, variant=task.variant, concurrency=c,
                                      replicas=total // task.unit_gpus, prefill=task.prefill, decode=task.decode,
                                      engine=task.engine if len(inputs.engines) > 1 else "")
                if isinstance(result, Screened):
                    screened.append((candidate, result))
                else:
                    rows.append(Row(candidate, result))
    return rows, failures, screened


def search(model: str | ModelSpec, *, devices: str | Sequence[str], gpus: str | Sequence[int], isl: int, osl: int,
           ttft: Any = None, tpot: Any = None, engine: str = "vllm", quant: str | Sequence[str] | None = None,
           kv_cache_dtype: str | Sequence[str] | None = None, concurrency: Any = DEFAULT_CONCURRENCY,
           prices: Any = None, slo_stat: str = "mean", requests_per_client: int = REQUESTS_PER_CLIENT,
           cache: bool = True, jobs: int | None = None, ray: str | None = None,
           simulator: Callable[..., Any] | None = None, disagg: bool = False, screen: bool = True,
           range_ratio: float = 0.0) -> SearchResult:
    """Every configuration of `model` on `devices` x `gpus` GPUs for requests of `isl` prompt and
    `osl` output tokens: which meet the SLOs (`ttft`, `tpot`: seconds or '300ms'), the Pareto
    frontier of tokens/s per GPU vs tokens/s per user, the best per device, cost per million
    output tokens (`prices`: {device: $/GPU-hour} or 'h100-sxm=2.5/h'), launch commands.

    Searched: TP / PP / attention DP / EP layouts (space.py), the checkpoint's quantization plus
    `quant`, KV-cache dtypes `kv_cache_dtype` (auto, fp8), closed-loop `concurrency` levels per
    instance; configurations that do not fit in memory are pruned before simulating. `jobs`:
    worker processes (default: the CPUs); `ray`: a Ray address ("local" for a local Ray) to run
    the traces and simulations on. `simulator` replaces `tensor_cast.simulate` (same signature).
    `disagg=True` adds disaggregated prefill + decode units (`_disagg_tasks`). `screen=False`
    simulates every concurrency level, also those above a level that already misses the SLOs
    (by default they are listed in `SearchResult.screened`, not simulated: see the module docstring).
    `range_ratio` > 0 draws every request's prompt and output lengths uniformly in [L(1 - r), L(1 + r)]
    (0: fixed lengths, whose closed-loop clients move in lock-step waves that prefill together).
    """
    inputs = _inputs(model, devices=devices, gpus=gpus, isl=isl, osl=osl, ttft=ttft, tpot=tpot, engine=engine,
                     quant=quant, kv_cache_dtype=kv_cache_dtype, concurrency=concurrency, prices=prices,
                     slo_stat=slo_stat, requests_per_client=requests_per_client, cache=cache, jobs=jobs, ray=ray,
                     simulator=simulator, disagg=disagg, screen=screen, range_ratio=range_ratio)
    sizes = sorted({s for n in inputs.gpus for s in instance_sizes(n)})
    fits, rows, failures, screened = _per_engine(inputs, sizes)
    return _answer(inputs, fits, rows, failures, rate=None, screened=screened)


def _per_engine(inputs: Inputs, sizes: Sequence[int], check_counts: bool = True,
                ) -> tuple[list[FitInfo], list[Row], list[str], list[tuple[Candidate, Screened]]]:
    """`_explore` and `_rows` once per engine searched, pooled (each row's candidate names its engine
    when there are several)."""
    fits: list[FitInfo] = []
    rows: list[Row] = []
    failures: list[str] = []
    screened: list[tuple[Candidate, Screened]] = []
    for engine in inputs.engines or (inputs.engine,):
        one = replace(inputs, engine=engine)
        f, simulated = _explore(one, sizes, check_counts=check_counts)
        r, fail, scr = _rows(one, simulated)
        fits += f
        rows += r
        failures += [f"{engine}: {x}" if len(inputs.engines) > 1 else x for x in fail]
        screened += scr
    return fits, rows, failures, screened


def recommend(model: str | ModelSpec, *, rate: Any, devices: str | Sequence[str], isl: int, osl: int,
              ttft: Any = None, tpot: Any = None, max_gpus_per_instance: int = 16, **options: Any) -> SearchResult:
    """The fewest GPUs that serve `rate` requests/s ('20/s') within the SLOs: every instance
    layout up to `max_gpus_per_instance` GPUs is simulated (as in `search`) and replicated until
    its completed-request rate covers `rate`. Other keywords as `search`."""
    per_s = rate if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0 else \
        parse_rate(str(rate), name="--rate")
    sizes = [s for s in (1, 2, 4, 8, 16, 32, 64) if s <= max_gpus_per_instance]
    inputs = _inputs(model, devices=devices, gpus=sizes, isl=isl, osl=osl, ttft=ttft, tpot=tpot,
                     engine=options.pop("engine", "vllm"), quant=options.pop("quant", None),
                     kv_cache_dtype=options.pop("kv_cache_dtype", None),
                     concurrency=options.pop("concurrency", DEFAULT_CONCURRENCY), prices=options.pop("prices", None),
                     slo_stat=options.pop("slo_stat", "mean"),
                     requests_per_client=options.pop("requests_per_client", REQUESTS_PER_CLIENT),
                     cache=options.pop("cache", True), jobs=options.pop("jobs", None), ray=options.pop("ray", None),
                     simulator=options.pop("simulator", None), disagg=options.pop("disagg", False),
                     screen=options.pop("screen", True), range_ratio=options.pop("range_ratio", 0.0))
    if options:
        raise InvalidArgumentError(f"unknown option(s) {sorted(options)} for recommend")
    fits, rows, failures, screened = _per_engine(inputs, sizes, check_counts=False)
    rows = [r for r in rows if r.candidate.replicas == 1]  # one row per simulated unit
    screened = [(c, s) for c, s in screened if c.replicas == 1]
    return _answer(inputs, fits, rows, failures, rate=float(per_s), screened=screened)


def _answer(inputs: Inputs, fits: list[FitInfo], rows: list[Row], failures: list[str],
            rate: float | None, screened: Sequence[tuple[Candidate, Screened]] = ()) -> SearchResult:
    ok = meeting(rows, inputs.slo)
    max_len = longest_request(inputs.isl, inputs.osl, inputs.range_ratio)  # the engine's context limit must admit it
    model_id = inputs.model if isinstance(inputs.model, str) else inputs.model_name
    sized = fewest_gpus(ok, rate) if rate is not None else []
    if rate is not None:
        chosen = [s.row for s in sized[:1]]
        per_device: dict[str, Any] = {}
        for s in sized:
            per_device.setdefault(per_device_key(s.row.candidate), s)
    else:
        best = best_per_device(ok)
        chosen = sorted(best.values(), key=lambda r: -r.metrics.tokens_per_s_per_gpu)
        per_device = dict(best)
    engine = {id(r): r.candidate.engine or inputs.engine for r in chosen}  # the row's own where engines compared
    launches = {id(r): launch(model_id, _scaled(r, sized), engine[id(r)], max_len) for r in chosen}
    accuracy = [accuracy_note(inputs.model_type, r.candidate.device, engine[id(r)],
                              "disagg" if r.candidate.disaggregated else "agg") for r in chosen]
    return SearchResult(
        model=inputs.model_name, engine=",".join(inputs.engines or (inputs.engine,)), isl=inputs.isl, osl=inputs.osl,
        range_ratio=inputs.range_ratio, slo=inputs.slo,
        devices=inputs.devices, gpus=inputs.gpus, prices=dict(inputs.prices), rate=rate, fits=fits, rows=rows,
        meeting=ok, frontier=pareto(ok), frontier_all=pareto(rows), per_device=per_device, chosen=chosen,
        launches=[launches[id(r)] for r in chosen], accuracy=accuracy, sized=sized[:10], failures=failures,
        binding=None if ok else binding(rows, inputs.slo), screened=list(screened))


def _scaled(row: Row, sized: Sequence[Any]) -> Candidate:
    for s in sized:
        if s.row is row:
            return replace(row.candidate, replicas=s.units, gpus=s.gpus)
    return row.candidate

