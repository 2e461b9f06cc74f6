"""What the version modules share: the handler signature and the connection context they see.

A handler takes the connection context and the validated payload and returns either the
CALLRESULT payload (answered at once, no task created: the hot path) or an awaitable of it
(a coroutine runs as a task; a future, such as a meter batch commit, is awaited by callback).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from chargegrid.core.commands import Command, CommandResult, DataTransfer
from chargegrid.core.model import OcppVersion
from chargegrid.services.chargers import ChargerService
from chargegrid.services.transactions import TransactionService

Payload = dict[str, Any]
Reply = Payload | Awaitable[Payload] | Awaitable[None]


class Context(Protocol):
    charger_id: str
    version: OcppVersion


Handler = Callable[[Context, Payload], Reply]


class Unsupported(Exception):
    """A command the charger's OCPP version cannot express."""


def iso(at: datetime) -> str:
    """OCPP date-time: UTC with a Z and millisecond precision (some chargers reject more)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class VersionModule(Protocol):
    handlers: dict[str, Handler]

    def encode_command(self, command: Command) -> tuple[str, Payload]: ...
    def decode_result(self, action: str, payload: Payload) -> CommandResult: ...


class Services:
    """The services the OCPP adapter calls; built by the composition root."""

    def __init__(self, chargers: ChargerService, transactions: TransactionService) -> None:
        self.chargers = chargers
        self.transactions = transactions


async def done(aw: Awaitable[Any]) -> Payload:
    await aw
    return {}


def data_transfer(cmd: DataTransfer) -> Payload:
    """DataTransfer's payload is the same in 1.6 and 2.x."""
    p: Payload = {"vendorId": cmd.vendor_id}
    if cmd.message_id is not None:
        p["messageId"] = cmd.message_id
    if cmd.data is not None:
        p["data"] = cmd.data
    return p


def decode_result(action: str, payload: Payload) -> CommandResult:
    """A charger's answer: most carry a ``status``; the rest (GetConfiguration, ...) have none."""
    status = payload.get("status")
    return CommandResult(action=action, status=status if isinstance(status, str) else None, payload=payload)
