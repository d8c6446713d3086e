"""Plan: a power limit set through each node's BMC is met, in time, under full load.

Facilities size feeds on the assumption that node power caps work: a cap that is accepted
but not enforced, or enforced too slowly, lets a breaker trip before the BMC catches up. So,
per node (a failure names the node's BMC): the node's GPUs are loaded at 100 % (through the
safety gate), the BMC's power limit is set to ``power_cap_setpoint`` (``safety.power_cap``),
and the BMC's power reading is sampled at 1 Hz for three times ``power_cap_response_time``:

- response time: from setting the cap until every later reading is at or below the cap plus
  ``power_cap_overshoot`` (the BMC meter's accuracy) -> ``power_cap_response_time``; a cap
  never met in the window is reported as the whole window (and says so);
- settled power: the mean of the last readings, in % above the cap -> ``power_cap_overshoot``.

The limit found is restored and the load stopped at the end of each node's step (scoped undo).
Sampling is at 1 Hz, so a response time is known to within a second. A rack that does not
allow destructive actions skips the plan with the gate's reasons.
"""

from __future__ import annotations

import numpy as np
import pytest

from rackval.harness.clock import Clock
from rackval.harness.inventory import Inventory
from rackval.harness.rack import Rack
from rackval.harness.safety import SafetyGate
from rackval.harness.spec import Spec
from rackval.harness.telemetry import Channel

LOAD_LEVEL = 1.0
LOAD_SETTLE_S = 5.0  # virtual seconds of load before the cap is set
WINDOW_FACTOR = 3.0  # watch this many response-time limits after setting the cap
SETTLED_SAMPLES = 5  # the last readings averaged as "settled"


def test_power_cap_is_met_in_time(
    node_name: str, rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, clock: Clock, telemetry,
    measure,
) -> None:  # fmt: skip
    node = inventory.data.nodes[node_name]
    if node.bmc is None or node.host is None:
        pytest.skip(f"{node_name} needs a BMC (to cap) and an OS device (to load) in {inventory.path}")
    if not (expected := spec.expectation(inventory, node_name)).expects("gpu_temperature"):
        pytest.skip(f"{node_name}: no GPUs to load, {expected.describe()} does not expect gpu_temperature")
    bmc, host = node.bmc, node.host
    reasons = sorted(set(safety.refusal(bmc)) | set(safety.refusal(host)))
    if reasons:
        pytest.skip(f"power capping of {node_name} not run, refused by the safety gate: {'; '.join(reasons)}")
    cap = spec.limit("power_cap_setpoint").high
    response_limit = spec.limit("power_cap_response_time").in_unit("s").high
    overshoot_limit = spec.limit("power_cap_overshoot").in_unit("%").high
    assert cap is not None and response_limit is not None and overshoot_limit is not None, (
        "power_cap_setpoint, power_cap_response_time and power_cap_overshoot need a 'max'"
    )
    ceiling = cap * (1.0 + overshoot_limit / 100.0)
    window = WINDOW_FACTOR * response_limit
    drv = rack.driver(bmc)

    with safety.scoped():  # limit restored as found and load stopped at the end, also on failure
        safety.gpu_load(host, LOAD_LEVEL)
        clock.sleep(LOAD_SETTLE_S)
        uncapped = drv.power_watts()
        measure("node power under full load, uncapped", uncapped, "W", device=bmc, channel=node_name)
        if uncapped <= cap:
            measure("cap not exercised: full-load power already below the setpoint", uncapped, "W", device=bmc,
                    channel=node_name, detail=f"setpoint {cap:g} W")  # fmt: skip
        set_at = clock.now()
        safety.power_cap(bmc, cap)
        sampler = telemetry([Channel.single(f"{bmc}/power_w", bmc, "W", lambda d: d.power_watts())])
        sampler.run(window)

    channel = f"{bmc}/power_w"
    times, values = sampler.series(channel)
    present = values[~np.isnan(values)]
    if present.size == 0:
        pytest.fail(f"{bmc}: no power reading after setting the cap: {sampler.stats.last_error.get(bmc, '')}")
    settle = sampler.settling_time(channel, ceiling / 2.0, ceiling / 2.0)  # inside 0 .. ceiling
    if settle is None:
        response = window
        detail = f"not met within {window:g} s, last reading {present[-1]:.0f} W > {ceiling:.0f} W"
    else:
        response = settle + float(times[0] - set_at)
        detail = f"cap {cap:g} W, every reading <= {ceiling:.0f} W after this"
    measure("power cap response time", response, "s", limit="power_cap_response_time", device=bmc, channel=node_name,
            detail=detail, soft=True)  # fmt: skip
    settled = float(np.mean(present[-SETTLED_SAMPLES:]))
    measure("settled node power above the cap", 100.0 * (settled - cap) / cap, "%", limit="power_cap_overshoot",
            device=bmc, channel=node_name, detail=f"{settled:.0f} W with a {cap:g} W cap", soft=True)  # fmt: skip
