"""Device health, shared by a run: which devices are down, since when, and why.

A rack that fails does so in one place first: a feed drop trips the nodes, a BMC dies. Without
this registry every later test that needs such a device waits out its own transport timeouts,
one after the other, and fails with a timeout that says nothing about the feed. ``DeviceHealth``
marks a device down

- when an operation on it fails for a transport reason (``is_transport_failure``: DeviceTimeout,
  a connection refused, reset or unreachable), with that failure as the cause;
- when a plan establishes that it lost power (``mark_down(devices, "feed A dropped under full
  load")``), with the plan's words as the cause, one cause shared by every device it took down.

Later operations on a down device fail at once with ``DeviceDown`` naming the cause, when and in
which test it was found. A down device is re-checked in the background (once at once after a
transport failure, so one missed answer costs seconds, then at most every ``recheck_s`` wall
seconds) (the ``recheck`` callable, e.g. ``identify()`` on a fresh driver:
never the caller's own operation, so nobody waits and nothing destructive is repeated); an
answer marks it up again, as does a successful operation or ``mark_up`` from a plan that saw it
come back. A device that answers wrongly (DeviceProtocolError, DeviceAuthError) or measures out
of limits is never marked down: it is there.

Each cause is one ``DownCause``. The tests in which a cause was found or on which a device failed
fast are remembered per test (``causes_of_test``), so the report and the terminal summary group
failures by root cause.
"""

from __future__ import annotations

import errno
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from rackval.core.errors import DeviceAuthError, DeviceDown, DeviceError, DeviceProtocolError, DeviceTimeout

log = logging.getLogger(__name__)

T = TypeVar("T")

RECHECK_S = 30.0
"""Default: a down device gets one real (background) attempt at most this often, in wall seconds."""

TRANSPORT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
        errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETUNREACH, errno.ENETDOWN,
    }
)  # fmt: skip


def is_transport_failure(exc: BaseException) -> bool:
    """Did ``exc`` fail because the device could not be reached (rather than answered wrongly)?

    DeviceTimeout is; so is a DeviceError caused by a refused, reset or unreachable connection
    (found in its ``__cause__``/``__context__`` chain, where the transports keep the socket
    error). A protocol or authentication error means the device answered: it is not down."""
    if isinstance(exc, DeviceDown | DeviceProtocolError | DeviceAuthError) or not isinstance(exc, DeviceError):
        return False
    if isinstance(exc, DeviceTimeout):
        return True
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen:
        seen.append(link)
        if isinstance(link, ConnectionError | TimeoutError):
            return True
        if isinstance(link, OSError) and link.errno in TRANSPORT_ERRNOS:
            return True
        link = link.__cause__ or link.__context__
    return False


def found_when(found_at: float, clock_s: float | None) -> str:
    """When a cause was found: the run clock on the simulator (what its samples are stamped
    with), else UTC wall time."""
    if clock_s is not None:
        return f"{clock_s:.0f} s on the simulator clock"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(found_at))


@dataclass(frozen=True)
class DownCause:
    """Why devices are down: one event (a feed drop, a device that stopped answering).

    ``key`` is unique in the run and groups every failure the event caused; ``found_at`` is wall
    time (epoch s), ``clock_s`` the run clock (virtual seconds on the simulator; None on a real
    rack) and ``test`` the test it was found in ('' outside any)."""

    key: str
    summary: str
    test: str = ""
    found_at: float = 0.0
    clock_s: float | None = None

    def when(self) -> str:
        return found_when(self.found_at, self.clock_s)

    def describe(self) -> str:
        """'<summary> (at <when>, in <test>)': what a DeviceDown message says."""
        return f"{self.summary} (at {self.when()}" + (f", in {self.test})" if self.test else ")")


@dataclass
class _Down:
    cause: DownCause
    since: float  # monotonic, when it was marked
    last_attempt: float  # monotonic, the last real attempt (marking counts as one)
    rechecking: bool = False


def _in_daemon_thread(job: Callable[[], None]) -> None:
    threading.Thread(target=job, name="health-recheck", daemon=True).start()


class DeviceHealth:
    """The run's record of down devices; see the module docstring.

    ``addresses``: device -> address, for DeviceDown messages. ``recheck(device)`` makes one real
    attempt and raises DeviceError if the device is still unreachable (None: a down device stays
    down until marked up). ``clock()`` gives the run clock (None or an error: not known).
    ``current_test()`` the nodeid of the test running now. ``on_cause(cause, devices)`` is called
    whenever a cause is made or takes another device (to persist it); it must not raise.
    ``start`` runs a background re-check (default: a daemon thread); ``monotonic`` and ``wall``
    are the time sources (fakes in tests).
    """

    def __init__(
        self,
        *,
        recheck_s: float = RECHECK_S,
        addresses: Mapping[str, str] | None = None,
        recheck: Callable[[str], object] | None = None,
        clock: Callable[[], float | None] | None = None,
        current_test: Callable[[], str | None] | None = None,
        on_cause: Callable[[DownCause, list[str]], None] | None = None,
        start: Callable[[Callable[[], None]], None] = _in_daemon_thread,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not recheck_s > 0:
            raise ValueError(f"recheck_s must be > 0, got {recheck_s!r}")
        self.recheck_s = float(recheck_s)
        self._addresses = dict(addresses or {})
        self._recheck = recheck
        self._clock = clock
        self._current_test = current_test
        self._on_cause = on_cause
        self._start = start
        self._monotonic = monotonic
        self._wall = wall
        self._lock = threading.Lock()
        self._persist_lock = threading.Lock()
        self._down: dict[str, _Down] = {}
        self._causes: dict[str, tuple[DownCause, list[str]]] = {}
        self._found_in: dict[str, list[str]] = {}  # test -> keys of causes found in it
        self._hit_in: dict[str, Counter[str]] = {}  # test -> cause key -> fast failures
        self._numbers = itertools.count(1)
        self._closed = False

    # ---- queries ----------------------------------------------------------------------------
    def cause_of(self, device: str) -> DownCause | None:
        """Why ``device`` is down, or None when it is not known down."""
        state = self._down.get(device)
        return state.cause if state is not None else None

    def causes(self) -> list[tuple[DownCause, list[str]]]:
        """Every cause of the run (in the order found) with the devices it took down."""
        with self._lock:
            return [(c, list(devs)) for c, devs in self._causes.values()]

    def causes_of_test(self, test: str) -> list[DownCause]:
        """The causes behind test ``test``: those found in it first, then those it failed fast on
        (most often first)."""
        with self._lock:
            keys = list(self._found_in.get(test, []))
            keys += [k for k, _ in self._hit_in.get(test, Counter()).most_common() if k not in keys]
            return [self._causes[k][0] for k in keys]

    def hit(self, test: str, cause: DownCause) -> None:
        """Count a failure of ``test`` on ``cause`` that happened elsewhere (a DeviceDown raised in
        a shared fixture and re-raised by the test)."""
        with self._lock:
            if cause.key in self._causes:
                self._hit_in.setdefault(test, Counter())[cause.key] += 1

    # ---- marking ----------------------------------------------------------------------------
    def new_cause(self, summary: str) -> DownCause:
        """A cause found now, in the running test (``mark_down`` makes one from a string too)."""
        clock_s = None
        if self._clock is not None:
            try:
                clock_s = self._clock()
            except Exception as exc:  # the clock is a nicety: the cause stands without it
                log.debug("run clock unreadable for a down cause: %s", exc)
        test = (self._current_test() if self._current_test is not None else None) or ""
        return DownCause(f"cause-{next(self._numbers)}", summary, test, self._wall(), clock_s)

    def mark_down(self, devices: str | Iterable[str], cause: str | DownCause) -> DownCause:
        """Mark ``devices`` down because of ``cause`` (a new one from a string, or one returned
        earlier, to add devices to the same event). A plan's cause replaces a device's earlier
        one: the plan knows why. Returns the cause."""
        names = [devices] if isinstance(devices, str) else list(devices)
        made = self.new_cause(cause) if isinstance(cause, str) else cause
        self._mark(names, made, replace=True)
        return made

    def mark_up(self, device: str) -> None:
        """``device`` answers again (a plan saw it come back): operations go through."""
        with self._lock:
            self._down.pop(device, None)

    def close(self) -> None:
        """No more background re-checks (the run is ending; its devices are being released)."""
        self._closed = True

    def _mark(self, names: list[str], cause: DownCause, *, replace: bool, attempted: float | None = None) -> bool:
        """Mark ``names`` down; ``attempted`` is the last real attempt (default: now)."""
        now = self._monotonic()
        with self._lock:
            names = [n for n in names if replace or n not in self._down]
            if not names:
                return False
            devices = self._causes.setdefault(cause.key, (cause, []))[1]
            for name in names:
                self._down[name] = _Down(cause, now, now if attempted is None else attempted)
                if name not in devices:
                    devices.append(name)
            if cause.test and cause.key not in self._found_in.setdefault(cause.test, []):
                self._found_in[cause.test].append(cause.key)
        log.warning("down: %s: %s", ", ".join(names), cause.describe())
        self._persist(cause.key)
        return True

    def _persist(self, key: str) -> None:
        if self._on_cause is None:
            return
        with self._persist_lock:  # one writer at a time, each with the newest device list
            with self._lock:
                cause, devices = self._causes[key]
                devices = list(devices)
            try:
                self._on_cause(cause, devices)
            except Exception as exc:  # the store is gone: failing fast matters more than the record
                log.error("cannot record down cause %s: %s", cause.key, exc)

    def transport_failed(self, device: str, exc: DeviceError) -> None:
        """An operation on ``device`` could not reach it: mark it down with that failure as the
        cause (a device already down keeps its first cause). One re-check starts at once, so a
        device that only missed one answer (a loaded network, a busy BMC) is back in seconds;
        after that, one every ``recheck_s``."""
        state = self._down.get(device)
        if state is not None:
            with self._lock:
                state.last_attempt = self._monotonic()
            return
        cause = self.new_cause(f"{device} stopped answering ({exc.operation}: {exc.detail})")
        if self._mark([device], cause, replace=False, attempted=self._monotonic() - self.recheck_s):
            self.consult(device)

    # ---- the guard ----------------------------------------------------------------------------
    def down_error(self, device: str, operation: str, cause: DownCause) -> DeviceDown:
        detail = f"down since {cause.describe()}: not retried (re-checked every {self.recheck_s:g} s)"
        return DeviceDown(device, self._addresses.get(device, "-"), operation, detail, cause)

    def check(self, device: str, operation: str = "use") -> None:
        """Raise DeviceDown naming the cause if ``device`` is down (for a plan that depends on a
        device it does not call itself, e.g. a host whose ride-through it judges)."""
        state = self._down.get(device)
        if state is not None:
            raise self._fail_fast(device, operation, state)

    def consult(self, device: str) -> DownCause | None:
        """The cause if ``device`` is down (and a background re-check started when one is due),
        else None: for callers that record a gap instead of failing (the telemetry sampler)."""
        state = self._down.get(device)
        if state is None:
            return None
        self._maybe_recheck(device, state)
        return state.cause

    def call(self, device: str, operation: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (one operation on ``device``) unless the device is down; see the module
        docstring for what marks it down and up."""
        state = self._down.get(device)
        if state is not None:
            raise self._fail_fast(device, operation, state)
        started = self._monotonic()
        try:
            result = fn()
        except DeviceError as exc:
            if is_transport_failure(exc):
                self.transport_failed(device, exc)
            else:
                self._answered(device, started)
            raise
        self._answered(device, started)
        return result

    def _answered(self, device: str, started: float) -> None:
        """The device answered an operation started at ``started``: a mark made before that is
        out of date (one made while the operation ran stands: it may know better)."""
        state = self._down.get(device)
        if state is not None and state.since < started:
            with self._lock:
                if self._down.get(device) is state:
                    del self._down[device]

    def _fail_fast(self, device: str, operation: str, state: _Down) -> DeviceDown:
        test = self._current_test() if self._current_test is not None else None
        if test:
            with self._lock:
                self._hit_in.setdefault(test, Counter())[state.cause.key] += 1
        self._maybe_recheck(device, state)
        return self.down_error(device, operation, state.cause)

    def _maybe_recheck(self, device: str, state: _Down) -> None:
        if self._recheck is None or self._closed:
            return
        now = self._monotonic()
        with self._lock:
            if state.rechecking or now - state.last_attempt < self.recheck_s or self._down.get(device) is not state:
                return
            state.rechecking = True
            state.last_attempt = now
        self._start(lambda: self._run_recheck(device, state))

    def _run_recheck(self, device: str, state: _Down) -> None:
        assert self._recheck is not None
        try:
            self._recheck(device)
        except Exception as exc:  # still unreachable, or answered wrongly (which is up)
            if isinstance(exc, DeviceError) and not is_transport_failure(exc):
                self._recovered(device, state)
                return
            with self._lock:
                state.rechecking = False
                state.last_attempt = self._monotonic()
            log.info("re-check: %s still down: %s", device, exc)
            return
        self._recovered(device, state)

    def _recovered(self, device: str, state: _Down) -> None:
        with self._lock:
            state.rechecking = False
            if self._down.get(device) is state:
                del self._down[device]
        log.warning("up again: %s (down since %s)", device, state.cause.describe())
