"""Helpers for the simulated SNMP agent tests: start agents with fresh credentials, build configs."""

from __future__ import annotations

import secrets
from typing import Any

from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.sim.model import RackModel
from rackval.sim.snmp_agent import SnmpAgentServer, start_pdu_agent
from rackval.sim.snmp_engine import SnmpAgentBase
from rackval.sim.snmp_switch_agent import start_switch_snmp_agent

V3_USER = "rackval"


class Agent:
    """A running simulated agent (PDU or switch) and the credentials it was started with."""

    def __init__(self, model: RackModel, device: str, kind: str, **kwargs: Any) -> None:
        self.model = model
        self.device = device
        self.kind = kind
        self.ro = secrets.token_urlsafe(12)
        self.rw = secrets.token_urlsafe(12)
        self.auth = secrets.token_urlsafe(16)
        self.priv = secrets.token_urlsafe(16)
        v3 = {"v3_user": V3_USER, "v3_auth_key": self.auth, "v3_priv_key": self.priv}
        self.server: SnmpAgentBase
        if kind == "pdu":
            server: SnmpAgentServer = start_pdu_agent(
                model, device, community=self.ro, write_community=self.rw, **v3, **kwargs
            )
            self.server = server
        else:
            self.server = start_switch_snmp_agent(model, device, community=self.ro, **v3, **kwargs)

    def v2c(self, community: str | None = None, *, timeout_s: float = 2.0, **options: Any) -> DeviceConfig:
        return DeviceConfig(
            name=self.device,
            kind=self.kind,
            driver="sim",
            host=self.server.host,
            port=self.server.port,
            credentials=Credentials(snmp_version="2c", community=Secret(community or self.ro)),
            options={"poll_interval_s": 0.05, **options} if self.kind == "pdu" else options,
            timeout_s=timeout_s,
        )

    def v3(self, *, timeout_s: float = 2.0, **options: Any) -> DeviceConfig:
        return DeviceConfig(
            name=self.device,
            kind=self.kind,
            driver="sim",
            host=self.server.host,
            port=self.server.port,
            credentials=Credentials(
                snmp_version="3",
                username=V3_USER,
                auth_protocol="SHA256",
                auth_key=Secret(self.auth),
                priv_protocol="AES128",
                priv_key=Secret(self.priv),
            ),
            options={"poll_interval_s": 0.05, **options} if self.kind == "pdu" else options,
            timeout_s=timeout_s,
        )

    def stop(self) -> None:
        self.server.stop()
