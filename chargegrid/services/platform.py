"""The set of services the HTTP API and the dashboard are given (built by ``chargegrid.app``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from chargegrid.services.admin import AdminService
from chargegrid.services.chargers import ChargerService
from chargegrid.services.commands import CommandService
from chargegrid.services.ports import ChargerGateway, EventBus
from chargegrid.services.transactions import TransactionService


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    chargers: ChargerService
    transactions: TransactionService
    commands: CommandService
    admin: AdminService
    gateway: ChargerGateway
    bus: EventBus
    clock: Callable[[], datetime]
