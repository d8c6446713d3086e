"""The Redfish Chassis of a simulated node, its thermal resources and its sensors.

Why a module of its own: the chassis is where a real BMC reports the node's physics — every
temperature, fan and power reading, with thresholds and health — and the harness reads it
every second during a plan, so these read-only documents are kept together (the power
resources, which can also be written, are in ``rackval.sim.redfish_power``).

What is served, read from the model at request time: ``Chassis/1`` (health rolled up from PSUs,
fans and temperatures), legacy ``Thermal``, ``ThermalSubsystem`` with ``Fans/{id}`` and
``ThermalMetrics``, and ``Sensors/{id}`` (temperatures, total power, fan speeds, each PSU's
input power, input voltage and output power); a liquid-cooled node's coolant connector, leak
detection and coolant sensors come from ``rackval.sim.redfish_coolant``.
"""

from __future__ import annotations

from typing import Any

from rackval.sim.redfish_coolant import CoolantResources
from rackval.sim.redfish_readings import NodeReadings, fan_status, psu_status, threshold_health, worst
from rackval.sim.redfish_schema import (
    CHASSIS,
    CHASSIS_ID,
    FANS,
    MANAGER,
    SENSORS,
    SYSTEM,
    V1,
    collection,
    ref,
    resource,
    status_doc,
)
from rackval.sim.redfish_state import BmcState, Route

# PSU sensor kind -> (ReadingType, ReadingUnits, key in NodeReadings.psu_readings, name suffix)
_PSU_SENSORS = {
    "InputPower": ("Power", "W", "input_w", "Input Power"),
    "OutputPower": ("Power", "W", "output_w", "Output Power"),
    "InputVoltage": ("Voltage", "V", "volts", "Input Voltage"),
}


class ChassisResources:
    """Builds the chassis, thermal and sensor documents of one node."""

    def __init__(self, state: BmcState, readings: NodeReadings) -> None:
        self.state = state
        self.model = state.model
        self.readings = readings
        self.coolant = CoolantResources(state.model, state.node)  # nothing for an air-cooled node

    def routes(self) -> dict[str, Route]:
        fans = range(1, self.readings.fans + 1)
        sensors = self.readings.sensor_ids()
        coolant_sensors = self.coolant.sensor_ids()
        r = {
            f"{V1}/Chassis": Route(lambda: collection("ChassisCollection", f"{V1}/Chassis", [CHASSIS])),
            CHASSIS: Route(self.chassis),
            f"{CHASSIS}/Thermal": Route(self.thermal),
            f"{CHASSIS}/ThermalSubsystem": Route(self.thermal_subsystem),
            FANS: Route(lambda: collection("FanCollection", FANS, [f"{FANS}/Fan{i}" for i in fans])),
            f"{CHASSIS}/ThermalSubsystem/ThermalMetrics": Route(self.thermal_metrics),
            SENSORS: Route(
                lambda: collection(
                    "SensorCollection",
                    SENSORS,
                    [f"{SENSORS}/{s}" for s in self.readings.sensor_ids() + coolant_sensors],
                )
            ),
            **self.coolant.routes(),
        }
        for i in fans:
            r[f"{FANS}/Fan{i}"] = Route(lambda i=i: self.fan(i))
        for sensor in sensors:
            r[f"{SENSORS}/{sensor}"] = Route(lambda sensor=sensor: self.sensor(sensor))
        return r

    def chassis(self) -> dict[str, Any]:
        model, node = self.model, self.state.node
        n = model.nodes[node]
        return resource(
            CHASSIS,
            "Chassis",
            Id=CHASSIS_ID,
            Name=f"{node} chassis",
            ChassisType="RackMount",
            Manufacturer=n.info.vendor,
            Model=n.info.model,
            SerialNumber=n.info.serial,
            PowerState=model.host_state(node),
            Status=status_doc("Enabled", "OK", worst([self.readings.health_rollup(), *self.coolant.health()])),
            EnvironmentMetrics=ref(f"{CHASSIS}/EnvironmentMetrics"),
            PowerSubsystem=ref(f"{CHASSIS}/PowerSubsystem"),
            ThermalSubsystem=ref(f"{CHASSIS}/ThermalSubsystem"),
            Sensors=ref(SENSORS),
            Power=ref(f"{CHASSIS}/Power"),
            **{"Power@Redfish.Deprecated": "Please migrate to use PowerSubsystem."},
            Thermal=ref(f"{CHASSIS}/Thermal"),
            **{"Thermal@Redfish.Deprecated": "Please migrate to use ThermalSubsystem."},
            Links={
                "ComputerSystems": [ref(SYSTEM)],
                "ManagedBy": [ref(MANAGER)],
                "ManagersInChassis": [ref(MANAGER)],
            },
            **self.coolant.chassis_links(),
        )

    # ---- thermal ------------------------------------------------------------------------------
    def thermal(self) -> dict[str, Any]:
        limits = self.readings.temperature_limits()
        temps = []
        for i, (sid, name, value, context) in enumerate(self.readings.temperatures()):
            caution, critical = limits[sid]
            temps.append(
                {
                    "@odata.id": f"{CHASSIS}/Thermal#/Temperatures/{i}",
                    "MemberId": str(i),
                    "Name": name,
                    "ReadingCelsius": value,
                    "UpperThresholdNonCritical": caution,
                    "UpperThresholdCritical": critical,
                    "PhysicalContext": context,
                    "Status": status_doc("Enabled", threshold_health(value, caution, critical)),
                }
            )
        fans = [
            {
                "@odata.id": f"{CHASSIS}/Thermal#/Fans/{i - 1}",
                "MemberId": str(i - 1),
                "Name": f"Fan{i}",
                "Reading": rpm,
                "ReadingUnits": "RPM",
                "PhysicalContext": "Backplane",
                "Status": fan_status(rpm, failed),
            }
            for i, rpm, _, failed in self.readings.fan_readings()
        ]
        return resource(f"{CHASSIS}/Thermal", "Thermal", Id="Thermal", Name="Thermal", Temperatures=temps, Fans=fans)

    def thermal_subsystem(self) -> dict[str, Any]:
        healths = [fan_status(rpm, failed)["Health"] for _, rpm, _, failed in self.readings.fan_readings()]
        return resource(
            f"{CHASSIS}/ThermalSubsystem",
            "ThermalSubsystem",
            Id="ThermalSubsystem",
            Name="Thermal Subsystem",
            Fans=ref(FANS),
            ThermalMetrics=ref(f"{CHASSIS}/ThermalSubsystem/ThermalMetrics"),
            Status=status_doc("Enabled", "OK", worst(healths + self.coolant.health())),
            **self.coolant.thermal_links(),
        )

    def fan(self, number: int) -> dict[str, Any]:
        _, rpm, duty, failed = self.readings.fan_readings()[number - 1]
        return resource(
            f"{FANS}/Fan{number}",
            "Fan",
            Id=f"Fan{number}",
            Name=f"Fan{number}",
            PhysicalContext="Chassis",
            Status=fan_status(rpm, failed),
            SpeedPercent={"Reading": duty, "SpeedRPM": rpm, "DataSourceUri": f"{SENSORS}/Fan{number}"},
            HotPluggable=True,
        )

    def thermal_metrics(self) -> dict[str, Any]:
        temps = self.readings.temperatures()
        hottest_gpu = max((t for t in temps if t[3] == "GPU"), key=lambda t: t[2], default=temps[0])
        inlet, exhaust = temps[0], temps[-1]
        return resource(
            f"{CHASSIS}/ThermalSubsystem/ThermalMetrics",
            "ThermalMetrics",
            Id="ThermalMetrics",
            Name="Chassis Thermal Metrics",
            TemperatureSummaryCelsius={
                "Intake": {"Reading": inlet[2], "DataSourceUri": f"{SENSORS}/{inlet[0]}"},
                "Internal": {"Reading": hottest_gpu[2], "DataSourceUri": f"{SENSORS}/{hottest_gpu[0]}"},
                "Exhaust": {"Reading": exhaust[2], "DataSourceUri": f"{SENSORS}/{exhaust[0]}"},
            },
            TemperatureReadingsCelsius=[
                {"DeviceName": name, "Reading": value, "DataSourceUri": f"{SENSORS}/{sid}"}
                for sid, name, value, _ in temps
            ],
        )

    # ---- sensors ------------------------------------------------------------------------------
    def sensor(self, sensor_id: str) -> dict[str, Any]:
        doc = resource(f"{SENSORS}/{sensor_id}", "Sensor", Id=sensor_id)
        limits = self.readings.temperature_limits()
        if sensor_id in limits:
            _, name, value, context = next(t for t in self.readings.temperatures() if t[0] == sensor_id)
            caution, critical = limits[sensor_id]
            doc.update(
                Name=name,
                ReadingType="Temperature",
                ReadingUnits="Cel",
                Reading=value,
                PhysicalContext=context,
                Status=status_doc("Enabled", threshold_health(value, caution, critical)),
                Thresholds={
                    "UpperCaution": {"Reading": caution, "Activation": "Increasing"},
                    "UpperCritical": {"Reading": critical, "Activation": "Increasing"},
                },
            )
        elif sensor_id == "TotalPower":
            watts = round(self.model.bmc_reading_power_w(self.state.node), 1)
            doc.update(
                Name="Total Input Power",
                ReadingType="Power",
                ReadingUnits="W",
                Reading=watts,
                PhysicalContext="Chassis",
                ElectricalContext="Total",
                Status=status_doc(),
            )
        elif sensor_id.startswith("Fan"):
            number = int(sensor_id[3:])
            _, rpm, duty, failed = self.readings.fan_readings()[number - 1]
            doc.update(
                Name=f"Fan{number} Speed",
                ReadingType="Percent",
                ReadingUnits="%",
                Reading=duty,
                SpeedRPM=rpm,
                PhysicalContext="Fan",
                Status=fan_status(rpm, failed),
            )
        else:
            psu = max((p for p in self.readings.psus if sensor_id.startswith(p)), key=len)
            kind = sensor_id[len(psu) :]
            r = self.readings.psu_readings(psu)
            reading_type, unit, key, label = _PSU_SENSORS[kind]
            doc.update(
                Name=f"{psu} {label}",
                ReadingType=reading_type,
                ReadingUnits=unit,
                Reading=r[key],
                PhysicalContext="PowerSupply",
                Status=psu_status(r["status"]),
            )
        return doc
