"""Composition root: builds the store, bus, services and adapters, and runs them.

This is the one module that knows every adapter; they start and stop through one
AsyncExitStack in the order that keeps data safe (the OCPP listener closes before the meter
batcher's final flush, the database closes last).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from chargegrid.api.app import create_api
from chargegrid.bus.memory import MemoryBus
from chargegrid.config import Settings
from chargegrid.ocpp.common import Services
from chargegrid.ocpp.server import OcppServer, ServerConfig
from chargegrid.services.admin import AdminService
from chargegrid.services.chargers import ChargerService
from chargegrid.services.commands import CommandService
from chargegrid.services.platform import Platform
from chargegrid.services.transactions import TransactionService
from chargegrid.store.db import create_engine, migrate
from chargegrid.store.sql import SqlStore
from chargegrid.web.dashboard import mount_dashboard

log = structlog.get_logger("chargegrid")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(kw_only=True)
class Csms:
    settings: Settings
    store: SqlStore
    bus: MemoryBus
    platform: Platform
    ocpp: OcppServer
    http: FastAPI
    http_port: int = 0

    @property
    def ocpp_url(self) -> str:
        return f"ws://{self.settings.host}:{self.ocpp.config.port}/ocpp"

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.http_port}"


class _Metrics(Collector):
    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    def collect(self) -> Any:
        o = self.csms.ocpp
        t = self.csms.platform.transactions
        yield GaugeMetricFamily("chargegrid_connected_chargers", "Chargers connected to this node",
                                value=len(o.connections))
        for name, value, doc in (
            ("chargegrid_ocpp_frames_in", o.frames_in, "OCPP frames received"),
            ("chargegrid_ocpp_frames_out", o.frames_out, "OCPP frames sent"),
            ("chargegrid_ocpp_frames_rejected", o.frames_rejected, "Malformed OCPP frames"),
            ("chargegrid_ocpp_handshakes_refused", o.refused, "Refused WebSocket handshakes"),
            ("chargegrid_ocpp_throttled", o.throttled, "Times a charger was throttled"),
            ("chargegrid_meter_samples_written", t.samples_written, "Meter samples stored"),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily("chargegrid_active_sessions", "Active charging sessions",
                                value=len(t.active_sessions()))


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: the process's signal handling stays ours, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _periodic(interval: float, fn: Callable[[], Any], name: str) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await fn()
        except Exception:
            log.exception("periodic.failed", task=name)


@contextlib.asynccontextmanager
async def open_csms(settings: Settings, *, clock: Callable[[], datetime] = utcnow,
                    serve_http: bool = True) -> AsyncIterator[Csms]:
    """Start everything; on exit stop it all in a safe order."""
    async with contextlib.AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        store = SqlStore(engine)
        stack.push_async_callback(store.close)
        if settings.migrate:
            await migrate(engine)
        bus = MemoryBus()
        chargers = ChargerService(store, bus, clock, auto_register=settings.auto_register,
                                  heartbeat_interval_s=settings.heartbeat_interval)
        await chargers.start()
        stack.push_async_callback(chargers.stop)
        transactions = TransactionService(store, bus, clock)
        await transactions.start()
        stack.push_async_callback(transactions.stop)
        ocpp = OcppServer(
            Services(chargers, transactions),
            ServerConfig(host=settings.host, port=settings.ocpp_port, message_log_size=settings.message_log_size,
                         rate_per_s=settings.rate_per_s, call_timeout_s=settings.command_timeout),
        )
        await ocpp.start()
        stack.push_async_callback(ocpp.stop)
        platform = Platform(
            chargers=chargers,
            transactions=transactions,
            commands=CommandService(ocpp, default_timeout_s=settings.command_timeout),
            admin=AdminService(store, clock),
            gateway=ocpp,
            bus=bus,
            clock=clock,
        )
        http = create_api(platform)
        mount_dashboard(http, platform)
        csms = Csms(settings=settings, store=store, bus=bus, platform=platform, ocpp=ocpp, http=http)
        collector = _Metrics(csms)
        REGISTRY.register(collector)
        stack.callback(REGISTRY.unregister, collector)

        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(_periodic(30, chargers.flush_seen, "flush_seen")),
            asyncio.create_task(_periodic(300, chargers.refresh_credentials, "refresh_credentials")),
        ]
        if serve_http:
            config = uvicorn.Config(http, host=settings.host, port=settings.http_port, log_level="warning",
                                    lifespan="off", access_log=False, timeout_graceful_shutdown=2)
            server = _EmbeddedServer(config)
            serving = asyncio.create_task(server.serve())
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.01)
            csms.http_port = server.servers[0].sockets[0].getsockname()[1]

            async def stop_http() -> None:
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(serving, 5)

            stack.push_async_callback(stop_http)

        async def cancel_tasks() -> None:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

        stack.push_async_callback(cancel_tasks)
        log.info("chargegrid.started", ocpp=csms.ocpp_url, http=csms.http_url if serve_http else None)
        yield csms
