"""The rack file: which devices a rack has, how to reach them, and how power and network are wired.

Loaded and cross-checked completely before any device is touched; every error names the file,
the line and the field. Secrets are references (``{env: NAME}`` or ``{file: path}``), never
values, so rack files can be committed and shared.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

from rackval.core.errors import ConfigError
from rackval.core.hints import did_you_mean
from rackval.core.yamlfile import YamlLocator, load_yaml_model
from rackval.drivers import registry
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.kinds import DEVICE_KINDS, describe_kinds
from rackval.drivers.options import SNMP_AUTH_PROTOCOLS, SNMP_PRIV_PROTOCOLS, option_errors, snmp_protocol


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    """Where a secret lives: an environment variable or a file (relative to the rack file)."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self


class CredentialSpec(_Strict):
    username: str | None = None
    password: SecretRef | None = None
    community: SecretRef | None = None
    snmp_version: Literal["2c", "3"] = "2c"
    auth_protocol: str | None = None
    auth_key: SecretRef | None = None
    priv_protocol: str | None = None

    @field_validator("auth_protocol")
    @classmethod
    def _auth(cls, value: str | None) -> str | None:
        return snmp_protocol(value, SNMP_AUTH_PROTOCOLS)

    @field_validator("priv_protocol")
    @classmethod
    def _priv(cls, value: str | None) -> str | None:
        return snmp_protocol(value, SNMP_PRIV_PROTOCOLS)

    priv_key: SecretRef | None = None
    key_file: str | None = None


class Expect(_Strict):
    """Identity the device must report; empty fields are not checked."""

    vendor: str = ""
    model: str = ""
    serial: str = ""
    firmware: str = ""


def _known_kind(kind: Any) -> str:
    if not isinstance(kind, str) or kind not in DEVICE_KINDS:
        raise PydanticCustomError(
            "device_kind", "unknown kind {kind} (valid: {valid})", {"kind": repr(kind), "valid": describe_kinds()}
        )
    return kind


DeviceKindName = Annotated[str, BeforeValidator(_known_kind)]
"""A ``kind:`` of ``rackval.drivers.kinds.DEVICE_KINDS``; anything else names the valid ones."""


class DeviceSpec(_Strict):
    kind: DeviceKindName
    driver: str
    host: str = Field(min_length=1)
    port: StrictInt | None = Field(default=None, ge=1, le=65535)  # strict: `true` is not port 1
    credentials: str | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=600, allow_inf_nan=False)
    options: dict[str, Any] = Field(default_factory=dict)
    expect: Expect = Field(default_factory=Expect)
    # Destructive actions (outlet off, reset, power cap) on a protected device are refused;
    # on a PDU, protected_outlets refuses only those outlets (e.g. the ones feeding the switch).
    protected: bool = False
    protected_outlets: list[int] = Field(default_factory=list)
    # Power feeds the device is on (a PDU) or measures (an analyzer), e.g. [A] or [A, B].
    feeds: list[str] = Field(default_factory=list)


class PsuLink(_Strict):
    pdu: str
    outlet: int = Field(ge=1)


class NicLink(_Strict):
    switch: str
    port: str


class NodeSpec(_Strict):
    # `class:` in the file: one of the spec's node_classes (what the node must report); None: the
    # spec's default_node_class. Checked against the spec when both are loaded (Spec.check_rack).
    node_class: str | None = Field(default=None, alias="class", min_length=1)
    bmc: str | None = None
    host: str | None = None  # the node's own OS (a device of kind node), for GPU telemetry and load
    psus: dict[str, PsuLink] = Field(default_factory=dict)
    nics: dict[str, NicLink] = Field(default_factory=dict)


RUN_SIM_PARAMS = "sim_params"
"""runs.metadata key: the params file a simulated rack was built from (path, sha256, content)."""


class SimParamsRef(_Strict):
    """The params file a simulated rack was built from (``rackval sim --params``): recorded with
    every run on it, so a report says which design was rehearsed."""

    path: str
    sha256: str

    def run_record(self) -> tuple[dict[str, str], str]:
        """What a run stores (``RUN_SIM_PARAMS``): path, sha256 and the file's content, and a
        warning when the file is gone or changed since the simulator read it (the content is
        then left out: it would not be what was simulated)."""
        import hashlib

        record = {"path": self.path, "sha256": self.sha256, "content": ""}
        try:
            data = Path(self.path).read_bytes()
        except OSError as exc:
            return record, f"sim params file {self.path}: cannot read it to record with the run ({exc.strerror})"
        if hashlib.sha256(data).hexdigest() != self.sha256:
            return record, f"sim params file {self.path} changed since the simulator read it: content not recorded"
        record["content"] = data.decode("utf-8", errors="replace")
        return record, ""


class SimulatorRef(_Strict):
    """How to reach a simulated rack's control channel (its virtual clock and faults)."""

    control: str
    token: SecretRef
    params: SimParamsRef | None = None


class RackMeta(_Strict):
    """The rack itself. ``allow_destructive`` lets plans switch outlets, reset hosts, cap power and
    drop feeds (each action logged and undone at teardown); ``--allow-destructive`` does the same."""

    name: str
    serial: str = ""
    design_revision: str = ""
    site: str = ""
    simulated: bool = False
    simulator: SimulatorRef | None = None
    allow_destructive: bool = False


class RackFile(_Strict):
    rack: RackMeta
    credentials: dict[str, CredentialSpec] = Field(default_factory=dict)
    devices: dict[str, DeviceSpec]
    nodes: dict[str, NodeSpec] = Field(default_factory=dict)


class Inventory:
    """A validated rack file with its secrets resolved, ready to build drivers from."""

    def __init__(
        self,
        path: Path,
        data: RackFile,
        configs: dict[str, DeviceConfig],
        simulator_token: Secret | None = None,
        locator: YamlLocator | None = None,
    ) -> None:
        self.path = path
        self.data = data
        self.configs = configs
        self.simulator_token = simulator_token
        self.locator = locator or YamlLocator(path, None, "rack")  # no node tree: errors say line 1

    def node_of(self, device: str) -> str | None:
        """The node ``device`` is (a node name) or belongs to (its BMC or host); None if neither."""
        if device in self.data.nodes:
            return device
        return next((n for n, s in self.data.nodes.items() if device in (s.bmc, s.host)), None)

    def node_error(self, node: str, field: str, message: str) -> ConfigError:
        """A check made with another file (the spec) against a node's entry: file, line, field."""
        return self.locator.error(("nodes", node, field), message)

    @property
    def meta(self) -> RackMeta:
        return self.data.rack

    def devices_of_kind(self, kind: str) -> list[str]:
        return [name for name, d in self.data.devices.items() if d.kind == kind]

    def spec_of(self, device: str) -> DeviceSpec:
        return self.data.devices[device]

    def pdu_feeds(self) -> list[str]:
        """The feeds the rack's PDUs are on."""
        return sorted({f for name in self.devices_of_kind("pdu") for f in self.data.devices[name].feeds})

    def power_feeds(self) -> list[str]:
        """The feeds the rack draws from: those of its PDUs and of its power shelves."""
        kinds = ("pdu", "power_shelf")
        return sorted({f for k in kinds for name in self.devices_of_kind(k) for f in self.data.devices[name].feeds})

    def feed_analyzers(self) -> list[str]:
        """The analyzers that together measure every feed (of the PDUs and power shelves) exactly once:
        one on the rack feed, or one per feed. ConfigError when the rack file's analyzers do not cover
        the feeds so."""
        feeds = self.power_feeds()
        chosen = [n for n in self.devices_of_kind("analyzer") if set(self.data.devices[n].feeds) <= set(feeds)]
        if sorted(f for n in chosen for f in self.data.devices[n].feeds) != feeds:
            raise ConfigError(f"{self.path}: the analyzers do not measure feeds {feeds} exactly once each")
        return chosen


def _check_options(data: RackFile, where: YamlLocator) -> None:
    """Every device's options against its driver's typed model: all problems, a line each."""
    problems = []
    for name, dev in data.devices.items():
        model = registry.options_model(dev.driver)
        if model is not None:
            problems += [(("devices", name, "options", *loc), text) for loc, text in option_errors(model, dev.options)]
    if problems:
        raise where.errors(problems)


def _check_references(data: RackFile, where: YamlLocator) -> None:
    drivers = registry.available()
    for name, dev in data.devices.items():
        entry = drivers.get(dev.driver)
        if entry is None:
            hint = did_you_mean(dev.driver, drivers)
            hint = f"{hint} " if hint else ""
            raise where.error(
                ("devices", name, "driver"),
                f"unknown driver {dev.driver!r} ({hint}available: {', '.join(sorted(drivers))})",
            )
        if entry.kind is not None and entry.kind != dev.kind:
            raise where.error(
                ("devices", name, "driver"),
                f"driver {dev.driver!r} is for kind {entry.kind!r}, but the device is kind {dev.kind!r}",
            )
        if entry.kind is None and (missing := registry.missing_for_kind(dev.driver, dev.kind)):
            raise where.error(  # a plugin driver: its claims say which kinds it can serve
                ("devices", name, "driver"),
                f"driver {dev.driver!r} ({entry.target}) does not claim {', '.join(missing)}, which a {dev.kind} needs",
            )
        if dev.credentials is not None and dev.credentials not in data.credentials:
            raise where.error(
                ("devices", name, "credentials"),
                f"no credentials named {dev.credentials!r} under 'credentials'",
            )

    def need(loc: tuple[Any, ...], device: str, kind: str) -> None:
        if device not in data.devices:
            raise where.error(loc, f"no device named {device!r} under 'devices'")
        if data.devices[device].kind != kind:
            raise where.error(loc, f"device {device!r} is a {data.devices[device].kind}, not a {kind}")

    for node, spec in data.nodes.items():
        if spec.bmc is not None:
            need(("nodes", node, "bmc"), spec.bmc, "bmc")
        if spec.host is not None:
            need(("nodes", node, "host"), spec.host, "node")
        for psu, link in spec.psus.items():
            need(("nodes", node, "psus", psu, "pdu"), link.pdu, "pdu")
        for nic, nlink in spec.nics.items():
            need(("nodes", node, "nics", nic, "switch"), nlink.switch, "switch")
    seen: dict[tuple[str, int], str] = {}
    for node, spec in data.nodes.items():
        for psu, link in spec.psus.items():
            key = (link.pdu, link.outlet)
            if key in seen:
                raise where.error(
                    ("nodes", node, "psus", psu, "outlet"),
                    f"{link.pdu} outlet {link.outlet} is already wired to {seen[key]}",
                )
            seen[key] = f"{node} {psu}"


def _resolve_secret(ref: SecretRef | None, base: Path, where: YamlLocator, loc: tuple[Any, ...]) -> Secret | None:
    if ref is None:
        return None
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise where.error(loc, f"environment variable {ref.env} is not set")
        return Secret(value)
    path = (base / ref.file).resolve() if ref.file else base
    try:
        return Secret(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise where.error(loc, f"cannot read secret file {path}: {exc.strerror or exc}") from None


def _credentials(name: str, spec: CredentialSpec, base: Path, where: YamlLocator) -> Credentials:
    loc = ("credentials", name)
    key_file = str((base / spec.key_file).resolve()) if spec.key_file else None
    return Credentials(
        username=spec.username,
        password=_resolve_secret(spec.password, base, where, (*loc, "password")),
        community=_resolve_secret(spec.community, base, where, (*loc, "community")),
        snmp_version=spec.snmp_version,
        auth_protocol=spec.auth_protocol,
        auth_key=_resolve_secret(spec.auth_key, base, where, (*loc, "auth_key")),
        priv_protocol=spec.priv_protocol,
        priv_key=_resolve_secret(spec.priv_key, base, where, (*loc, "priv_key")),
        key_file=key_file,
    )


def _resolve_paths(options: dict[str, Any], base: Path) -> dict[str, Any]:
    """Options that name files (known_hosts, CA bundles, Modbus register maps) are relative to the rack file."""
    out = dict(options)
    for key in ("known_hosts", "ca_file", "register_map"):
        if isinstance(out.get(key), str):
            out[key] = str((base / out[key]).resolve())
    if isinstance(out.get("verify"), str):
        out["verify"] = str((base / out["verify"]).resolve())
    return out


def load_inventory(path: str | Path) -> Inventory:
    """Read, validate and cross-check a rack file, and resolve its secrets."""
    path = Path(path)
    data, where = load_yaml_model(path, RackFile, "rack")
    _check_references(data, where)
    _check_options(data, where)
    base = path.parent
    creds = {name: _credentials(name, spec, base, where) for name, spec in data.credentials.items()}
    configs = {
        name: DeviceConfig(
            name=name,
            kind=dev.kind,
            driver=dev.driver,
            host=dev.host,
            port=dev.port,
            credentials=creds[dev.credentials] if dev.credentials else Credentials(),
            options=_resolve_paths(dev.options, base),
            timeout_s=dev.timeout_s,
        )
        for name, dev in data.devices.items()
    }
    sim = data.rack.simulator
    token = _resolve_secret(sim.token, base, where, ("rack", "simulator", "token")) if sim else None
    return Inventory(path, data, configs, token, where)


__all__ = ["ConfigError", "Inventory", "RackFile", "load_inventory"]
