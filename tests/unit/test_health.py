"""Device health: a device that stops answering (or that a plan knows lost power) fails later
operations at once, naming the cause, and is re-checked in the background at a bounded interval.

Every test runs on a fake clock and runs re-checks inline (``start=run_now``), so what happens
when is exact; the fan-out tests use real threads against the same registry.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, Protocol

import pytest

from rackval.core.errors import (
    DeviceAuthError,
    DeviceDown,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
)
from rackval.drivers import capabilities, registry
from rackval.drivers.capabilities import Bmc, Device, FirmwareInventory, GpuNode, Identity, PowerMeter
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.harness import rack as rack_module
from rackval.harness.guarded import capability_methods, guarded_class, guarded_driver
from rackval.harness.health import DeviceHealth, is_transport_failure
from rackval.harness.rack import Rack

CAPABILITIES: tuple[type, ...] = tuple(
    obj for obj in vars(capabilities).values() if isinstance(obj, type) and Protocol in obj.__bases__
)


class FakeTime:
    """Monotonic and wall seconds that move only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def run_now(job: Callable[[], None]) -> None:
    job()


def timeout(device: str = "node07") -> DeviceTimeout:
    return DeviceTimeout(device, "10.0.0.7:22", "SSH connect as rackval", "no SSH handshake within 5 s")


def refused(device: str = "bmc-node02") -> DeviceError:
    try:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    except ConnectionRefusedError as exc:
        try:
            raise DeviceError(device, "10.0.0.2:443", "GET /redfish/v1", f"cannot connect: {exc}") from exc
        except DeviceError as err:
            return err


def still_down(name: str) -> None:
    """A re-check of a device that still does not answer."""
    raise timeout(name)


def make_health(now: FakeTime, **options: Any) -> DeviceHealth:
    options.setdefault("recheck", still_down)
    return DeviceHealth(
        recheck_s=30.0, addresses={"node07": "10.0.0.7:22"}, start=run_now, monotonic=now, wall=now, **options
    )


def failing(exc: Exception) -> Callable[[], Any]:
    def fn() -> Any:
        raise exc

    return fn


# ---- what marks a device down -----------------------------------------------------------------------
def test_only_transport_failures_count() -> None:
    assert is_transport_failure(timeout())
    assert is_transport_failure(refused())
    reset = DeviceError("pdu-a", "10.0.0.5:161", "GET sysDescr", "reset")
    reset.__cause__ = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    assert is_transport_failure(reset)
    unreachable = DeviceError("pdu-a", "10.0.0.5:161", "GET sysDescr", "no route")
    unreachable.__context__ = OSError(errno.EHOSTUNREACH, "No route to host")
    assert is_transport_failure(unreachable)
    # the device answered: wrongly, or refusing us; a malformed answer after a reset is still an answer
    garbled = DeviceProtocolError("pdu-a", "10.0.0.5:161", "GET sysDescr", "truncated")
    garbled.__cause__ = ConnectionResetError()
    assert not is_transport_failure(garbled)
    assert not is_transport_failure(DeviceAuthError("bmc", "a", "login", "401"))
    assert not is_transport_failure(DeviceError("bmc", "a", "reset", "ResetType 'Nmi' cannot be done"))
    assert not is_transport_failure(DeviceDown("bmc", "a", "x", "down since ..."))
    assert not is_transport_failure(AssertionError("FAIL: power on pdu-a = 7 kW (limits -inf .. 6 kW)"))
    assert not is_transport_failure(TimeoutError())  # not a device's error: a bug somewhere else


@pytest.mark.parametrize(
    ("driver", "kind", "options"),
    [
        ("redfish", "bmc", {"scheme": "http"}),
        ("openbmc-ssh", "bmc", {"trust_on_first_use": True}),
        ("yokogawa-wt", "analyzer", {}),
        ("apc-rpdu2", "pdu", {"retries": 0}),
    ],
)
def test_nothing_listening_is_a_transport_failure_on_every_transport(
    driver: str, kind: str, options: dict[str, Any], tmp_path: Any
) -> None:
    """What each real transport raises when nothing listens (refused TCP, ICMP port unreachable)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if driver == "openbmc-ssh":
        options = {**options, "known_hosts": str(tmp_path / "known_hosts")}
    creds = Credentials(username="admin", password=Secret("pw"), community=Secret("public"))
    config = DeviceConfig(name="dev", kind=kind, driver=driver, host="127.0.0.1", port=port, credentials=creds,
                          options=options, timeout_s=1.0)  # fmt: skip
    drv = registry.load(driver)(config)
    try:
        with pytest.raises(DeviceError) as err:
            drv.identify()
    finally:
        drv.close()
    assert is_transport_failure(err.value), f"{type(err.value).__name__}: {err.value}"


def test_marks_down_on_transport_errors_only() -> None:
    now = FakeTime()
    health = make_health(now)
    with pytest.raises(DeviceProtocolError):
        health.call("node07", "gpus", failing(DeviceProtocolError("node07", "a", "gpus", "garbled")))
    with pytest.raises(DeviceAuthError):
        health.call("node07", "gpus", failing(DeviceAuthError("node07", "a", "gpus", "refused")))
    with pytest.raises(AssertionError):  # a measurement out of limits is a finding, not a dead device
        health.call("node07", "gpus", failing(AssertionError("FAIL: GPU temperature")))
    assert health.cause_of("node07") is None and health.causes() == []
    with pytest.raises(DeviceTimeout):  # the first failure is the device's own error, unchanged
        health.call("node07", "gpus", failing(timeout()))
    cause = health.cause_of("node07")
    assert cause is not None and cause.summary.startswith("node07 stopped answering (SSH connect as rackval:")
    assert health.causes() == [(cause, ["node07"])]


def test_fails_fast_with_the_cause_and_does_not_call_the_device() -> None:
    now = FakeTime()
    calls: list[str] = []
    test = {"id": "test_plans/test_feed_redundancy.py::test_rack_rides_through_feed_loss"}
    health = make_health(now, clock=lambda: 1234.0, current_test=lambda: test["id"])
    cause = health.mark_down(["node07", "node08"], "feed A dropped under full load")
    test["id"] = "test_plans/test_identity.py::test_device_answers_with_expected_identity[node07]"
    with pytest.raises(DeviceDown) as err:
        health.call("node07", "identify", lambda: calls.append("identify"))
    assert calls == []
    assert str(err.value) == (
        "node07 (10.0.0.7:22): identify: down since feed A dropped under full load (at 1234 s on the simulator"
        " clock, in test_plans/test_feed_redundancy.py::test_rack_rides_through_feed_loss): not retried"
        " (re-checked every 30 s)"
    )
    assert isinstance(err.value, DeviceError) and err.value.cause is cause
    # grouped: the cause is the first cause of the test that found it and of the test that hit it
    assert health.causes_of_test("test_plans/test_feed_redundancy.py::test_rack_rides_through_feed_loss") == [cause]
    assert health.causes_of_test(test["id"]) == [cause]
    assert health.causes() == [(cause, ["node07", "node08"])]
    with pytest.raises(DeviceDown, match=r"node08 \(-\): gpus: down since feed A"):  # no address known: "-"
        health.call("node08", "gpus", lambda: None)


def test_a_plan_cause_replaces_a_transport_cause_and_grows_with_each_device() -> None:
    now = FakeTime()
    recorded: list[tuple[str, list[str]]] = []
    health = make_health(now, on_cause=lambda c, devs: recorded.append((c.summary, devs)))
    with pytest.raises(DeviceTimeout):
        health.call("node07", "gpus", failing(timeout()))
    feed = health.mark_down("node07", "feed A dropped")
    assert health.mark_down(["node08"], feed) is feed
    assert health.cause_of("node07") is feed and health.cause_of("node08") is feed
    assert recorded[-2:] == [("feed A dropped", ["node07"]), ("feed A dropped", ["node07", "node08"])]
    # a later transport failure on a device already down keeps the plan's cause
    health.transport_failed("node07", timeout())
    assert health.cause_of("node07") is feed


def test_rechecks_after_the_interval_in_the_background_and_marks_up_on_success() -> None:
    now = FakeTime()
    answers: list[Exception | None] = [timeout(), None]
    rechecks: list[str] = []

    def recheck(name: str) -> None:
        rechecks.append(name)
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    answers.insert(0, timeout())  # the re-check made at once after the failure: still no answer
    health = make_health(now, recheck=recheck)
    with pytest.raises(DeviceTimeout):
        health.call("node07", "gpus", failing(timeout()))
    assert rechecks == ["node07"] and health.cause_of("node07") is not None
    now.t += 29.0
    for _ in range(5):  # within the interval: every call fails fast, nothing is re-checked
        with pytest.raises(DeviceDown):
            health.call("node07", "gpus", lambda: "gpus")
    assert rechecks == ["node07"]
    now.t += 1.0  # 30 s after: one re-check, still down; the caller does not wait for it
    with pytest.raises(DeviceDown):
        health.call("node07", "gpus", lambda: "gpus")
    assert rechecks == ["node07"] * 2 and health.cause_of("node07") is not None
    now.t += 10.0
    with pytest.raises(DeviceDown):
        health.call("node07", "gpus", lambda: "gpus")
    assert rechecks == ["node07"] * 2  # the interval counts from the last real attempt
    now.t += 20.0
    assert health.consult("node07") is not None  # the sampler's way: a gap, and the due re-check
    assert rechecks == ["node07"] * 3 and health.cause_of("node07") is None
    assert health.call("node07", "gpus", lambda: "gpus") == "gpus"  # used again


def test_one_missed_answer_costs_only_until_the_immediate_recheck() -> None:
    now = FakeTime()
    health = make_health(now, recheck=lambda name: None)  # the device answers again at once
    with pytest.raises(DeviceTimeout):
        health.call("node07", "gpus", failing(timeout()))
    assert health.cause_of("node07") is None and health.call("node07", "gpus", lambda: 3) == 3
    assert len(health.causes()) == 1  # still on record: it did miss an answer
    health.mark_down("node08", "lost power")  # a plan's mark waits the interval for its first re-check
    assert health.cause_of("node08") is not None


def test_a_device_that_answers_wrongly_on_recheck_is_up() -> None:
    now = FakeTime()
    garbled = failing(DeviceProtocolError("node07", "a", "identify", "garbled"))
    health = make_health(now, recheck=lambda name: garbled())
    health.mark_down("node07", "lost power")
    now.t += 30.0
    health.consult("node07")
    assert health.cause_of("node07") is None


def test_mark_up_and_a_success_started_after_the_mark() -> None:
    now = FakeTime()
    health = make_health(now)
    health.mark_down("node07", "lost power")
    health.mark_up("node07")
    assert health.call("node07", "gpus", lambda: 1) == 1

    # a mark made while an operation was running stands (the plan may know better than the reply)
    def slow() -> int:
        now.t += 1.0
        health.mark_down("node07", "tripped meanwhile")
        return 2

    assert health.call("node07", "gpus", slow) == 2
    assert health.cause_of("node07") is not None and health.cause_of("node07").summary == "tripped meanwhile"


def test_no_recheck_after_close_and_a_bad_interval_is_refused() -> None:
    now = FakeTime()
    rechecks: list[str] = []
    health = make_health(now, recheck=rechecks.append)
    health.mark_down("node07", "lost power")
    health.close()
    now.t += 60.0
    health.consult("node07")
    assert rechecks == []
    with pytest.raises(ValueError, match="recheck_s"):
        DeviceHealth(recheck_s=0)


# ---- fan-out: many threads, one registry ----------------------------------------------------------------
def test_thread_safe_under_fan_out() -> None:
    now = FakeTime()
    rechecks: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def recheck(name: str) -> None:  # the one made at once fails at once; a later one takes a while
        rechecks.append(name)
        if len(rechecks) > 1:
            started.set()
            release.wait(5)
        raise timeout(name)

    health = DeviceHealth(recheck_s=30.0, recheck=recheck, monotonic=now, wall=now, current_test=lambda: "t")

    def burst(i: int) -> str:
        try:
            health.call("node07", "gpus", failing(timeout()))
        except DeviceDown:
            return "down"
        except DeviceTimeout:
            return "timeout"
        return "ok"

    with ThreadPoolExecutor(32) as pool:
        outcomes = list(pool.map(burst, range(32 * 20)))
    assert outcomes.count("timeout") >= 1 and set(outcomes) <= {"timeout", "down"}
    assert len(health.causes()) == 1 and health.cause_of("node07") is not None  # one cause, however many raced
    (cause,) = health.causes_of_test("t")
    now.t += 31.0
    with ThreadPoolExecutor(32) as pool:  # many callers when the re-check is due: exactly one re-check
        assert set(pool.map(lambda _: burst(0), range(200))) == {"down"}
    assert started.wait(5) and rechecks == ["node07", "node07"]
    release.set()
    assert health.cause_of("node07") is cause


# ---- the guarded drivers ------------------------------------------------------------------------------------
class _FakeNode(Device, GpuNode, FirmwareInventory):
    """Claims three capabilities; ``identify`` calls ``firmware_inventory`` (one operation)."""

    kind = "node"

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self.calls: list[str] = []
        self.fail: Exception | None = None

    def _op(self, name: str) -> None:
        self.calls.append(name)
        if self.fail is not None:
            raise self.fail

    def identify(self) -> Identity:
        self._op("identify")
        return Identity("v", "m", "s", self.firmware_inventory()["BIOS"])

    def close(self) -> None:
        self.calls.append("close")

    def firmware_inventory(self) -> dict[str, str]:
        self._op("firmware_inventory")
        return {"BIOS": "1.0"}

    def gpus(self) -> list:  # type: ignore[type-arg]
        self._op("gpus")
        return []

    def start_load(self, level: float, duration_s: float | None = None) -> None:
        self._op("start_load")

    def stop_load(self) -> None:
        self._op("stop_load")

    def run_diag(self, level: int) -> Any:
        self._op("run_diag")

    def helper(self) -> str:  # not a capability method: not guarded
        return "helper"


def _config(name: str) -> DeviceConfig:
    return DeviceConfig(name=name, kind="node", driver="fake", host="127.0.0.1", port=22)


def test_guarded_driver_fails_fast_and_keeps_close_and_extras_unguarded() -> None:
    now = FakeTime()
    health = make_health(now)
    drv = guarded_driver(_FakeNode, _config("node07"), health)
    assert drv.identify().firmware == "1.0" and drv.calls == ["identify", "firmware_inventory"]
    drv.fail = timeout()
    with pytest.raises(DeviceTimeout):
        drv.identify()  # the nested firmware_inventory is part of the same operation
    cause = health.cause_of("node07")
    assert cause is not None and len(health.causes()) == 1
    drv.calls.clear()
    with pytest.raises(DeviceDown, match=r"node07 \(10.0.0.7:22\): start_load: down since node07 stopped"):
        drv.start_load(1.0)
    assert drv.calls == []
    drv.close()
    assert drv.helper() == "helper" and drv.calls == ["close"]
    assert type(drv).__name__ == "_FakeNode" and isinstance(drv, _FakeNode)
    assert set(capability_methods(_FakeNode)) == {
        "identify", "firmware_inventory", "gpus", "start_load", "stop_load", "run_diag",
    }  # fmt: skip


def test_rack_fan_out_keeps_one_result_per_device_with_guarded_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"node{i:02d}" for i in range(1, 33)]
    configs = {n: _config(n) for n in names}
    devices = {n: SimpleNamespace(kind="node") for n in names}
    inventory = SimpleNamespace(configs=configs, path="rack.yaml", data=SimpleNamespace(devices=devices))
    monkeypatch.setattr(rack_module.registry, "load", lambda driver: _FakeNode)
    rack = Rack(inventory, health=DeviceHealth(recheck=still_down))  # type: ignore[arg-type]
    for n in names[:8]:
        rack.driver(n).fail = timeout(n)
    first = rack.fan_out(names, lambda d: d.gpus())
    assert [r.device for r in first.values() if not r.ok] == names[:8]
    assert all(isinstance(first[n].error, DeviceTimeout) for n in names[:8])
    again = rack.fan_out(names, lambda d: d.gpus())
    assert all(isinstance(again[n].error, DeviceDown) for n in names[:8]) and all(again[n].ok for n in names[8:])
    assert [n for n in names if rack.health.cause_of(n)] == names[:8]
    assert all(rack.driver(n).calls == ["gpus"] for n in names[:8])  # not asked a second time
    rack.close()


# ---- isinstance and signatures: guarded drivers are what the plain ones are -------------------------------
@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_guarded_class_keeps_every_capability_answer_and_signature(name: str) -> None:
    import inspect

    plain = registry.load(name)
    guarded = guarded_class(plain)
    assert guarded is guarded_class(plain) and issubclass(guarded, plain) and guarded.__name__ == plain.__name__
    a, b = plain.__new__(plain), guarded.__new__(guarded)
    a.name = b.name = "dev"  # Device's data member, set per instance by the constructors
    for protocol in CAPABILITIES:
        assert isinstance(b, protocol) == isinstance(a, protocol), (name, protocol.__name__)
    methods = capability_methods(plain)
    assert methods and "close" not in methods
    for method in methods:
        assert inspect.signature(getattr(guarded, method)) == inspect.signature(getattr(plain, method)), method
        assert vars(guarded)[method] is not getattr(plain, method)  # really wrapped


def test_a_proxy_would_have_claimed_everything() -> None:
    """Why a subclass and not a ``__getattr__`` proxy: the proxy passes every runtime check."""

    class Proxy:
        name = "dev"

        def __getattr__(self, item: str) -> Any:
            return lambda *a, **k: None

    assert isinstance(Proxy(), PowerMeter) and isinstance(Proxy(), Bmc)
    drv = guarded_class(_FakeNode).__new__(guarded_class(_FakeNode))
    drv.name = "dev"
    assert not isinstance(drv, PowerMeter) and not isinstance(drv, Bmc) and isinstance(drv, GpuNode)


def test_many_calls_on_a_down_device_cost_nothing() -> None:
    health = DeviceHealth(recheck_s=30.0)
    health.mark_down("node07", "lost power")
    started = time.perf_counter()
    for _ in range(10_000):
        with pytest.raises(DeviceDown):
            health.call("node07", "gpus", lambda: None)
    assert time.perf_counter() - started < 5.0  # generous: thousands of fast failures, no timeout
