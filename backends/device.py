"""Device profiles: the data a backend needs about an accelerator, loaded from TOML files.

Owns the profile schema (`DeviceProfile`), the validator (unknown or missing keys, bad values
are errors naming the key and the accepted ones) and the lookup of built-in profiles
(`backends/profiles/*.toml`, by name or alias, case-insensitive) or a user's own file.

Every number carries its unit in its name (`_tflops`, `_gbps`, `_gib`, `_us`) and the file's
`[sources]` table says where it comes from (a datasheet — dense, not sparse — or a measurement).
Peaks of a precision the device lacks are 0; `rate()` then falls back to the next precision the
device runs and says which.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import InvalidProfileError, UnknownDeviceError, choices

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
    "interconnect": {},  # free-form: validated by the communication model
    "sources": {},  # key -> where the number comes from
}

# When a device has no rate for a precision, the kernel engines would run instead.
PRECISION_FALLBACK = {"fp4": "fp8", "fp8": "bf16", "int8": "bf16", "bf16": "fp16", "fp16": "bf16",
                      "tf32": "fp32", "vector": "fp32"}
PRECISION_KEY = {"fp4": "fp4_tflops", "fp8": "fp8_tflops", "int8": "int8_tops", "bf16": "bf16_tflops",
                 "fp16": "fp16_tflops", "tf32": "tf32_tflops", "fp32": "fp32_tflops", "vector": "fp32_tflops"}


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
    efficiency: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    interconnect: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
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


def _check(data: Mapping[str, Any], path: str) -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in SCHEMA or key == "":
                raise InvalidProfileError(
                    f"{path}: unknown section [{key}]; accepted sections: {choices(k for k in SCHEMA if k)}")
            allowed = SCHEMA[key]
            if allowed:
                unknown = set(value) - set(allowed)
                if unknown:
                    raise InvalidProfileError(
                        f"{path}: unknown key(s) {sorted(unknown)} in [{key}]; accepted: {choices(allowed)}")
            for sub, sub_value in value.items():
                if key != "sources" and sub.endswith(("_tflops", "_tops", "_gbps", "_gib", "_us", "_mib", "_mhz")) and (
                        not isinstance(sub_value, (int, float)) or sub_value < 0):
                    raise InvalidProfileError(f"{path}: [{key}] {sub} must be a number >= 0, got {sub_value!r}")
        elif key not in SCHEMA[""]:
            raise InvalidProfileError(f"{path}: unknown top-level key {key!r}; accepted: {choices(SCHEMA[''])}")
    for section, keys in SCHEMA.items():
        table = data if section == "" else data.get(section, {})
        if section and section not in data and any(keys.values()):
            raise InvalidProfileError(f"{path}: missing section [{section}]")
        missing = [k for k, required in keys.items() if required and k not in table]
        if missing:
            where = f"[{section}]" if section else "top level"
            raise InvalidProfileError(f"{path}: missing key(s) {missing} at {where}")
    if data["schema_version"] != 1:
        raise InvalidProfileError(f"{path}: schema_version {data['schema_version']} not supported (accepted: 1)")
    if data["memory"]["bandwidth_gbps"] <= 0 or data["compute"]["bf16_tflops"] <= 0:
        raise InvalidProfileError(f"{path}: memory bandwidth and bf16 peak must be > 0")


def parse_profile(text: str, path: str = "<profile>") -> DeviceProfile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidProfileError(f"{path}: not valid TOML: {exc}") from None
    _check(data, path)
    from .efficiency import validate_efficiency  # the efficiency models own their parameter table

    validate_efficiency(data.get("efficiency", {}), path)
    overhead = data["overhead"]
    return DeviceProfile(
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
        efficiency=MappingProxyType(dict(data.get("efficiency", {}))),
        interconnect=MappingProxyType(dict(data.get("interconnect", {}))),
        sources=MappingProxyType(dict(data.get("sources", {}))),
        aliases=tuple(data.get("aliases", ())),
        notes=data.get("notes", ""),
        path=path,
    )


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


def device_names() -> list[str]:
    return sorted({p.name for p in builtin_profiles().values()})


def load_device(device: str | DeviceProfile) -> DeviceProfile:
    """A built-in profile by name/alias, or a profile file path."""
    if isinstance(device, DeviceProfile):
        return device
    if not isinstance(device, str) or not device.strip():
        raise UnknownDeviceError(f"device must be a name or a profile path; known devices: {choices(device_names())}")
    profile = builtin_profiles().get(device.strip().lower())
    if profile is not None:
        return profile
    path = Path(device).expanduser()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UnknownDeviceError(f"device profile file {path} does not exist")
        return parse_profile(path.read_text(), str(path))
    raise UnknownDeviceError(
        f"unknown device {device!r}; known devices: {choices(device_names())} (or a path to a .toml profile)")
