"""Driver options as typed models: one schema per transport and per driver, validated once.

A rack file's ``options:`` mapping used to be read by hand in every transport and driver, six
different ways with six wordings of the same error, and a misspelt option was silently
ignored. Here each transport has a pydantic model of its options and each driver a model that
extends its transport's with its own; the driver class names its model (``options_model``).

The same model is used twice, with one wording:

- when the rack file loads (``rackval.harness.inventory``), before any device is touched, each
  problem becomes ``file:line: devices.<name>.options.<field>: <problem>``;
- when a driver is built from a ``DeviceConfig`` made by hand (scripts, tests),
  ``parse_options`` raises ``ConfigError("device <name>: option '<field>': <problem>")``.

Unknown options are errors with a did-you-mean. Types are strict (YAML already gives typed
values): ``true`` is not a port number, ``"5"`` is not an integer, ``.nan`` is not a timeout.
Enumerations accept any letter case, as the hand-written parsers did. Paths are resolved
against the rack file by the inventory before they get here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from rackval.core.errors import ConfigError
from rackval.core.hints import did_you_mean

M = TypeVar("M", bound="DriverOptions")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _regex(value: Any) -> Any:
    if isinstance(value, str):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
    return value


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Regex = Annotated[str, BeforeValidator(_regex)]
NonEmpty = Annotated[str, Field(min_length=1)]


class DriverOptions(BaseModel):
    """Base of every options model: unknown keys refused, strict types, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ---- credential vocabularies (checked when the rack file loads, and by the transport) -----------

SNMP_AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
# AES192/AES256 follow net-snmp's meaning (Blumenthal key extension); Cisco-style (Reeder)
# extension is available as AES192C / AES256C, the names net-snmp uses for it.
SNMP_PRIV_PROTOCOLS = ("DES", "AES", "AES128", "AES192", "AES256", "AES192C", "AES256C")


def snmp_protocol(value: str | None, known: tuple[str, ...]) -> str | None:
    """``value`` as the vocabulary spells it (``sha-256`` -> ``SHA256``); ValueError with a
    did-you-mean when it is not one of ``known``."""
    if value is None:
        return None
    name = value.strip().upper().replace("-", "")
    if name not in known:
        hint = did_you_mean(name, known, cutoff=0.5)
        raise ValueError(f"unknown protocol {value!r} ({hint + ' ' if hint else ''}known: {', '.join(known)})")
    return name


# ---- transports --------------------------------------------------------------------------------


class SshOptions(DriverOptions):
    """``rackval.drivers.transport.ssh.SshTransport`` (its docstring says what each one does)."""

    # Required unless trust_on_first_use: which host keys a rack trusts is the rack file's decision,
    # not whatever ~/.ssh/known_hosts of the account running the tests happens to hold.
    known_hosts: NonEmpty | None = Field(None, description="required unless trust_on_first_use")
    trust_on_first_use: bool = False
    allow_agent: bool = False
    look_for_keys: bool = False
    keepalive_s: Seconds = 0.0
    encoding: NonEmpty = "utf-8"
    cli_mode: Annotated[Literal["exec", "shell", "auto"], BeforeValidator(_lower)] = "exec"
    exec_refusal_regex: Regex | None = None
    prompt_regex: Regex | None = None
    pager_regex: Regex | None = None
    shell_setup: tuple[str, ...] | None = None
    shell_width: int = Field(512, ge=1, le=10_000)
    shell_height: int = Field(24, ge=1, le=10_000)
    shell_newline: NonEmpty = "\n"
    max_output_bytes: int = Field(16 * 1024 * 1024, ge=1024)

    @field_validator("shell_setup", mode="before")
    @classmethod
    def _commands(cls, value: Any) -> Any:
        if isinstance(value, list):  # YAML gives lists; the model keeps a tuple (frozen)
            return tuple(value)
        return value

    @model_validator(mode="after")
    def _host_keys(self) -> SshOptions:
        if self.known_hosts is None and not self.trust_on_first_use:
            raise PydanticCustomError(
                "known_hosts_required",
                "required (the file of host keys to trust), or trust_on_first_use: true",
                {"field": "known_hosts"},
            )
        return self


class SnmpOptions(DriverOptions):
    """``rackval.drivers.transport.snmp.SnmpTransport``: re-sends after a timeout, walk bounds."""

    retries: int = Field(1, ge=0, le=10)
    walk_timeout_s: PositiveSeconds = 60.0
    max_walk_rows: int = Field(100_000, ge=1)
    max_walk_bytes: int = Field(16 * 1024 * 1024, ge=1024)


class RedfishOptions(DriverOptions):
    """``rackval.drivers.transport.redfish.RedfishTransport``."""

    scheme: Annotated[Literal["https", "http"], BeforeValidator(_lower)] = "https"
    verify: bool | NonEmpty = True
    auth: Annotated[Literal["session", "basic"], BeforeValidator(_lower)] = "session"
    retries_503: int = Field(3, ge=0, le=20)
    backoff_s: Seconds = 0.5
    backoff_max_s: Seconds = 8.0
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)


class IpmiOptions(DriverOptions):
    """``rackval.drivers.transport.ipmi.IpmiTransport``."""

    cipher_suite: Literal[3, 17] = 17  # 0-2 send no or weak integrity protection: refused
    interface: Annotated[Literal["lanplus", "lan"], BeforeValidator(_lower)] = "lanplus"
    retries: int = Field(2, ge=1, le=10)
    retransmit_s: int = Field(1, ge=1, le=60)
    privilege: Annotated[Literal["CALLBACK", "USER", "OPERATOR", "ADMINISTRATOR"] | None, BeforeValidator(
        lambda v: v.strip().upper() if isinstance(v, str) else v
    )] = None  # fmt: skip
    ipmitool: NonEmpty = "ipmitool"
    max_output_bytes: int = Field(8 * 1024 * 1024, ge=1024)


class ScpiOptions(DriverOptions):
    """``rackval.drivers.transport.scpi.ScpiTransport``: VISA resource, line terminations, reply cap."""

    resource: NonEmpty | None = None
    read_termination: str | None = None
    write_termination: str | None = None
    max_reply_bytes: int = Field(4 * 1024 * 1024, ge=1024)


class ModbusOptions(DriverOptions):
    """``rackval.drivers.modbus.modbus_device``: the register map (a YAML file, relative to the rack
    file; format in racks/modbus-maps/README.md) and the unit id, when not the map's."""

    register_map: NonEmpty = Field(description="required: the register map file")
    unit_id: int | None = Field(None, ge=0, le=247)


# ---- drivers -----------------------------------------------------------------------------------


class SnmpPduOptions(SnmpOptions):
    """Every SNMP PDU driver (``rackval.drivers.pdu.snmp_pdu.SnmpPdu``)."""

    device_index: int | None = Field(None, ge=0)  # the map knows its first index (0 or 1)
    confirm_timeout_s: Seconds = 10.0
    poll_interval_s: PositiveSeconds = 0.25
    max_oids_per_request: int = Field(32, ge=1, le=256)


class RedfishPduOptions(RedfishOptions):
    """``rackval.drivers.pdu.redfish_pdu.RedfishRackPdu``."""

    pdu_id: NonEmpty | int | None = None
    power_source: Annotated[Literal["auto", "metrics", "mains"], BeforeValidator(_lower)] = "auto"
    confirm_timeout_s: Seconds = 10.0
    poll_interval_s: PositiveSeconds = 0.5


class RedfishBmcOptions(RedfishOptions):
    """``rackval.drivers.bmc.redfish.RedfishBmc``."""

    system_id: NonEmpty | None = None
    chassis_id: NonEmpty | None = None
    manager_id: NonEmpty | None = None
    power_source: Annotated[Literal["auto", "environment", "legacy"], BeforeValidator(_lower)] = "auto"
    expand: bool = True
    log_service: NonEmpty | None = None


class RedfishCduOptions(RedfishOptions):
    """``rackval.drivers.cooling.redfish_cdu.RedfishCdu``."""

    cdu_id: NonEmpty | int | None = None
    expand: bool = True


class RedfishPowerShelfOptions(RedfishOptions):
    """``rackval.drivers.power_shelf.redfish_shelf.RedfishPowerShelf``."""

    shelf_id: NonEmpty | int | None = None
    expand: bool = True


class IpmiBmcOptions(IpmiOptions):
    """``rackval.drivers.bmc.ipmi.IpmiBmc``: the transport's options only."""


class OpenBmcOptions(SshOptions):
    """``rackval.drivers.bmc.openbmc.OpenBmcSsh``."""

    inventory_object: NonEmpty = "/xyz/openbmc_project/inventory/system"
    command_timeout_s: PositiveSeconds | None = None


class SshSwitchOptions(SshOptions):
    """``rackval.drivers.switch.sonic.SonicSwitch``."""

    command_timeout_s: PositiveSeconds | None = None


class EosOptions(SshSwitchOptions):
    """``rackval.drivers.switch.eos.AristaEosSwitch``: EOS AAA often refuses exec, so ``auto``."""

    cli_mode: Annotated[Literal["exec", "shell", "auto"], BeforeValidator(_lower)] = "auto"
    cli_wrapper: str | None = None


class SnmpSwitchOptions(SnmpOptions):
    """``rackval.drivers.switch.snmp_switch.SnmpSwitch``."""

    max_repetitions: int = Field(32, ge=1, le=255)


class GenericScpiOptions(ScpiOptions):
    """``rackval.drivers.instrument.generic.GenericScpiInstrument`` (and the Chroma meters)."""

    power_query: NonEmpty | None = None
    power_scale: float = Field(1.0, allow_inf_nan=False)
    setup_commands: tuple[Annotated[str, Field(pattern=r"\S")], ...] = ()

    @field_validator("setup_commands", mode="before")
    @classmethod
    def _commands(cls, value: Any) -> Any:
        if isinstance(value, str):  # one command may be given as a plain string
            return (value,)
        return tuple(value) if isinstance(value, list) else value

    @field_validator("power_scale")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0 or not math.isfinite(value):
            raise ValueError("must be a non-zero number")
        return value


class YokogawaOptions(ScpiOptions):
    """``rackval.drivers.instrument.yokogawa.YokogawaWtAnalyzer``: input element 1..7 or SIGMA."""

    element: (
        int | Annotated[Literal["SIGMA"], BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v)]
    ) = 1

    @field_validator("element")
    @classmethod
    def _element(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 7:
            raise ValueError("expected an element 1..7 or 'SIGMA'")
        return value


class LinuxNodeOptions(SshOptions):
    """``rackval.drivers.node.linux.LinuxGpuNode``."""

    command_timeout_s: PositiveSeconds | None = None
    nvidia_smi: NonEmpty = "nvidia-smi"
    dcgmi: NonEmpty = "dcgmi"
    load_command: NonEmpty | tuple[NonEmpty, ...] | None = None
    load_pid_file: NonEmpty = "/tmp/rackval-load.pid"  # a path on the node
    load_log_file: NonEmpty = "/tmp/rackval-load.log"
    load_stop_grace_s: int = Field(5, ge=0, le=600)
    diag_timeout_s: PositiveSeconds | None = None
    persistent_session: bool = True

    @field_validator("load_command", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


# ---- validation with one wording ---------------------------------------------------------------


# pydantic's wording for type errors, said the way a rack-file author thinks of YAML values
_PLAIN = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a text",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
}


def _describe(error: Mapping[str, Any], model: type[DriverOptions]) -> tuple[tuple[Any, ...], str]:
    """(field path, problem) of one pydantic error, worded the same for every driver."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    kind = error["type"]
    if not loc and "field" in error.get("ctx", {}):  # a check across fields, about one of them
        return (error["ctx"]["field"],), error["msg"]
    if kind == "extra_forbidden":
        name = str(loc[0]) if loc else "?"
        hint = did_you_mean(name, model.model_fields) or f"known options: {', '.join(sorted(model.model_fields))}"
        return loc, f"unknown option ({hint})"
    message = _PLAIN.get(kind) or error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    return loc, f"{message}, got {error.get('input')!r}"


def option_errors(model: type[DriverOptions], options: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Every problem of ``options`` for ``model`` as (field path, problem); [] when valid."""
    try:
        model.model_validate(dict(options))
    except ValidationError as exc:
        seen: dict[tuple[Any, ...], str] = {}
        for err in exc.errors():
            loc, text = _describe(err, model)
            seen.setdefault(loc[:1], text)  # one line per option (a union reports each branch)
        return list(seen.items())
    return []


def parse_options(model: type[M], options: Mapping[str, Any], device: str, *, known_only: bool = False) -> M:
    """``options`` validated as ``model``; ConfigError naming the device and the option if not.

    ``known_only``: read only the model's own fields and leave the rest alone. Transports use it:
    a device's options are the driver's, a superset of its transport's, and the driver's model
    is the one that refuses unknown keys.
    """
    if known_only:
        options = {k: v for k, v in options.items() if k in model.model_fields}
    try:
        return model.model_validate(dict(options))
    except ValidationError:
        loc, text = option_errors(model, options)[0]
        field = ".".join(str(p) for p in loc) or "options"
        raise ConfigError(f"device {device}: option {field!r}: {text}") from None


__all__ = [
    "DriverOptions",
    "EosOptions",
    "GenericScpiOptions",
    "IpmiBmcOptions",
    "IpmiOptions",
    "LinuxNodeOptions",
    "OpenBmcOptions",
    "RedfishBmcOptions",
    "RedfishOptions",
    "RedfishPduOptions",
    "ScpiOptions",
    "SnmpOptions",
    "SnmpPduOptions",
    "SnmpSwitchOptions",
    "SshOptions",
    "SshSwitchOptions",
    "YokogawaOptions",
    "option_errors",
    "parse_options",
]
