"""``rackval probe``: who in the rack answers, is it what the rack file says, and what does it read.

The first thing to run on a new rack (or a rack that behaves oddly): every device is contacted
at once, each with its own timeout, and the answer is one line per device with its identity, a
comparison with the rack file's ``expect``, one reading of every capability its driver has, and
the time it took. A dead device costs only its own timeout and hides nothing else.

What a device said is told apart, per device and per reading: it *answered*; it answered with
an error (an IPMI completion code, HTTP 401, a TLS certificate that does not verify: the error is
printed verbatim); it answered that it does not have the reading (*not available*: an
unmetered PDU's outlet power, a BMC without DCMI; not an error); or it gave *no answer*
(timeout, connection refused). Every reading is attempted on its own: one that fails never
skips the others. Outlet power is summed over the outlets that have meters and says how many
do ("9 of 11 outlets metered"), or "not available on this device" when none does.

Probing is read-only by construction: it calls only ``identify`` and the one-shot readings of
``rackval.harness.readers.CAPABILITY_READERS`` (``power_watts``, ``outlets``, ``ports``,
``lldp_neighbors``, ``power_state``, ``temperatures``, ``read``, ``gpus``; for liquid cooling and
power shelves ``cooling_mode``, ``pumps``, ``loops``, ``coolant_connectors``, ``leak_detectors``,
``feeds``, ``rectifiers``, ``dc_output``, ``batteries``); nothing that switches, resets, loads,
stops a pump or configures a limit is ever called.
Secrets are never printed: every text that leaves this module is scrubbed of the rack's resolved
credential values, in case a driver or library ever quotes one. Device text reaches the terminal
escaped (``rackval.core.printable``): an identity with an ESC sequence or a newline in it cannot
clear the screen or forge a line of the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rackval.core.errors import ConfigError, DeviceDown, DeviceError, DeviceTimeout, NotAvailable
from rackval.core.printable import printable
from rackval.drivers.capabilities import Identity
from rackval.harness.inventory import Inventory, load_inventory
from rackval.harness.rack import Rack
from rackval.harness.readers import probe_readings, readings_text

IDENTITY_FIELDS = ("vendor", "model", "serial", "firmware")
TABLE_HEADER = (
    "DEVICE", "KIND", "ADDRESS", "STATUS", "TIME", "VENDOR", "MODEL", "SERIAL", "FIRMWARE", "EXPECT", "READINGS",
)  # fmt: skip


# What one step (identify, or one reading) got from the device, and a device's status overall.
ANSWERED = "answered"
ERROR = "error"  # the device answered with an error
NOT_AVAILABLE = "not_available"  # the device answered that it does not have this
NO_ANSWER = "no_answer"  # timeout, connection refused or unreachable

ANSWERED_WITH_ERROR = "answered_with_error"
NOT_SUPPORTED = "not_supported"
STATUS_TEXT = {
    ANSWERED: "answered",
    ANSWERED_WITH_ERROR: "answered with error",
    NOT_SUPPORTED: "not supported",
    NO_ANSWER: "NO ANSWER",
}

# OS errors that mean nothing answered at that address (not a refusal by a device that answered).
_UNREACHABLE_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ETIMEDOUT}
)


def answer_of(exc: BaseException) -> str:
    """Which kind of answer a failure was: NOT_AVAILABLE, NO_ANSWER or ERROR (the device answered)."""
    if isinstance(exc, NotAvailable):
        return NOT_AVAILABLE
    if isinstance(exc, DeviceTimeout | DeviceDown):  # DeviceDown: it did not answer an earlier step
        return NO_ANSWER
    if type(exc) is DeviceError:  # a transport's own failure: look at what the OS said, if anything
        cause: BaseException | None = exc
        for _ in range(8):
            cause = cause.__cause__ or cause.__context__ if cause is not None else None
            if cause is None or isinstance(cause, ssl.SSLError):
                break
            if isinstance(cause, socket.gaierror | ConnectionRefusedError) or (
                isinstance(cause, OSError) and cause.errno in _UNREACHABLE_ERRNOS
            ):
                return NO_ANSWER
    return ERROR


@dataclass
class ProbeError:
    """One thing a device did not do; ``message`` names device, address and operation, verbatim.

    ``answer``: ERROR (the device answered with an error) or NO_ANSWER.
    """

    step: str
    kind: str
    message: str
    answer: str = ERROR


@dataclass
class DeviceProbe:
    """Everything the probe learned about one device."""

    device: str
    kind: str
    driver: str
    address: str
    elapsed_s: float = 0.0
    identity: Identity | None = None
    expect: dict[str, str] = field(default_factory=dict)
    mismatches: list[dict[str, str]] = field(default_factory=list)
    readings: dict[str, Any] = field(default_factory=dict)
    errors: list[ProbeError] = field(default_factory=list)
    not_available: dict[str, str] = field(default_factory=dict)  # step -> the device's message
    steps: dict[str, str] = field(default_factory=dict)  # step -> ANSWERED / ERROR / NOT_AVAILABLE / NO_ANSWER

    @property
    def answered(self) -> bool:
        """The device answered something: a value, an error of its own, or "not available"."""
        return any(answer != NO_ANSWER for answer in self.steps.values())

    @property
    def status(self) -> str:
        """ANSWERED, ANSWERED_WITH_ERROR, NOT_SUPPORTED (it has none of what was asked) or NO_ANSWER."""
        if not self.answered:
            return NO_ANSWER
        if self.errors:
            return ANSWERED_WITH_ERROR
        if ANSWERED not in self.steps.values():
            return NOT_SUPPORTED
        return ANSWERED

    @property
    def ok(self) -> bool:
        """Answered everything it was asked ("not available" is an answer, not an error)."""
        return self.status == ANSWERED

    @property
    def identity_match(self) -> bool | None:
        """True/False when there was an identity and something to compare; None otherwise."""
        if self.identity is None or not self.expect:
            return None
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "kind": self.kind,
            "driver": self.driver,
            "address": self.address,
            "status": self.status,
            "answered": self.answered,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 4),
            "identity": dataclasses.asdict(self.identity) if self.identity is not None else None,
            "expect": self.expect,
            "identity_match": self.identity_match,
            "mismatches": self.mismatches,
            "readings": self.readings,
            "steps": self.steps,
            "errors": [dataclasses.asdict(e) for e in self.errors],
            "not_available": self.not_available,
        }


# ---- probing one device --------------------------------------------------------------------------
def _error(probe: DeviceProbe, step: str, exc: BaseException, operation: str) -> ProbeError:
    """A ProbeError whose message names device, address and operation whatever raised."""
    if isinstance(exc, DeviceError):
        message = str(exc)
    else:  # a driver bug or a library error that escaped: still say where and what
        detail = str(exc).strip().splitlines()
        message = f"{probe.device} ({probe.address}): {operation}: {type(exc).__name__}: {detail[-1] if detail else ''}"
    return ProbeError(step=step, kind=type(exc).__name__, message=message, answer=answer_of(exc))


def _attempt(probe: DeviceProbe, step: str, call: Callable[[], Any]) -> Any:
    """Run one step; record what the device answered; the value, or None when it gave none."""
    try:
        value = call()
    except Exception as exc:  # a probe reports every failure; it never stops at one
        answer = answer_of(exc)
        probe.steps[step] = answer
        if answer == NOT_AVAILABLE:
            probe.not_available[step] = str(exc)
        else:
            probe.errors.append(_error(probe, step, exc, "identify" if step == "identify" else f"read {step}"))
        return None
    probe.steps[step] = ANSWERED
    return value


def probe_driver(driver: Any, probe: DeviceProbe) -> DeviceProbe:
    """Identify ``driver``'s device, compare with the rack file, take one reading per capability.

    Every step is attempted whatever happened to the others: a device that did not answer one
    may answer the next, and one that lacks a reading still has the rest.
    """
    started = time.monotonic()
    try:
        probe.identity = _attempt(probe, "identify", driver.identify)
        if probe.identity is not None:
            for name in IDENTITY_FIELDS:
                want = probe.expect.get(name, "")
                got = getattr(probe.identity, name)
                if want and got != want:
                    probe.mismatches.append({"field": name, "expected": want, "actual": got})
        for reading in probe_readings(driver):
            value = _attempt(probe, reading.name, lambda r=reading: r.read(driver))
            if probe.steps[reading.name] == ANSWERED:
                probe.readings[reading.name] = value
        return probe
    finally:
        probe.elapsed_s = time.monotonic() - started


def _with_timeout(inventory: Inventory, timeout_s: float | None) -> Inventory:
    if timeout_s is None:
        return inventory
    configs = {n: dataclasses.replace(c, timeout_s=timeout_s) for n, c in inventory.configs.items()}
    return Inventory(inventory.path, inventory.data, configs)


def probe_rack(inventory: Inventory, timeout_s: float | None = None) -> list[DeviceProbe]:
    """Probe every device of ``inventory`` concurrently; one DeviceProbe per device, in rack order.

    ``timeout_s`` replaces every device's ``timeout_s`` (the per-operation limit its transport
    applies) for this probe.
    """
    inventory = _with_timeout(inventory, timeout_s)
    rack = Rack(inventory)
    probes: dict[str, DeviceProbe] = {}
    for name, spec in inventory.data.devices.items():
        config = inventory.configs[name]
        expect = {f: getattr(spec.expect, f) for f in IDENTITY_FIELDS if getattr(spec.expect, f)}
        probes[name] = DeviceProbe(name, spec.kind, spec.driver, config.address, expect=expect)
    try:
        # Build drivers up front, in this thread: a driver that cannot even be constructed (bad
        # option, plugin that fails to import) is one failed device, never a crashed probe.
        owner: dict[int, DeviceProbe] = {}
        for name, probe in probes.items():
            try:
                owner[id(rack.driver(name))] = probe
            except Exception as exc:
                probe.errors.append(_error(probe, "driver", exc, f"create driver {probe.driver!r}"))
                probe.steps["driver"] = ERROR
        reachable = [p.device for p in owner.values()]
        results = rack.fan_out(reachable, lambda drv: probe_driver(drv, owner[id(drv)]))
        for name, result in results.items():
            if result.error is not None:  # only driver creation can land here; probe_driver catches
                probes[name].errors.append(_error(probes[name], "driver", result.error, "create driver"))
                probes[name].steps["driver"] = ERROR
    finally:
        rack.close()
    return list(probes.values())


# ---- output ------------------------------------------------------------------------------------
def _secrets(inventory: Inventory) -> list[str]:
    values = []
    for config in inventory.configs.values():
        creds = config.credentials
        for secret in (creds.password, creds.community, creds.auth_key, creds.priv_key):
            if secret is not None and secret.reveal():
                value = secret.reveal()  # as given, and as the escaped table and JSON show it
                values += [value, printable(value), json.dumps(value)[1:-1]]
    return sorted(set(values), key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ***."""
    for value in secrets:
        text = text.replace(value, "***")
    return text


def _match_text(probe: DeviceProbe) -> str:
    match = probe.identity_match
    if match is None:
        return "-" if probe.identity is not None or not probe.expect else "?"
    return "match" if match else "MISMATCH " + ",".join(m["field"] for m in probe.mismatches)


def render_table(probes: list[DeviceProbe], inventory: Inventory, wall_s: float) -> str:
    """The human report: an aligned table, then every mismatch and error in full."""
    header = TABLE_HEADER
    rows = []
    for p in probes:
        ident = p.identity
        idents = [getattr(ident, f) or "-" for f in IDENTITY_FIELDS] if ident else ["-"] * 4
        cells = (p.device, p.kind, p.address, STATUS_TEXT[p.status], f"{p.elapsed_s:.2f} s", *idents, _match_text(p),
                 readings_text(p.readings, p.not_available))  # fmt: skip
        rows.append(tuple(printable(str(c)) for c in cells))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    answered = sum(1 for p in probes if p.answered)
    failed = sum(1 for p in probes if p.errors)
    out = [
        f"rack {inventory.meta.name} ({inventory.path}): {len(probes)} devices, {answered} answered, "
        f"{failed} with errors, {wall_s:.2f} s",
        "",
        line(header),
        *(line(r) for r in rows),
    ]
    mismatch_lines = [
        f"  {p.device}: {m['field']}: rack file says {m['expected']!r}, device says {m['actual']!r}"
        for p in probes
        for m in p.mismatches
    ]
    if mismatch_lines:
        out += ["", "identity mismatches:", *mismatch_lines]
    error_lines = [
        f"  [{'no answer' if e.answer == NO_ANSWER else 'error'}] {printable(e.message)}"
        for p in probes
        for e in p.errors
    ]
    if error_lines:
        out += ["", "errors:", *error_lines]
    absent_lines = [f"  {printable(message)}" for p in probes for message in p.not_available.values()]
    if absent_lines:
        out += ["", "not available on the device (not errors):", *absent_lines]
    return scrub("\n".join(out), _secrets(inventory))


def render_json(probes: list[DeviceProbe], inventory: Inventory) -> str:
    """The JSON document: ASCII only, every control character escaped by ``json``, so terminal-safe."""
    return scrub(json.dumps([p.to_json() for p in probes], indent=2), _secrets(inventory))


# ---- command line --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Handler of ``rackval probe``: 0 = every device answered everything (a reading a device does
    not have is an answer), 1 = not, 2 = bad rack file."""
    if args.timeout is not None and args.timeout <= 0:
        print("rackval probe: --timeout must be > 0", file=sys.stderr)
        return 2
    try:
        inventory = load_inventory(args.rack)
    except ConfigError as exc:
        print(f"rackval probe: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    probes = probe_rack(inventory, timeout_s=args.timeout)
    wall = time.monotonic() - started
    text = render_json(probes, inventory) if args.json else render_table(probes, inventory, wall)
    print(text, flush=True)
    return 0 if all(p.ok for p in probes) else 1


def add_parser(subparsers: Any) -> None:
    """Register ``probe`` on the ``rackval`` command's subparsers (``func`` = the handler)."""
    probe = subparsers.add_parser(
        "probe",
        help="contact every device of a rack file at once: who answers, identity vs expect, one reading each",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    probe.add_argument("--rack", required=True, help="rack file (YAML) describing the devices")
    probe.add_argument("--json", action="store_true", help="print one JSON document (a list of devices) only")
    probe.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="per-operation timeout in seconds for every device (default: each device's timeout_s)",
    )
    probe.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """``python -m rackval.harness.probe ...``: the same command without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="rackval")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["probe", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
