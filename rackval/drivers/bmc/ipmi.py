"""A BMC over IPMI-over-LAN (ipmitool): identity, host power state and control, temperatures,
DCMI power draw and the System Event Log.

Many racks still have BMCs (or BMC firmware modes) where Redfish is missing, slow or partial,
and IPMI is the lowest common denominator every server speaks. The parsing lives in pure
functions over ipmitool's text output so that it can be tested on captured output from real
BMCs as well as against OpenIPMI's ipmi_sim.

What a BMC lacks is told apart from a BMC that fails, and each part stands alone: without FRU 0
(``fru print 0`` -> "Device not present") the identity comes from ``mc info`` (manufacturer,
firmware, the product name when ipmitool knows it); without SDRs ``temperatures()`` is empty;
without DCMI ``power_watts()`` raises ``NotAvailable``. None of these stops the others.
"""

from __future__ import annotations

import re

from rackval.core.errors import DeviceError, DeviceProtocolError, NotAvailable
from rackval.drivers.capabilities import (
    Bmc,
    Device,
    EventLog,
    HostReset,
    Identity,
    LogEntry,
    PowerMeter,
    reset_refusal,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import IpmiBmcOptions, parse_options
from rackval.drivers.transport.ipmi import IpmiTransport

# Redfish ResetType -> ipmitool `chassis power <action>`: plans use one vocabulary for every BMC.
RESET_ACTIONS: dict[str, str] = {
    "On": "on",
    "ForceOn": "on",
    "ForceOff": "off",
    "PowerCycle": "cycle",
    "ForceRestart": "reset",
    "GracefulShutdown": "soft",
}

_POWER_RE = re.compile(r"Chassis Power is (on|off)\b", re.IGNORECASE)
_DCMI_RE = re.compile(r"Instantaneous power reading\s*:\s*(-?\d+(?:\.\d+)?)\s*Watts", re.IGNORECASE)
_DCMI_STATE_RE = re.compile(r"Power reading state is\s*:\s*(\w+)", re.IGNORECASE)
_TEMP_RE = re.compile(r"^(-?\d+(?:\.\d+)?)\s*degrees C$", re.IGNORECASE)
_DCMI_UNSUPPORTED = ("Invalid command", "DCMI request failed", "not supported", "Unsupported", "Invalid data field")
# ipmitool's words (stdout or stderr) for a BMC whose SDR repository is empty or absent.
_NO_SDR = ("record not found", "Error obtaining SDR info", "Invalid command", "SDR not present")


def _colon_fields(text: str) -> dict[str, str]:
    """``Key : value`` lines (ipmitool's fru print / mc info layout); the first occurrence wins."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out


def parse_power_status(text: str) -> str:
    """``chassis power status`` -> "On" / "Off" (Redfish PowerState spelling)."""
    match = _POWER_RE.search(text)
    if match is None:
        raise ValueError(f"no 'Chassis Power is on|off' in {text.strip()!r}")
    return "On" if match.group(1).lower() == "on" else "Off"


def parse_fru(text: str) -> dict[str, str]:
    """``fru print 0`` -> vendor, model, serial (product area first, then board, then chassis).

    Missing fields are empty strings: many white-box FRUs fill only the board area.
    """
    fields = _colon_fields(text)

    def first(*keys: str) -> str:
        for key in keys:
            if fields.get(key):
                return fields[key]
        return ""

    return {
        "vendor": first("Product Manufacturer", "Board Mfg"),
        "model": first("Product Name", "Board Product", "Chassis Part Number"),
        "serial": first("Product Serial", "Board Serial", "Chassis Serial"),
    }


def parse_mc_info(text: str) -> dict[str, str]:
    """``mc info`` -> firmware revision, manufacturer name and product name.

    ipmitool prints "Unknown (0x..)" for IDs it has no name for: those are left empty.
    """
    fields = _colon_fields(text)

    def named(key: str) -> str:
        value = fields.get(key, "")
        return "" if value.startswith("Unknown") else value

    return {
        "firmware": fields.get("Firmware Revision", ""),
        "manufacturer": named("Manufacturer Name"),
        "product": named("Product Name"),
    }


def parse_sdr_temperatures(text: str) -> dict[str, float]:
    """``sdr type temperature`` / ``sdr elist`` -> {sensor name: degrees C}.

    Lines look like ``Inlet Temp | 04h | ok | 7.1 | 21 degrees C``; sensors that report
    "No Reading", "Disabled" or another unit are left out. Repeated names (Dell has several
    "Temp") get their sensor number appended: ``Temp (0Eh)``.
    """
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 5:
            continue
        match = _TEMP_RE.match(parts[4])
        if match is None:
            continue
        name, number = parts[0], parts[1]
        key = f"{name} ({number})" if name in out else name
        out[key] = float(match.group(1))
    return out


def parse_dcmi_power(text: str) -> float:
    """``dcmi power reading`` -> instantaneous watts; ValueError if absent or deactivated."""
    state = _DCMI_STATE_RE.search(text)
    if state is not None and state.group(1).lower() == "deactivated":
        raise ValueError("DCMI power reading state is 'deactivated' on this BMC")
    match = _DCMI_RE.search(text)
    if match is None:
        raise ValueError(f"no 'Instantaneous power reading: N Watts' in {text.strip()[:200]!r}")
    return float(match.group(1))


def _sel_severity(event: str) -> str:
    """IPMI SEL has no severity; derive Redfish's OK/Warning/Critical from the threshold words."""
    low = event.lower()
    if "non-recoverable" in low or ("critical" in low and "non-critical" not in low):
        return "Critical"
    if "non-critical" in low or "failure" in low or "fault" in low or "error" in low:
        return "Warning"
    return "OK"


def parse_sel_elist(text: str) -> list[LogEntry]:
    """``sel elist`` -> entries, oldest first.

    ``   1 | 11/20/2023 | 10:11:12 | Temperature CPU0 Temp | Upper Critical going high | Asserted``
    Entries logged before the BMC's clock was set show ``Pre-Init`` and a seconds counter as
    their date and time; they are kept as they are.
    """
    entries: list[LogEntry] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 5 or not re.fullmatch(r"[0-9A-Fa-f]+", parts[0]):
            continue
        record, date, clock, sensor, event = parts[:5]
        extra = [p for p in parts[5:] if p]
        message = f"{sensor}: {event}"
        if extra:
            message += " (" + "; ".join(extra) + ")"
        entries.append(
            LogEntry(
                id=str(int(record, 16)),
                created=f"{date} {clock}".strip(),
                severity=_sel_severity(event),
                message=message,
                message_id="",
            )
        )
    return entries


class IpmiBmc(Device, Bmc, PowerMeter, HostReset, EventLog):
    """A server's BMC over IPMI-over-LAN through ipmitool.

    Options: those of ``rackval.drivers.transport.ipmi.IpmiTransport`` (``cipher_suite`` 17 or 3,
    ``interface``, ``retries``, ``retransmit_s``, ``privilege``, ``ipmitool``).

    ``identify()`` reads FRU 0's product area (board area as a fallback) and ``mc info``'s
    Firmware Revision; a BMC without FRU 0 is identified from ``mc info`` alone (vendor and
    model from its manufacturer and product names, serial empty). ``temperatures()`` is empty
    for a BMC without SDRs. ``power_watts()`` needs DCMI (most servers since ~2012; not
    white-box boards without a power sensor): a BMC without it raises NotAvailable saying so.
    """

    options_model = IpmiBmcOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        parse_options(self.options_model, config.options, config.name)  # unknown options are errors
        self._transport = IpmiTransport(config)
        self._identity: Identity | None = None

    def __repr__(self) -> str:
        return f"IpmiBmc({self.name!r}, {self._config.address!r})"

    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self._config.name, self._config.address, operation, detail)

    def _run(self, args: list[str], operation: str) -> str:
        return self._transport.run(args, operation).stdout

    # ---- Device -------------------------------------------------------------------------------
    def identify(self) -> Identity:
        """Vendor, model and serial from FRU 0, firmware from ``mc info`` (read once, then cached).

        A BMC that answers ``fru print 0`` with a completion code ("Device not present") has no
        FRU data to give: vendor and model then come from ``mc info``, the serial is empty. A BMC
        that does not answer, or refuses the session, is not guessed around: that raises.
        """
        if self._identity is None:
            fru = {"vendor": "", "model": "", "serial": ""}
            try:
                fru = parse_fru(self._run(["fru", "print", "0"], "read FRU 0 (ipmitool fru print 0)"))
            except DeviceError as exc:
                if type(exc) is not DeviceError:  # timeout, refused login, garbage: not "no FRU"
                    raise
            mc = parse_mc_info(self._run(["mc", "info"], "read BMC firmware (ipmitool mc info)"))
            self._identity = Identity(
                vendor=fru["vendor"] or mc["manufacturer"],
                model=fru["model"] or mc["product"],
                serial=fru["serial"],
                firmware=mc["firmware"],
            )
        return self._identity

    def close(self) -> None:
        self._transport.close()

    # ---- Bmc ----------------------------------------------------------------------------------
    def power_state(self) -> str:
        """Host power as "On" or "Off" (``chassis power status``)."""
        op = "read host power (ipmitool chassis power status)"
        text = self._run(["chassis", "power", "status"], op)
        try:
            return parse_power_status(text)
        except ValueError as exc:
            raise self._err(DeviceProtocolError, op, str(exc)) from exc

    def temperatures(self) -> dict[str, float]:
        """Every temperature sensor with a reading, degrees C, keyed by SDR name; empty without SDRs."""
        op = "read temperatures (ipmitool sdr type temperature)"
        try:
            return parse_sdr_temperatures(self._run(["sdr", "type", "temperature"], op))
        except DeviceError as exc:
            if type(exc) is DeviceError and any(m in exc.detail for m in _NO_SDR):
                return {}  # the BMC answered that it has no sensor records
            raise

    # ---- PowerMeter ---------------------------------------------------------------------------
    def power_watts(self) -> float:
        """Instantaneous input power from ``dcmi power reading``."""
        op = "read power (ipmitool dcmi power reading)"
        try:
            text = self._run(["dcmi", "power", "reading"], op)
        except DeviceError as exc:
            if type(exc) is DeviceError and any(m in exc.detail for m in _DCMI_UNSUPPORTED):
                raise self._err(
                    NotAvailable,
                    op,
                    f"BMC does not support DCMI power reading ({exc.detail}); "
                    "read power from the PDU outlet or the Redfish driver instead",
                ) from exc
            raise
        try:
            return parse_dcmi_power(text)
        except ValueError as exc:
            raise self._err(DeviceProtocolError, op, str(exc)) from exc

    # ---- actions ------------------------------------------------------------------------------
    def reset(self, reset_type: str) -> None:
        """``chassis power on|off|cycle|reset|soft`` for the Redfish ResetType (``RESET_ACTIONS``).

        A ResetType ipmitool has no command for (GracefulRestart, Nmi, ...) is refused before
        anything is sent. Destructive: the harness's safety gate decides whether this may be
        called. Returns when the BMC accepted the request; poll ``power_state()`` for the outcome.
        """
        refusal = reset_refusal(reset_type, RESET_ACTIONS, "ipmitool chassis power")
        if refusal is not None:
            raise self._err(DeviceError, f"reset host ({reset_type})", refusal)
        action = RESET_ACTIONS[reset_type]
        self._run(["chassis", "power", action], f"reset host (ipmitool chassis power {action})")

    def sel_entries(self) -> list[LogEntry]:
        """The System Event Log, oldest first (``sel elist``)."""
        return parse_sel_elist(self._run(["sel", "elist"], "read the SEL (ipmitool sel elist)"))
