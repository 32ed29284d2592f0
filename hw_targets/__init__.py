"""Hardware targets: per-platform energy tables, one YAML file per platform.

Every number lives in a YAML file next to this module (or in a user's own file), with
its status, source and derivation; this loader only reads and validates them.

Schema (unknown keys at any level are rejected)::

    name: truenorth                  # required; lowercase letters, digits, '.', '_', '-'
    aliases: [tn]                    # optional; other names the platform resolves by
    description: ...                 # required
    kind: neuromorphic               # required; one of KINDS
    connection_op: sop               # required; the op one evaluated connection is priced as
    energy:                          # required, non-empty; keys from OP_KINDS
      sop: {joules: 1.2516e-11, status: back-computed, source: ..., derivation: ...}
    static_power: {watts: ..., status: ..., source: ..., derivation: ...}    # optional
    chip_power: {watts: ..., status: ..., source: ..., derivation: ...}      # optional
    tick: {seconds: 0.001, status: ..., source: ..., derivation: ...}        # optional
    core: {axons: 256, neurons: 256, axon_types: 4, weight_bits: 9,          # optional
           cores_per_chip: 4096, max_delay: 15, status: ..., source: ..., derivation: ...}
    memory:                                                                 # optional
      word: {weight_bits: 32, state_bits: 32, status: ..., source: ..., derivation: ...}
      read: {per_bit: [{bytes: 8192, joules: 1.5625e-13}, ...], status: ..., ...}  # by memory size
      write: {per_bit: [...], status: ..., source: ..., derivation: ...}
      event: {joules: 1.7e-12, status: ..., source: ..., derivation: ...}   # one address event
      included: {terms: [weight_read, ...], status: ..., source: ..., derivation: ...}

Memory prices (``esl-energy --mode memory``): ``read``/``write`` are joules per bit by the
size of the memory accessed (log-log interpolation between the listed sizes, the end
prices outside them); ``word`` gives how many bits a stored weight and a membrane state
take on this platform; ``event`` prices one spike (address event) delivered; ``included``
names the terms of MEMORY_TERMS that the platform's op prices already contain (a
chip-level figure such as TrueNorth's 26 pJ per synaptic event), which are then shown as
included rather than unpriced. A term with neither a price nor an inclusion stays
unpriced: reported, never counted as zero.

Op kinds: ``flop`` (one floating-point operation; the ESL-SNNs GPU convention charges one
per connection), ``mac`` (multiply-accumulate), ``ac`` (accumulate only), ``sop`` (one spike
delivered over one synapse), ``neuron_update`` (one neuron state update).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

__all__ = [
    "KINDS",
    "MEMORY_TERMS",
    "OP_KINDS",
    "STATUSES",
    "CoreGeometry",
    "MemoryTable",
    "OpEnergy",
    "Platform",
    "Provenance",
    "SizedPrice",
    "TargetError",
    "builtin_platforms",
    "load_platform",
    "load_platform_file",
    "load_platforms",
]

OP_KINDS = ("flop", "mac", "ac", "sop", "neuron_update")
STATUSES = ("published", "back-computed", "derived")
KINDS = ("neuromorphic", "gpu", "cpu", "asic")

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
# PyYAML (YAML 1.1) reads 26e-12 or 1e-11 as strings; accept those spellings as numbers.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_CITED = ("status", "source", "derivation")
_TOP_REQUIRED = ("name", "description", "kind", "connection_op", "energy")
_TOP_OPTIONAL = ("aliases", "static_power", "chip_power", "tick", "core", "memory")
#: the terms of memory mode a platform's ``memory.included`` may declare already priced
MEMORY_TERMS = ("neuron", "weight_read", "state_read", "state_write", "events", "static")
_MEMORY_KEYS = ("word", "read", "write", "event", "included")
_WORD_BITS = ("weight_bits", "state_bits")
_MAX_BYTES = 1 << 50  # a petabyte: no on- or off-chip memory of one layer is larger
_CORE_INTS = ("axons", "neurons", "axon_types", "weight_bits", "cores_per_chip", "max_delay")
#: the largest value of each core field: beyond these no crossbar chip exists, and the
#: placement would allocate per-core arrays of absurd size
_CORE_MAX = {"axons": 4096, "neurons": 4096, "axon_types": 16, "weight_bits": 16, "cores_per_chip": 1 << 20,
             "max_delay": 64}


class TargetError(Exception):
    """A bad or unknown hardware target; the message is one line naming the file and field."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True)
class Provenance:
    """Where a number came from."""

    status: str
    source: str
    derivation: str


@dataclass(frozen=True)
class OpEnergy:
    """Energy of one operation of one kind on one platform."""

    kind: str
    joules: float
    status: str
    source: str
    derivation: str


@dataclass(frozen=True)
class CoreGeometry:
    """A TrueNorth-style core: crossbar size, axon types, weight width, cores, max delay."""

    axons: int
    neurons: int
    axon_types: int
    weight_bits: int
    cores_per_chip: int
    max_delay: int

    def __post_init__(self) -> None:
        for field in _CORE_INTS:
            value = getattr(self, field)
            if not _positive_int(value) or value > _CORE_MAX[field]:
                raise TargetError(f"core.{field}: must be an integer in 1..{_CORE_MAX[field]}")


@dataclass(frozen=True)
class SizedPrice:
    """Joules per bit by memory size: ``(bytes, joules per bit)`` points, sizes increasing.
    Between two points the price is interpolated in log-log (access energy grows roughly
    as a power of the array size); outside them the nearest end's price holds."""

    points: tuple[tuple[int, float], ...]

    def per_bit(self, size_bytes: float) -> float:
        sizes = [b for b, _ in self.points]
        prices = [j for _, j in self.points]
        if size_bytes <= sizes[0]:
            return prices[0]
        if size_bytes >= sizes[-1]:
            return prices[-1]
        i = next(k for k in range(1, len(sizes)) if size_bytes <= sizes[k])
        f = (math.log(size_bytes) - math.log(sizes[i - 1])) / (math.log(sizes[i]) - math.log(sizes[i - 1]))
        return math.exp(math.log(prices[i - 1]) + f * (math.log(prices[i]) - math.log(prices[i - 1])))


@dataclass(frozen=True)
class MemoryTable:
    """What memory accesses and spike traffic cost on one platform (``memory:`` in YAML)."""

    weight_bits: int | None
    state_bits: int | None
    read: SizedPrice | None
    write: SizedPrice | None
    event_j: float | None
    included: tuple[str, ...]
    provenance: Mapping[str, Provenance]  # keys: word, read, write, event, included


@dataclass(frozen=True)
class Platform:
    """One hardware target, as read from its YAML file."""

    name: str
    aliases: tuple[str, ...]
    description: str
    kind: str
    connection_op: str
    energy: Mapping[str, OpEnergy]
    static_power_w: float | None
    chip_power_w: float | None
    tick_s: float | None
    core: CoreGeometry | None
    provenance: Mapping[str, Provenance]  # keys: static_power_w, chip_power_w, tick_s, core
    path: str
    memory: MemoryTable | None = None

    def joules_per(self, op: str) -> float:
        """Joules for one operation of kind ``op``; TargetError if this platform has no price."""
        if op not in OP_KINDS:
            raise TargetError(f"{self.path}: {op!r} is not an op kind (known: {', '.join(OP_KINDS)})")
        if op not in self.energy:
            raise TargetError(
                f"{self.path}: energy.{op}: platform {self.name!r} does not price {op!r}; "
                f"it prices: {', '.join(self.energy)}"
            )
        return self.energy[op].joules


class _Reader:
    """Validates one parsed YAML document; every error names the file and the field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, field: str, problem: str) -> TargetError:
        return TargetError(f"{self.path}: {field}: {problem}" if field else f"{self.path}: {problem}")

    def mapping(self, value: Any, field: str, required: Sequence[str],
                optional: Sequence[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            what = "must be a mapping" if field else "top level must be a mapping"
            raise self.fail(field, f"{what}, got {_typename(value)}")
        for key in value:
            if key not in required and key not in optional:
                known = ", ".join([*required, *optional])
                raise self.fail(_join(field, str(key)), f"unknown key (known: {known})")
        for key in required:
            if key not in value:
                raise self.fail(_join(field, key), "missing required field")
        return value

    def text(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not value.strip():
            got = repr(value) if isinstance(value, str) else _typename(value)
            raise self.fail(field, f"must be a non-empty string, got {got}")
        return value.strip()

    def choice(self, value: Any, field: str, allowed: Sequence[str]) -> str:
        if value not in allowed:
            raise self.fail(field, f"must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    def name(self, value: Any, field: str) -> str:
        text = self.text(value, field)
        if not _NAME.fullmatch(text):
            raise self.fail(field, f"{text!r} is not a valid name (lowercase a-z, 0-9, . _ -)")
        return text

    def positive(self, value: Any, field: str) -> float:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        spelled = isinstance(value, str) and _NUMBER.fullmatch(value.strip()) is not None
        number = float(value) if numeric or spelled else math.nan
        if not math.isfinite(number) or number <= 0:
            raise self.fail(field, f"must be a positive finite number, got {value!r}")
        return number

    def provenance(self, node: dict[str, Any], field: str) -> Provenance:
        return Provenance(
            status=self.choice(node["status"], _join(field, "status"), STATUSES),
            source=self.text(node["source"], _join(field, "source")),
            derivation=self.text(node["derivation"], _join(field, "derivation")),
        )

    def quantity(self, value: Any, field: str, unit: str) -> tuple[float, Provenance]:
        node = self.mapping(value, field, (unit, *_CITED))
        return self.positive(node[unit], _join(field, unit)), self.provenance(node, field)

    def platform(self, doc: Any) -> Platform:
        top = self.mapping(doc, "", _TOP_REQUIRED, _TOP_OPTIONAL)
        name = self.name(top["name"], "name")
        raw_aliases = top.get("aliases") or []
        if not isinstance(raw_aliases, list):
            raise self.fail("aliases", f"must be a list of names, got {_typename(raw_aliases)}")
        aliases = tuple(self.name(a, f"aliases[{i}]") for i, a in enumerate(raw_aliases))
        if len({name, *aliases}) != 1 + len(aliases):
            raise self.fail("aliases", "repeats the platform name or another alias")
        energy_node = top["energy"]
        if not isinstance(energy_node, dict) or not energy_node:
            raise self.fail("energy", "must be a non-empty mapping of op kind to price")
        energy: dict[str, OpEnergy] = {}
        for op, node in energy_node.items():
            field = f"energy.{op}"
            self.choice(op, field, OP_KINDS)
            joules, cited = self.quantity(node, field, "joules")
            energy[op] = OpEnergy(op, joules, cited.status, cited.source, cited.derivation)
        connection_op = top["connection_op"]
        if not isinstance(connection_op, str) or connection_op not in energy:
            raise self.fail("connection_op", f"{connection_op!r} has no price under energy "
                            f"(priced: {', '.join(energy)})")
        provenance: dict[str, Provenance] = {}
        scalars: dict[str, float | None] = {}
        for key, unit, attr in (("static_power", "watts", "static_power_w"),
                                ("chip_power", "watts", "chip_power_w"),
                                ("tick", "seconds", "tick_s")):
            scalars[attr] = None
            if key in top:
                scalars[attr], provenance[attr] = self.quantity(top[key], key, unit)
        core = None
        if "core" in top:
            node = self.mapping(top["core"], "core", (*_CORE_INTS, *_CITED))
            for key in _CORE_INTS:
                if not _positive_int(node[key]) or node[key] > _CORE_MAX[key]:
                    raise self.fail(f"core.{key}", f"must be an integer in 1..{_CORE_MAX[key]}, got "
                                                   f"{node[key]!r}")
            core = CoreGeometry(**{key: node[key] for key in _CORE_INTS})
            provenance["core"] = self.provenance(node, "core")
        memory = self.memory(top["memory"]) if "memory" in top else None
        return Platform(
            name=name,
            aliases=aliases,
            description=self.text(top["description"], "description"),
            kind=self.choice(top["kind"], "kind", KINDS),
            connection_op=connection_op,
            energy=MappingProxyType(energy),
            static_power_w=scalars["static_power_w"],
            chip_power_w=scalars["chip_power_w"],
            tick_s=scalars["tick_s"],
            core=core,
            provenance=MappingProxyType(provenance),
            path=self.path,
            memory=memory,
        )

    def memory(self, value: Any) -> MemoryTable:
        node = self.mapping(value, "memory", (), _MEMORY_KEYS)
        if not node:
            raise self.fail("memory", "is empty; give at least one of " + ", ".join(_MEMORY_KEYS))
        cited: dict[str, Provenance] = {}
        bits: dict[str, int | None] = dict.fromkeys(_WORD_BITS)
        if "word" in node:
            word = self.mapping(node["word"], "memory.word", (*_WORD_BITS, *_CITED))
            for key in _WORD_BITS:
                v = word[key]
                if not _positive_int(v) or v > 64:
                    raise self.fail(f"memory.word.{key}", f"must be an integer in 1..64, got {v!r}")
                bits[key] = v
            cited["word"] = self.provenance(word, "memory.word")
        sized: dict[str, SizedPrice | None] = {"read": None, "write": None}
        for key in sized:
            if key in node:
                if "word" not in node:
                    raise self.fail(f"memory.{key}", "needs memory.word (the bits of a weight and a state)")
                sized[key], cited[key] = self.sized(node[key], f"memory.{key}")
        event = None
        if "event" in node:
            event, cited["event"] = self.quantity(node["event"], "memory.event", "joules")
        included: tuple[str, ...] = ()
        if "included" in node:
            inc = self.mapping(node["included"], "memory.included", ("terms", *_CITED))
            terms = inc["terms"]
            if not isinstance(terms, list) or not terms:
                raise self.fail("memory.included.terms", f"must be a non-empty list of terms "
                                f"({', '.join(MEMORY_TERMS)}), got {terms!r}")
            for i, term in enumerate(terms):
                self.choice(term, f"memory.included.terms[{i}]", MEMORY_TERMS)
            if len(set(terms)) != len(terms):
                raise self.fail("memory.included.terms", "repeats a term")
            included = tuple(terms)
            cited["included"] = self.provenance(inc, "memory.included")
        return MemoryTable(bits["weight_bits"], bits["state_bits"], sized["read"], sized["write"], event,
                           included, MappingProxyType(cited))

    def sized(self, value: Any, field: str) -> tuple[SizedPrice, Provenance]:
        node = self.mapping(value, field, ("per_bit", *_CITED))
        raw = node["per_bit"]
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"{field}.per_bit", f"must be a non-empty list of {{bytes, joules}}, "
                            f"got {_typename(raw)}")
        points: list[tuple[int, float]] = []
        for i, item in enumerate(raw):
            where = f"{field}.per_bit[{i}]"
            point = self.mapping(item, where, ("bytes", "joules"))
            size = point["bytes"]
            if not _positive_int(size) or size > _MAX_BYTES:
                raise self.fail(f"{where}.bytes", f"must be an integer in 1..{_MAX_BYTES}, got {size!r}")
            if points and size <= points[-1][0]:
                raise self.fail(f"{where}.bytes", f"sizes must increase; {size} follows {points[-1][0]}")
            points.append((size, self.positive(point["joules"], f"{where}.joules")))
        return SizedPrice(tuple(points)), self.provenance(node, field)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _typename(value: Any) -> str:
    return "nothing (empty)" if value is None else type(value).__name__


def _parse(text: str, path: str) -> Platform:
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise TargetError(f"{path}: {where}invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise TargetError(f"{path}: invalid YAML: {exc}") from None
    return _Reader(path).platform(doc)


def load_platform_file(path: str | os.PathLike[str]) -> Platform:
    """Read and validate one platform YAML file."""
    shown = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetError(f"{shown}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"{shown}: cannot read: {exc}") from None
    return _parse(text, shown)


def builtin_platforms() -> dict[str, Platform]:
    """The platforms shipped with this package, by name."""
    registry: dict[str, Platform] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            _register(registry, _parse(entry.read_text(encoding="utf-8"), str(entry)))
    return {name: p for name, p in registry.items() if p.name == name}


def _register(registry: dict[str, Platform], platform: Platform) -> None:
    """Add a platform under its name and aliases; a name another file uses is an error."""
    for field, key in (("name", platform.name), *(("aliases", a) for a in platform.aliases)):
        other = registry.get(key)
        if other is not None and other is not platform:
            raise TargetError(
                f"{platform.path}: {field}: {key!r} is already used by {other.path} "
                "(give the platform a different name)"
            )
        registry[key] = platform


def _looks_like_path(spec: str | os.PathLike[str]) -> bool:
    if not isinstance(spec, str):
        return True
    return spec.endswith((".yaml", ".yml")) or "/" in spec or os.sep in spec


def _registry(
    files: Sequence[str | os.PathLike[str]],
) -> tuple[dict[str, Platform], dict[Path, Platform]]:
    """Built-in platforms plus ``files``, by name/alias and by resolved file path."""
    registry: dict[str, Platform] = {}
    by_path: dict[Path, Platform] = {}
    for platform in builtin_platforms().values():
        _register(registry, platform)
        by_path[Path(platform.path).resolve()] = platform
    for file in files:
        resolved = Path(file).resolve()
        if resolved not in by_path:
            by_path[resolved] = load_platform_file(file)
            _register(registry, by_path[resolved])
    return registry, by_path


def _unknown(spec: str, registry: Mapping[str, Platform]) -> TargetError:
    platforms = sorted({p.name: p for p in registry.values()}.values(), key=lambda p: p.name)
    known = ", ".join(f"{p.name} ({', '.join(p.aliases)})" if p.aliases else p.name
                      for p in platforms)
    return TargetError(f"unknown platform {spec!r}; known: {known}; or give a path to a .yaml file")


def load_platforms(
    spec: str | Sequence[str | os.PathLike[str]],
    extra_files: Sequence[str | os.PathLike[str]] = (),
) -> list[Platform]:
    """Platforms for ``"gpu,truenorth"`` or a list of names, aliases and YAML paths.

    ``extra_files`` are the user's own YAML files; their platforms resolve by name too.
    Paths in ``spec`` take part in the duplicate-name check. Repeats are returned once.
    """
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    items = [s for s in items if not isinstance(s, str) or s]
    if not items:
        raise TargetError(f"no platform given in {spec!r}")
    paths = [s for s in items if _looks_like_path(s)]
    registry, by_path = _registry([*extra_files, *paths])
    chosen: dict[str, Platform] = {}
    for item in items:
        if _looks_like_path(item):
            platform = by_path[Path(item).resolve()]
        elif (key := str(item).strip().lower()) in registry:
            platform = registry[key]
        else:
            raise _unknown(str(item), registry)
        chosen.setdefault(platform.name, platform)
    return list(chosen.values())


def load_platform(
    name_or_path: str | os.PathLike[str],
    extra_files: Sequence[str | os.PathLike[str]] = (),
) -> Platform:
    """One platform by name, alias or path to a YAML file."""
    return load_platforms([name_or_path], extra_files)[0]
