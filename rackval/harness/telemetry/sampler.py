"""The fixed-rate sampler: many channels from many devices at one rate, streamed into the store.

Polling is per device, not per channel: channels that share a *reader* (one driver call, see
``rackval.harness.readers``) cost that call once a tick, whatever their number. Each tick polls
every device once, concurrently (a persistent thread pool; one task per device, so a driver is
never called from two threads at once), and stamps every value with ``clock.now()`` taken at the
tick. The values are streamed into the store (``store.sample_stream``: journaled as each tick is
taken, folded into compressed segments in the background); the sampler's summaries (it is a
``Recording``, ``telemetry.series``) read them back from there on demand.

Time. Ticks are on the grid ``t0 + k / rate_hz``.

* Real time (``RealClock`` or any clock that is not the simulator's): the sampler sleeps until
  each tick. A tick that cannot start within ``late_tolerance`` of its slot (the previous tick
  was still polling) is counted in ``stats.missed_ticks`` and not run: never squeezed in late.
* Virtual time (``SimulatorClock``): after polling, the sampler advances the simulator's clock to
  the next slot (exactly one period on a frozen simulator clock), so a 30-minute soak at 1 Hz is
  1,800 ticks that each cross the real protocols but cost only their polling in wall time. In
  this mode the sampler *is* what moves time: use ``run()`` (with ``on_tick`` to act mid-soak),
  not ``start()``.

Errors. A reader that raises ``DeviceError`` (or ``ConfigError``) costs only its own channels
for that tick: each is counted in ``stats`` (per device and per channel, with the device's last
error message) and stored as a NULL value, so the report shows it as a missing sample, and the
summaries count it in ``missing``. A value the device reports as unavailable (GPU
"[N/A]", ``None`` in a reading) is also NULL but not an error. A device that does not answer
within its rack-file ``timeout_s`` (+ ``grace_s``) is left running in its thread and skipped
(counted as an error) until it comes back; the other devices keep their rate. A device the run's
``DeviceHealth`` knows is down is not waited for at all: its channels are gaps (NULL, counted as
errors) with the cause as the device's error (``stats.down`` names it), and a background re-check
brings the device back into the ticks once it answers.

Storage and memory. The sampler keeps no history of its own: the store's stream holds the open
segment of each channel (a bounded matrix) and the store the rest, so a 24-hour soak costs the
sampler what its first minute does. With ``store=None`` (unit tests, benchmarks) the samples go
to a private in-memory store that lives as long as the sampler (summaries still read after close).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rackval.core.errors import ConfigError, DeviceError, DeviceTimeout
from rackval.harness.clock import Clock, RealClock, SimulatorClock
from rackval.harness.health import DeviceHealth
from rackval.harness.rack import Rack
from rackval.harness.readers import Channel, Reader
from rackval.harness.store import RunInfo, SqliteStore
from rackval.harness.telemetry.channels import KINDS, rack_channels
from rackval.harness.telemetry.series import Recording

MAX_ERROR_EVENTS = 1000  # per sampler: when each device failed; counts go on beyond this


# ---- what a sampler did ---------------------------------------------------------------------------


@dataclass
class SamplerStats:
    """What the sampler did: ticks run and missed, samples, errors per device and channel."""

    ticks: int = 0
    missed_ticks: int = 0
    samples: int = 0  # channel values taken (incl. missing), = ticks x channels
    stored: int = 0  # rows written to the store so far
    errors: int = 0  # channel samples lost to device errors
    error_ticks: int = 0  # ticks in which at least one device failed
    errors_by_device: dict[str, int] = field(default_factory=dict)  # failed polls per device
    last_error: dict[str, str] = field(default_factory=dict)  # device -> last error message
    error_events: list[tuple[float, str, str]] = field(default_factory=list)  # (t, device, message), first 1000
    down: dict[str, str] = field(default_factory=dict)  # device -> why it was down (its ticks are gaps)
    wall_s: float = 0.0
    clock_start: float | None = None
    clock_end: float | None = None

    @property
    def clock_s(self) -> float:
        """Clock (virtual on the simulator) seconds covered so far."""
        if self.clock_start is None or self.clock_end is None:
            return 0.0
        return self.clock_end - self.clock_start


@dataclass(frozen=True)
class Progress:
    """One progress report: clock seconds done of the total, and the counts so far."""

    elapsed_s: float
    total_s: float | None
    ticks: int
    samples: int
    missed_ticks: int
    errors: int
    wall_s: float
    highlights: str = ""  # what the plan says matters so far (rack power, hottest GPU, margin)

    @property
    def eta_wall_s(self) -> float | None:
        """Wall seconds left at the pace so far (None before there is a pace, or with no total)."""
        if self.total_s is None or self.elapsed_s <= 0 or self.wall_s <= 0:
            return None
        return max(self.total_s - self.elapsed_s, 0.0) * self.wall_s / self.elapsed_s

    def line(self) -> str:
        total = f"/{self.total_s:.0f}" if self.total_s is not None else ""
        eta = f", ETA {self.eta_wall_s:.0f} s wall" if self.eta_wall_s is not None else ""
        extra = f"; {self.highlights}" if self.highlights else ""
        return (
            f"telemetry {self.elapsed_s:.0f}{total} s{eta}: {self.ticks} ticks, {self.samples} samples,"
            f" {self.missed_ticks} missed ticks, {self.errors} errors ({self.wall_s:.1f} s wall){extra}"
        )


def print_progress(p: Progress) -> None:
    """A ``progress`` callback that prints one line."""
    print(p.line(), flush=True)


# ---- the sampler --------------------------------------------------------------------------------


@dataclass
class _Device:
    name: str
    readers: list[tuple[Reader, np.ndarray, list[str]]]  # reader, channel rows, channel names
    timeout_s: float
    pending: Future[Any] | None = None


class Sampler(Recording):
    """Samples ``channels`` of ``rack`` at ``rate_hz`` on ``clock`` into the store (``None``: a
    private in-memory one), with the summaries of the Recording it is; see the module docstring.

    ``progress(Progress)`` is called at most every ``progress_every_s`` wall seconds and at the
    end; ``highlights(sampler) -> str``, when given, adds what the plan watches to that line (a
    failing highlight is left out, never stops the sampling). ``grace_s`` is added to a device's
    rack-file ``timeout_s`` before the tick stops waiting for it. ``late_tolerance`` (fraction of a
    period) is how late a real-time tick may start before it counts as missed. ``virtual``
    overrides the clock-type detection.
    """

    def __init__(
        self,
        rack: Rack,
        clock: Clock,
        store: Any,
        run_id: str,
        channels: Iterable[Channel],
        rate_hz: float = 1.0,
        *,
        max_workers: int = 32,
        progress: Callable[[Progress], None] | None = None,
        progress_every_s: float = 5.0,
        highlights: Callable[[Sampler], str] | None = None,
        grace_s: float = 1.0,
        late_tolerance: float = 0.25,
        virtual: bool | None = None,
        health: DeviceHealth | None = None,
    ) -> None:
        if rate_hz <= 0 or not math.isfinite(rate_hz):
            raise ConfigError(f"telemetry: rate_hz must be > 0, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        super().__init__(channels, 1.0 / self.rate_hz)
        self.rack, self.clock, self.store, self.run_id = rack, clock, store, run_id  # store: None = in memory
        self.virtual = isinstance(clock, SimulatorClock) if virtual is None else virtual
        self.progress, self.progress_every_s, self.highlights = progress, progress_every_s, highlights
        self.grace_s, self.late_tolerance = grace_s, late_tolerance
        self.stats = SamplerStats()
        self.health = health
        self._devices = self._group()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(max_workers, len(self._devices))), thread_name_prefix="telemetry"
        )
        if store is None:  # the history still needs a home: a private in-memory store
            store = SqliteStore(":memory:")
            store.start_run(RunInfo(run_id, time.time()))
        self._stream = store.sample_stream(run_id, [(c.name, c.device, c.unit) for c in self.channels])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._last_progress = 0.0
        self._total_s: float | None = None
        self.skipped: dict[str, Exception] = {}  # devices a factory could not ask (not sampled)

    def _group(self) -> list[_Device]:
        by_device: dict[str, dict[Reader, list[int]]] = {}
        for i, ch in enumerate(self.channels):
            by_device.setdefault(ch.device, {}).setdefault(ch.read, []).append(i)
        devices = []
        for name, readers in by_device.items():
            cfg = self.rack.inventory.configs.get(name) if hasattr(self.rack, "inventory") else None
            timeout = float(getattr(cfg, "timeout_s", 5.0) or 5.0)
            devices.append(
                _Device(
                    name,
                    [
                        (r, np.array(rows, dtype=np.int64), [self.channels[i].name for i in rows])
                        for r, rows in readers.items()
                    ],
                    timeout * len(readers),
                )
            )
        return devices

    # ---- polling ------------------------------------------------------------------------------
    @staticmethod
    def _poll(driver_of: Callable[[str], Any], dev: _Device) -> list[tuple[int, Any]]:
        """Run each reader of one device; (reader index, values dict or exception) per reader.
        After a timeout the device's remaining readers are not tried this tick."""
        out: list[tuple[int, Any]] = []
        failed: Exception | None = None
        for j, (reader, _, _) in enumerate(dev.readers):
            if failed is not None:
                out.append((j, failed))
                continue
            try:
                out.append((j, reader(driver_of(dev.name))))
            except (DeviceError, ConfigError) as exc:
                out.append((j, exc))
                if isinstance(exc, DeviceTimeout):
                    failed = exc
        return out

    def _tick(self, t: float) -> None:
        """Poll every device once; store all values stamped ``t``."""
        futures: dict[Future[Any], _Device] = {}
        busy: list[_Device] = []
        failures: list[tuple[_Device, list[int], str]] = []
        for dev in self._devices:
            cause = self.health.consult(dev.name) if self.health is not None else None
            if cause is not None:  # known down: a gap with the cause, no poll and no wait
                why = cause.describe()
                failures.append((dev, list(range(len(dev.readers))), f"DeviceDown: down since {why}"))
                with self._lock:
                    self.stats.down[dev.name] = why
                continue
            if dev.pending is not None and not dev.pending.done():
                busy.append(dev)
                continue
            dev.pending = None
            futures[self._pool.submit(self._poll, self.rack.driver, dev)] = dev
        wait_s = max((d.timeout_s for d in futures.values()), default=0.0) + self.grace_s
        done, not_done = wait_futures(futures, timeout=wait_s)
        row = np.full(len(self.channels), np.nan)
        for dev in busy:
            failures.append((dev, list(range(len(dev.readers))), "previous poll still running (no answer yet)"))
        for fut in not_done:
            dev = futures[fut]
            dev.pending = fut
            failures.append((dev, list(range(len(dev.readers))), f"no answer within {wait_s:g} s"))
        for fut in done:
            dev = futures[fut]
            try:
                results = fut.result()
            except Exception as exc:  # a reader bug (not a DeviceError): still one device only
                results = [(j, exc) for j in range(len(dev.readers))]
            bad: list[int] = []
            message = ""
            for j, got in results:
                _, rows, names = dev.readers[j]
                if isinstance(got, Exception):
                    bad.append(j)
                    message = f"{type(got).__name__}: {got}"
                    continue
                for r, name in zip(rows.tolist(), names, strict=True):
                    v = got.get(name)
                    if v is not None:
                        row[r] = v
            if bad:
                failures.append((dev, bad, message))
        with self._lock:  # the recording's lock guards the stream and the stats too
            self._stream.append(t, row)
            self._count_tick(t)
            lost = 0
            for dev, readers, message in failures:
                for j in readers:
                    rows = dev.readers[j][1]
                    self.channel_errors[rows] += 1
                    lost += rows.size
                self.stats.errors_by_device[dev.name] = self.stats.errors_by_device.get(dev.name, 0) + 1
                self.stats.last_error[dev.name] = message
                if len(self.stats.error_events) < MAX_ERROR_EVENTS:
                    self.stats.error_events.append((t, dev.name, message))
            self.stats.errors += lost
            self.stats.error_ticks += 1 if failures else 0
            self.stats.ticks += 1
            self.stats.samples += len(self.channels)
            if self.stats.clock_start is None:
                self.stats.clock_start = t
            self.stats.clock_end = t

    def _history(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        return self._stream.history(row)

    def _history_values(self, row: int) -> np.ndarray:
        return self._stream.history_values(row)

    def flush(self) -> None:
        """Close the open segments now: every sample so far is in the store's segments."""
        with self._lock:
            self._stream.flush()
            self.stats.stored = self._stream.folded

    # ---- loops ----------------------------------------------------------------------------------
    def run(self, duration_s: float, *, on_tick: Callable[[int, float], None] | None = None) -> SamplerStats:
        """Sample for ``duration_s`` clock seconds (``round(duration_s * rate_hz)`` tick slots),
        then flush. ``on_tick(k, t)`` runs after tick ``k`` (stamped ``t``), e.g. to inject a
        fault or start load mid-soak; the next tick's clock advance waits for it."""
        if self._thread is not None:
            raise RuntimeError("telemetry: the sampler is already running in the background")
        self._loop(duration_s, on_tick)
        return self.stats

    def start(self) -> None:
        """Sample in a background thread until ``stop()`` (real time only: on the simulator the
        sampler would have to move the clock under the plan's feet; use ``run()`` there)."""
        if self.virtual:
            raise RuntimeError("telemetry: start()/stop() need a real-time clock; on the simulator use run()")
        if self._thread is not None:
            raise RuntimeError("telemetry: the sampler is already running")
        self._stop.clear()

        def target() -> None:
            try:
                self._loop(None, None)
            except BaseException as exc:  # re-raised by stop(): a dead sampler must not pass silently
                self._thread_error = exc

        self._thread = threading.Thread(target=target, name="telemetry-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> SamplerStats:
        """Stop the background sampler, flush, and re-raise what killed it if anything did."""
        self._stop.set()
        if self._thread is not None:
            limit = (
                timeout_s
                if timeout_s is not None
                else self.period + max((d.timeout_s for d in self._devices), default=0) + self.grace_s + 5
            )
            self._thread.join(limit)
            if self._thread.is_alive():
                raise RuntimeError(f"telemetry: the sampler did not stop within {limit:g} s")
            self._thread = None
        if self._thread_error is not None:
            exc, self._thread_error = self._thread_error, None
            raise exc
        return self.stats

    def close(self) -> None:
        """Stop, flush and release the poll threads (a device still hung keeps its thread)."""
        try:
            if self._thread is not None:
                self.stop()
            with self._lock:
                self._stream.close()
                self.stats.stored = self._stream.folded
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self, duration_s: float | None, on_tick: Callable[[int, float], None] | None) -> None:
        wall0 = time.monotonic()
        self._total_s = duration_s
        n_slots = None if duration_s is None else max(0, round(duration_s * self.rate_hz))
        t0 = self.clock.now()
        slot = 0
        # A virtual clock that can advance and report the new time in one call (SimulatorClock)
        # costs two control round trips a tick instead of three.
        advance = getattr(self.clock, "advance", None) if self.virtual else None
        next_stamp: float | None = None
        try:
            while n_slots is None or slot < n_slots:
                if self._stop.is_set():
                    break
                target = t0 + slot * self.period
                if not self.virtual:
                    now = self.clock.now()
                    if now < target:
                        self._sleep_real(target - now)
                        if self._stop.is_set():
                            break
                        now = self.clock.now()
                    late = now - target
                    if late > self.late_tolerance * self.period:
                        # cannot start on time: count every slot we are past, resume on the grid
                        next_slot = math.ceil((now - self.late_tolerance * self.period - t0) / self.period)
                        next_slot = max(next_slot, slot + 1)
                        if n_slots is not None:
                            next_slot = min(next_slot, n_slots)
                        with self._lock:
                            self.stats.missed_ticks += next_slot - slot
                        slot = next_slot
                        continue
                    stamp = now
                else:
                    stamp = t0 if not slot else (next_stamp if next_stamp is not None else self.clock.now())
                    next_stamp = None
                self._tick(stamp)
                if on_tick is not None:
                    on_tick(slot, stamp)
                slot += 1
                if self.virtual:
                    remaining = t0 + slot * self.period - self.clock.now()
                    if remaining > 0:
                        if advance is not None:
                            next_stamp = float(advance(remaining))
                        else:
                            self.clock.sleep(remaining)
                    elif n_slots is None or slot < n_slots:
                        # a scaled simulator clock outran the polling: the slot is gone
                        next_slot = math.floor(-remaining / self.period) + slot + 1
                        with self._lock:
                            self.stats.missed_ticks += next_slot - slot
                        slot = next_slot
                self.stats.wall_s = time.monotonic() - wall0
                self._maybe_progress(t0, final=False)
            if not self._stop.is_set() and n_slots is not None and not self.virtual:
                end = t0 + n_slots * self.period
                now = self.clock.now()
                if now < end:
                    self._sleep_real(end - now)
        finally:
            self.stats.wall_s = time.monotonic() - wall0
            self.flush()
            self._maybe_progress(t0, final=True)

    def _sleep_real(self, seconds: float) -> None:
        if isinstance(self.clock, RealClock):
            self._stop.wait(seconds)
        else:
            self.clock.sleep(seconds)

    def _maybe_progress(self, t0: float, *, final: bool) -> None:
        if self.progress is None:
            return
        wall = time.monotonic()
        if not final and wall - self._last_progress < self.progress_every_s:
            return
        self._last_progress = wall
        s = self.stats
        elapsed = (s.clock_end - t0 + self.period) if s.clock_end is not None else 0.0
        try:
            extra = self.highlights(self) if self.highlights is not None else ""
        except Exception as exc:  # a progress line must never stop a soak
            extra = f"(highlights failed: {type(exc).__name__})"
        self.progress(Progress(elapsed, self._total_s, s.ticks, s.samples, s.missed_ticks, s.errors, s.wall_s, extra))


def sampler_factory(rack: Rack, clock: Clock, store: Any, run_id: str) -> Callable[..., Sampler]:
    """What a ``telemetry`` fixture hands a plan: ``telemetry(channels=None, rate_hz=1.0,
    kinds=KINDS, **sampler_options) -> Sampler``. ``channels=None`` samples everything the rack
    offers (devices that cannot be asked are skipped and named in ``sampler.skipped``). Every
    sampler made is closed (stopped, flushed) by ``close_all`` at teardown."""
    made: list[Sampler] = []

    def make(
        channels: Iterable[Channel] | None = None,
        rate_hz: float = 1.0,
        *,
        kinds: Sequence[str] = KINDS,
        **options: Any,
    ) -> Sampler:
        skipped: dict[str, Exception] = {}
        if channels is None:
            built = rack_channels(rack, kinds, strict=False)
            skipped = built.skipped
            channels = built
        options.setdefault("health", rack.health)
        sampler = Sampler(rack, clock, store, run_id, channels, rate_hz, **options)
        sampler.skipped = skipped
        made.append(sampler)
        return sampler

    def close_all() -> None:
        errors = []
        while made:
            try:
                made.pop().close()
            except Exception as exc:  # close every sampler, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    make.close_all = close_all  # type: ignore[attr-defined]
    return make
