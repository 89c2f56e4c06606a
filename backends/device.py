"""Device profiles: the data a backend needs about an accelerator, loaded from TOML files.

Owns the profile schema (`DeviceProfile`), the validator (unknown or missing keys, bad values
are errors naming the key and the accepted ones) and the lookup of built-in profiles
(`backends/profiles/*.toml`, by name or alias, case-insensitive) or a user's own file.

Every number carries its unit in its name (`_tflops`, `_gbps`, `_gib`, `_us`) and the file's
`[sources]` table says where it comes from (a datasheet — dense, not sparse — or a measurement).
Peaks of a precision the device lacks are 0; `rate()` then falls back to the next precision the
device runs and says which.

The optional `[interconnect]` table describes how one device reaches its peers, as a two-level
hierarchy (inside a node, between nodes): `Interconnect`. Bandwidths are per device, per
direction, in GB/s (1e9 B/s: H100 NVLink4 is 900 GB/s bidirectional = 450); latencies are the
one-way latency of one transfer step on that link, in µs. This module only holds and validates
the data; the collective cost model (ring/tree algorithms, which level a group uses) lives with
the communication backend. It must not compute times.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import InvalidProfileError, UnknownDeviceError, choices, close_matches, did_you_mean

# section -> {key: required}
SCHEMA: dict[str, dict[str, bool]] = {
    "": {"schema_version": True, "name": True, "display_name": True, "vendor": True, "architecture": True,
         "aliases": False, "notes": False},
    "compute": {"fp64_tflops": False, "fp32_tflops": True, "tf32_tflops": False, "bf16_tflops": True,
                "fp16_tflops": True, "fp8_tflops": True, "int8_tops": True, "fp4_tflops": True},
    "memory": {"capacity_gib": True, "bandwidth_gbps": True, "l2_cache_mib": False},
    "chip": {"compute_units": True, "clock_mhz": False},
    "overhead": {"kernel_launch_us": True, "graph_kernel_us": True, "graph_max_tokens": False},
    "efficiency": {},  # free-form: parameters of the efficiency models (backends/efficiency.py)
    "interconnect": {"gpus_per_node": True, "intra_node": True, "intra_node_bandwidth_gbps": True,
                     "intra_node_latency_us": True, "inter_node": True, "inter_node_bandwidth_gbps": True,
                     "inter_node_latency_us": True, "pcie_bandwidth_gbps": False},
    "sources": {},  # "<section>" or "<section>.<key>" -> where the number comes from
}
SCHEMA_VERSIONS = (1,)
# Sections a profile may leave out even though some of their keys are required when present: a
# profile without [interconnect] describes a single device (multi-device deployments need one).
OPTIONAL_SECTIONS = frozenset({"interconnect", "efficiency"})
UNIT_SUFFIXES = ("_tflops", "_tops", "_gbps", "_gib", "_us", "_mib", "_mhz")

# Link names a profile may use, per level of the hierarchy. HCCS is both: inside an Ascend server,
# and (HCCS-L2 / UnifiedBus) between the servers of a SuperPoD.
INTRA_NODE_LINKS = ("nvlink3", "nvlink4", "nvlink5", "infinity-fabric", "hccs", "pcie-gen4", "pcie-gen5",
                    "pcie-gen6")
INTER_NODE_LINKS = ("infiniband-hdr", "infiniband-ndr", "infiniband-xdr", "roce", "ethernet", "hccs")

# When a device has no rate for a precision, the kernel engines would run instead.
PRECISION_FALLBACK = {"fp4": "fp8", "fp8": "bf16", "int8": "bf16", "bf16": "fp16", "fp16": "bf16",
                      "tf32": "fp32", "vector": "fp32"}
PRECISION_KEY = {"fp4": "fp4_tflops", "fp8": "fp8_tflops", "int8": "int8_tops", "bf16": "bf16_tflops",
                 "fp16": "fp16_tflops", "tf32": "tf32_tflops", "fp32": "fp32_tflops", "vector": "fp32_tflops"}


@dataclass(frozen=True)
class Link:
    """One level of the interconnect: its name, per-device per-direction bandwidth, step latency."""

    name: str
    bandwidth_gbps: float
    latency_us: float


@dataclass(frozen=True)
class Interconnect:
    """How a device reaches its peers: `gpus_per_node` devices share the intra-node link (NVLink,
    Infinity Fabric, HCCS, PCIe); groups larger than a node also cross the inter-node link
    (InfiniBand, RoCE). Bandwidths are per device and per direction (GB/s); latencies in µs.
    A "node" is the domain the intra-node link spans: an HGX board's 8 GPUs, but a whole NVL72
    rack's 72 (GB200 / GB300: the NVLink Switch System joins every GPU of the rack)."""

    gpus_per_node: int
    intra_node: str
    intra_node_bandwidth_gbps: float
    intra_node_latency_us: float
    inter_node: str
    inter_node_bandwidth_gbps: float
    inter_node_latency_us: float
    pcie_bandwidth_gbps: float | None = None  # host link, per direction; None when not given

    @property
    def intra(self) -> Link:
        return Link(self.intra_node, self.intra_node_bandwidth_gbps, self.intra_node_latency_us)

    @property
    def inter(self) -> Link:
        return Link(self.inter_node, self.inter_node_bandwidth_gbps, self.inter_node_latency_us)

    def spans_nodes(self, group_size: int) -> bool:
        """Whether a group of `group_size` consecutive ranks cannot fit in one node."""
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"group_size must be an int >= 1, got {group_size!r}")
        return group_size > self.gpus_per_node


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    display_name: str
    vendor: str
    architecture: str
    compute: Mapping[str, float]
    memory_capacity_gib: float
    memory_bandwidth_gbps: float
    compute_units: int
    kernel_launch_us: float
    graph_kernel_us: float
    graph_max_tokens: int = 512
    l2_cache_mib: float = 0.0
    clock_mhz: float = 0.0
    efficiency: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # the engine's section
    # every engine section of the file (backends/engines.py); `efficiency` is the one in force
    engine_sections: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    engine: str = ""  # the section `efficiency` comes from ("" for a profile without efficiency values)
    engine_requested: str = ""  # the engine asked for (differs from `engine` when a nearer one stood in)
    engine_note: str = ""  # why another engine's section is used, for the report
    interconnect: Interconnect | None = None  # None: the profile has no [interconnect] table
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    aliases: tuple[str, ...] = ()
    notes: str = ""
    path: str = ""

    @property
    def memory_bytes(self) -> float:
        return self.memory_capacity_gib * 2**30

    def rate(self, precision: str) -> tuple[float, str]:
        """(FLOP/s, precision actually used) for a precision class, following the fallback chain."""
        seen = []
        current = precision
        while current not in seen:
            seen.append(current)
            value = self.compute.get(PRECISION_KEY[current], 0.0)
            if value and value > 0:
                return value * 1e12, current
            current = PRECISION_FALLBACK.get(current, "fp32")
        raise InvalidProfileError(f"device {self.name} has no compute rate for {precision} or its fallbacks")

    def require_interconnect(self, purpose: str) -> Interconnect:
        """The interconnect, or an error saying the profile needs one for `purpose` (e.g. 'tp=8')."""
        if self.interconnect is None:
            where = f" ({self.path})" if self.path else ""
            raise InvalidProfileError(
                f"device {self.name}{where} has no [interconnect] table, needed for {purpose}; add one with "
                f"keys: {choices(SCHEMA['interconnect'])}")
        return self.interconnect


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_table(section: str, table: Mapping[str, Any], path: str) -> None:
    allowed = SCHEMA[section]
    where = f"[{section}]" if section else "top level"
    if allowed:
        unknown = [k for k in table if k not in allowed and not (section == "" and isinstance(table[k], dict))]
        if unknown:
            raise InvalidProfileError(f"{path}: unknown key(s) {sorted(unknown)} at {where}; accepted: {choices(allowed)}")
        missing = [k for k, required in allowed.items() if required and k not in table]
        if missing:
            required = [k for k, r in allowed.items() if r]
            raise InvalidProfileError(f"{path}: missing key(s) {missing} at {where}; required: {choices(required)}")
    if section == "sources":
        return  # its values are texts (checked by _check_sources)
    for key, value in table.items():
        if key.endswith(UNIT_SUFFIXES) and (not _is_number(value) or not math.isfinite(value) or value < 0):
            raise InvalidProfileError(f"{path}: {where} {key} must be a finite number >= 0, got {value!r}")


def _check_interconnect(table: Mapping[str, Any], path: str) -> None:
    count = table["gpus_per_node"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidProfileError(f"{path}: [interconnect] gpus_per_node must be an integer >= 1, got {count!r}")
    for key, accepted in (("intra_node", INTRA_NODE_LINKS), ("inter_node", INTER_NODE_LINKS)):
        if table[key] not in accepted:
            raise InvalidProfileError(
                f"{path}: [interconnect] {key} = {table[key]!r} is not a known link; accepted: {choices(accepted)}")
    for key in ("intra_node_bandwidth_gbps", "inter_node_bandwidth_gbps", "pcie_bandwidth_gbps"):
        if key in table and table[key] <= 0:
            raise InvalidProfileError(f"{path}: [interconnect] {key} must be > 0 (GB/s per direction), got {table[key]!r}")


def _check_sources(data: Mapping[str, Any], path: str) -> None:
    sections = [s for s in SCHEMA if s and s != "sources"]
    given = data.get("sources", {})
    for key, value in given.items():
        section, _, sub = key.partition(".")
        if section not in sections:
            raise InvalidProfileError(
                f"{path}: [sources] key {key!r} names no section; accepted: <section> or <section>.<key> "
                f"with section one of {choices(sections)}")
        table = data.get(section, {})
        head, _, rest = sub.partition(".")
        if section == "efficiency" and isinstance(table.get(head), dict):  # efficiency.<engine>[.<key>]
            table, sub, section = table[head], rest, f"efficiency.{head}"
        if sub and sub not in table:
            raise InvalidProfileError(f"{path}: [sources] key {key!r}: [{section}] has no key {sub!r}")
        if not isinstance(value, str) or not value.strip():
            raise InvalidProfileError(f"{path}: [sources] {key} must be a non-empty string naming the source")
    uncovered = [s for s in sections if s in data and not any(k == s or k.startswith(s + ".") for k in given)]
    if uncovered:
        raise InvalidProfileError(
            f"{path}: [sources] names no source for section(s) {', '.join(f'[{s}]' for s in uncovered)}; every "
            "section needs one: <section> = \"datasheet / measurement it comes from\" (or <section>.<key>)")


def _check(data: Mapping[str, Any], path: str) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and (key not in SCHEMA or key == ""):
            raise InvalidProfileError(
                f"{path}: unknown section [{key}]; accepted sections: {choices(k for k in SCHEMA if k)}")
        if key in SCHEMA and key and not isinstance(value, dict):
            raise InvalidProfileError(f"{path}: {key} must be a table [{key}], got {value!r}")
    _check_table("", data, path)
    version = data["schema_version"]
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        raise InvalidProfileError(
            f"{path}: schema_version {version!r} not supported; accepted: {choices(SCHEMA_VERSIONS)}")
    for section in SCHEMA:
        if not section:
            continue
        if section not in data:
            if section not in OPTIONAL_SECTIONS:
                raise InvalidProfileError(f"{path}: missing section [{section}]; required sections: "
                                          f"{choices(s for s in SCHEMA if s and s not in OPTIONAL_SECTIONS)}")
            continue
        _check_table(section, data[section], path)
    for section, key in (("chip", "compute_units"), ("overhead", "graph_max_tokens")):
        value = data[section].get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidProfileError(f"{path}: [{section}] {key} must be an integer >= 1, got {value!r}")
    if "interconnect" in data:
        _check_interconnect(data["interconnect"], path)
    _check_sources(data, path)
    for key in ("name", "display_name", "vendor", "architecture", "notes"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            raise InvalidProfileError(f"{path}: {key} must be a non-empty string, got {data[key]!r}")
    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise InvalidProfileError(f"{path}: aliases must be a list of non-empty strings, got {aliases!r}")
    for section, key in (("memory", "bandwidth_gbps"), ("memory", "capacity_gib"), ("compute", "bf16_tflops")):
        if data[section][key] <= 0:
            raise InvalidProfileError(f"{path}: [{section}] {key} must be > 0, got {data[section][key]!r}")


def _interconnect(table: Mapping[str, Any] | None) -> Interconnect | None:
    if table is None:
        return None
    pcie = table.get("pcie_bandwidth_gbps")
    return Interconnect(
        gpus_per_node=int(table["gpus_per_node"]),
        intra_node=table["intra_node"],
        intra_node_bandwidth_gbps=float(table["intra_node_bandwidth_gbps"]),
        intra_node_latency_us=float(table["intra_node_latency_us"]),
        inter_node=table["inter_node"],
        inter_node_bandwidth_gbps=float(table["inter_node_bandwidth_gbps"]),
        inter_node_latency_us=float(table["inter_node_latency_us"]),
        pcie_bandwidth_gbps=None if pcie is None else float(pcie),
    )


def parse_profile(text: str, path: str = "<profile>", engine: str | None = None) -> DeviceProfile:
    """The profile in `text`, with the efficiency section of `engine` (default: the default engine)
    in force (backends/engines.py)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidProfileError(f"{path}: not valid TOML: {exc}") from None
    _check(data, path)
    from .efficiency import validate_efficiency  # the efficiency models own their parameter table
    from .engines import select_engine, split_sections

    sections = split_sections(data.get("efficiency", {}), path)
    for section, table in sections.items():
        validate_efficiency(table, f"{path} [efficiency.{section}]")
    overhead = data["overhead"]
    return select_engine(DeviceProfile(
        name=data["name"],
        display_name=data["display_name"],
        vendor=data["vendor"],
        architecture=data["architecture"],
        compute=MappingProxyType(dict(data["compute"])),
        memory_capacity_gib=float(data["memory"]["capacity_gib"]),
        memory_bandwidth_gbps=float(data["memory"]["bandwidth_gbps"]),
        l2_cache_mib=float(data["memory"].get("l2_cache_mib", 0.0)),
        compute_units=int(data["chip"]["compute_units"]),
        clock_mhz=float(data["chip"].get("clock_mhz", 0.0)),
        kernel_launch_us=float(overhead["kernel_launch_us"]),
        graph_kernel_us=float(overhead["graph_kernel_us"]),
        graph_max_tokens=int(overhead.get("graph_max_tokens", 512)),
        engine_sections=MappingProxyType({k: MappingProxyType(v) for k, v in sections.items()}),
        interconnect=_interconnect(data.get("interconnect")),
        sources=MappingProxyType(dict(data.get("sources", {}))),
        aliases=tuple(data.get("aliases", ())),
        notes=data.get("notes", ""),
        path=path,
    ), engine)


@cache
def builtin_profiles() -> dict[str, DeviceProfile]:
    """name and aliases (lower-case) -> profile, for every file in backends/profiles/."""
    table: dict[str, DeviceProfile] = {}
    folder = resources.files("tensor_cast.backends") / "profiles"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            profile = parse_profile(item.read_text(), f"profiles/{item.name}")
            for key in (profile.name, *profile.aliases):
                if key.lower() in table:
                    raise InvalidProfileError(f"device name {key!r} used by two profiles")
                table[key.lower()] = profile
    return table


def _builtin_file(profile: DeviceProfile) -> Path:
    return Path(str(resources.files("tensor_cast.backends") / "profiles" / Path(profile.path).name)).resolve()


def device_names() -> list[str]:
    return sorted({p.name for p in builtin_profiles().values()})


def load_device(device: str | DeviceProfile, engine: str | None = None) -> DeviceProfile:
    """A built-in profile by name/alias, or a profile file path, with the efficiency section of
    `engine` in force (None: a given DeviceProfile as it is, else the default engine's)."""
    from .engines import check_engine, select_engine

    if engine is not None:
        engine = check_engine(engine)
    if isinstance(device, DeviceProfile):
        return select_engine(device, engine)
    if not isinstance(device, str) or not device.strip():
        raise UnknownDeviceError(f"device must be a name or a profile path; known devices: {choices(device_names())}")
    profile = builtin_profiles().get(device.strip().lower())
    if profile is not None:
        return select_engine(profile, engine)
    path = Path(device).expanduser()
    if path.suffix == ".toml" or path.exists():
        if path.is_dir():
            raise UnknownDeviceError(f"device profile {path} is a directory; give a .toml file (or a built-in name: "
                                     f"{choices(device_names())})")
        if not path.is_file():
            raise UnknownDeviceError(f"device profile file {path} does not exist")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UnknownDeviceError(f"device profile file {path} cannot be read: {exc}") from None
        profile = parse_profile(text, str(path), engine)
        builtin = builtin_profiles().get(profile.name.lower())
        if builtin is not None and path.resolve() == _builtin_file(builtin):
            return select_engine(builtin, engine)  # the built-in profile's own file, given by path
        if profile.name.lower() in builtin_profiles() or any(a.lower() in builtin_profiles() for a in profile.aliases):
            # a copy of a built-in with other numbers: never shown (or compared) under the built-in's name
            profile = replace(profile, name=f"{profile.name} ({path.name})",
                              aliases=tuple(a for a in profile.aliases if a.lower() not in builtin_profiles()))
        return profile
    known = sorted({key for key in builtin_profiles()} | set(device_names()))
    close = close_matches(device.strip(), known)
    listed = close + [n for n in device_names() if n not in close]
    raise UnknownDeviceError(
        f"unknown device {device!r}; {did_you_mean(device.strip(), known)}known devices: {choices(listed)} "
        "(or a path to a .toml profile)")
