"""Commands to chargers (remote start/stop, reset, availability, configuration, firmware...).

The service checks what the charger can be asked (a 1.6 charger has no GetVariables, a 2.x one
no GetConfiguration) before anything goes on the wire, so the operator gets a clear 4xx
instead of a NotImplemented from the charger, and it logs every command with its outcome.
"""

from __future__ import annotations

import structlog

from chargegrid.core.commands import (
    ChangeConfiguration,
    Command,
    CommandResult,
    GetConfiguration,
    GetVariables,
    SetVariables,
)
from chargegrid.core.model import OcppVersion
from chargegrid.services.ports import ChargerGateway, ChargerOffline, CommandRejected

log = structlog.get_logger("chargegrid.commands")

_V16_ONLY = (GetConfiguration, ChangeConfiguration)
_V2_ONLY = (GetVariables, SetVariables)


class CommandService:
    def __init__(self, gateway: ChargerGateway, *, default_timeout_s: float = 30.0) -> None:
        self.gateway = gateway
        self.default_timeout_s = default_timeout_s

    async def send(self, charger_id: str, command: Command, timeout_s: float | None = None) -> CommandResult:
        version = self.gateway.version_of(charger_id)
        if version is None:
            raise ChargerOffline(charger_id)
        if version is OcppVersion.V16 and isinstance(command, _V2_ONLY):
            raise CommandRejected("NotSupported", f"{type(command).__name__} needs OCPP 2.x; charger speaks 1.6")
        if version is not OcppVersion.V16 and isinstance(command, _V16_ONLY):
            raise CommandRejected(
                "NotSupported", f"{type(command).__name__} is OCPP 1.6 only; use get/set variables for 2.x"
            )
        try:
            result = await self.gateway.send(charger_id, command, timeout_s or self.default_timeout_s)
        except Exception as exc:
            log.warning("command.failed", charger_id=charger_id, command=type(command).__name__, error=str(exc))
            raise
        log.info("command.sent", charger_id=charger_id, command=type(command).__name__, status=result.status)
        return result
