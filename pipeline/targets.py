"""Device targets: the RAM, flash and runtime of the devices a model may ship to.

The built-in targets live in `pipeline/targets.json`; `edgeaudit targets` lists them, and
`edgeaudit run --target NAME|FILE` (repeatable) names the devices a run must fit. A user's
own file has the same format: one target object, a list of them, or {"targets": [target, ...]}. A
target named like a built-in one replaces it for that run.

A target's fields:
    name                  short name, used with --target (letters, digits, '-', '_')
    title                 what it is, for people
    runtime               "tflite-micro" (microcontrollers) or "litert" (Linux, phones)
    ram_bytes             RAM for the tensor arena and everything else; null: no limit
    flash_bytes           flash for the model and the firmware; null: no limit
    reserved_ram_bytes    RAM the rest of the firmware needs (stack, buffers); the arena gets the rest
    reserved_flash_bytes  flash the rest of the firmware needs (interpreter, kernels, application)
    source                where the figures come from
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.errors import InputError

TARGETS_FILE = Path(__file__).with_name("targets.json")
RUNTIMES = {"tflite-micro": "TensorFlow Lite Micro (PyPI tflite-micro), as on a microcontroller",
            "litert": "LiteRT (ai-edge-litert), as on Linux and phones"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FIELDS = ("name", "title", "runtime", "ram_bytes", "flash_bytes", "reserved_ram_bytes", "reserved_flash_bytes",
           "source")


@dataclass(frozen=True)
class DeviceTarget:
    name: str
    title: str
    runtime: str
    ram_bytes: int | None
    flash_bytes: int | None
    reserved_ram_bytes: int
    reserved_flash_bytes: int
    source: str

    @property
    def is_microcontroller(self) -> bool:
        return self.runtime == "tflite-micro"

    def to_json(self) -> dict:
        return asdict(self)

    def fit(self, deployment: dict) -> dict:
        """Does one variant fit? `deployment`: its entry in deployment.json (`flash_bytes`,
        `runs_in_litert`, `microcontroller`). Returns {"fits": bool, "why_not": [reasons]}."""
        why_not = []
        if self.is_microcontroller:
            micro = deployment.get("microcontroller") or {}
            if not micro.get("supported"):
                why_not.append(f"does not run on {self.runtime}: {micro.get('first_unsupported') or 'not measured'}")
            elif self.ram_bytes is not None and micro["arena_bytes"] + self.reserved_ram_bytes > self.ram_bytes:
                why_not.append(f"arena {_kb(micro['arena_bytes'])} + {_kb(self.reserved_ram_bytes)} reserved > "
                               f"{_kb(self.ram_bytes)} RAM")
        elif not deployment.get("runs_in_litert"):
            why_not.append("does not run in LiteRT")
        flash = deployment.get("flash_bytes")
        if self.flash_bytes is not None and flash is not None and flash + self.reserved_flash_bytes > self.flash_bytes:
            why_not.append(f"model {_kb(flash)} + {_kb(self.reserved_flash_bytes)} reserved > {_kb(self.flash_bytes)} flash")
        return {"fits": not why_not, "why_not": why_not}


def _kb(value: int) -> str:
    return f"{value / 1024:,.1f} KB"


def builtin_targets() -> dict[str, DeviceTarget]:
    return {target.name: target for target in load_targets(TARGETS_FILE)}


def load_targets(path: str | Path) -> list[DeviceTarget]:
    """Every target in a targets file; raises InputError naming the file, the target and the field."""
    path = Path(path)
    source = str(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("the target file does not exist", source=source,
                         fix="check the path, or name a built-in target (`edgeaudit targets` lists them)") from None
    except OSError as error:  # a folder, or a file that cannot be read
        raise InputError(f"the target file cannot be read ({error.strerror or error})", source=source,
                         fix="give the path of a readable .json target file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"the target file is not valid JSON ({error})", source=source,
                         fix=f"write one target object or {{\"targets\": [...]}} in the format of {TARGETS_FILE.name} "
                             "(`edgeaudit targets --format json` prints it)") from None
    entries = (document.get("targets") if isinstance(document, dict) and "targets" in document
               else document if isinstance(document, list) else [document])
    if not isinstance(entries, list) or not entries:
        raise InputError("\"targets\" must be a non-empty list of target objects", source=source,
                         fix="see `edgeaudit targets --format json` for the format")
    targets = [_target(entry, source, position) for position, entry in enumerate(entries, start=1)]
    names = [target.name for target in targets]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InputError(f"target name(s) {', '.join(duplicated)} appear more than once", source=source,
                         fix="give every target its own name")
    return targets


def _target(entry, source: str, position: int) -> DeviceTarget:
    where = f"target {position}"
    if not isinstance(entry, dict):
        raise InputError(f"{where} is {type(entry).__name__}, expected an object with the fields "
                         f"{', '.join(_FIELDS)}", source=source, fix="write each target as a JSON object")
    if isinstance(entry.get("name"), str):
        where = f"target {entry['name']!r}"
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise InputError(f"{where} has unknown field(s) {', '.join(unknown)}", source=source,
                         fix=f"use only {', '.join(_FIELDS)}")
    for name in ("name", "title", "runtime", "source"):
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            raise InputError(f"{where}: field {name!r} is {entry.get(name)!r}, expected a non-empty string",
                             source=source, fix=f"add \"{name}\": \"...\" to the target")
    if not _NAME.match(entry["name"]):
        raise InputError(f"{where}: field 'name' is {entry['name']!r}, expected letters, digits, '-', '_' or '.'",
                         source=source, fix="rename it, e.g. \"my-board\"")
    if entry["runtime"] not in RUNTIMES:
        raise InputError(f"{where}: field 'runtime' is {entry['runtime']!r}, expected one of {', '.join(RUNTIMES)}",
                         source=source, fix="\"tflite-micro\" for a microcontroller, \"litert\" for Linux or a phone")
    numbers = {}
    for name, optional in (("ram_bytes", True), ("flash_bytes", True), ("reserved_ram_bytes", False),
                           ("reserved_flash_bytes", False)):
        value = entry.get(name, None if optional else 0)
        if value is None and optional:
            numbers[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (optional and value == 0):
            expected = "a positive whole number of bytes, or null for no limit" if optional else \
                "a whole number of bytes ≥ 0"
            raise InputError(f"{where}: field {name!r} is {value!r}, expected {expected}", source=source,
                             fix=f"write e.g. \"{name}\": {262144 if optional else 32768}")
        numbers[name] = value
    for limit, reserved in (("ram_bytes", "reserved_ram_bytes"), ("flash_bytes", "reserved_flash_bytes")):
        if numbers[limit] is not None and numbers[reserved] >= numbers[limit]:
            raise InputError(f"{where}: field {reserved!r} ({numbers[reserved]}) leaves nothing of {limit!r} "
                             f"({numbers[limit]})", source=source, fix=f"make {reserved} smaller than {limit}")
    return DeviceTarget(name=entry["name"], title=entry["title"], runtime=entry["runtime"],
                        source=entry["source"], **numbers)


def resolve_targets(specs: tuple[str, ...] | list[str]) -> list[DeviceTarget]:
    """--target values: a built-in name, or a targets file (every target in it). Raises InputError."""
    builtins = builtin_targets()
    chosen: dict[str, DeviceTarget] = {}
    for spec in specs:
        if spec in builtins:
            found = [builtins[spec]]
        elif Path(spec).suffix.lower() == ".json" or Path(spec).exists():
            found = load_targets(spec)
        else:
            raise InputError(f"--target {spec!r} is neither a built-in target nor a file",
                             fix=f"name one of {', '.join(builtins)} (`edgeaudit targets` describes them), or give "
                                 "the path of a .json target file")
        for target in found:
            chosen[target.name] = target
    return list(chosen.values())


def describe_targets(targets: list[DeviceTarget]) -> str:
    """`edgeaudit targets`: one block per target."""
    lines = []
    for target in targets:
        ram = "no limit" if target.ram_bytes is None else f"{_kb(target.ram_bytes)} ({_kb(target.reserved_ram_bytes)} reserved)"
        flash = "no limit" if target.flash_bytes is None else \
            f"{_kb(target.flash_bytes)} ({_kb(target.reserved_flash_bytes)} reserved)"
        lines += [f"{target.name:12s} {target.title}",
                  f"{'':12s} runtime {target.runtime}; RAM {ram}; flash {flash}",
                  f"{'':12s} source: {target.source}"]
    return "\n".join(lines)
