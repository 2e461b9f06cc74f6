"""Run a fleet of simulated chargers against a CSMS, optionally with a live terminal panel.

Rules: every charger is one task (plus a reader per connection) under this function; they all
share one seeded random generator, one connection gate (``connect_concurrency`` handshakes at a
time, so a thousand chargers do not stampede the server) and one ``SimStats``. The run ends after
``duration_s`` real seconds or on cancellation; either way every socket is closed before
returning. A crash in a charger (a simulator bug) stops the run and is raised, not hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from chargegrid.sim.charger import SimCharger
from chargegrid.sim.config import SimConfig, SimStats

__all__ = ["SimConfig", "SimStats", "run_simulation"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def run_simulation(
    config: SimConfig,
    *,
    stats: SimStats | None = None,
    progress: bool = True,
    wallclock: Callable[[], datetime] | None = None,
) -> SimStats:
    """Run ``config.chargers`` chargers until ``config.duration_s`` elapses or the task is cancelled.

    Pass ``stats`` to watch the counters live from elsewhere; ``progress=False`` prints nothing.
    ``wallclock`` supplies message timestamps (UTC); timers use the event loop's clock.
    """
    stats = stats if stats is not None else SimStats()
    stats.chargers += config.chargers
    rng = random.Random(config.seed)
    gate = asyncio.Semaphore(max(1, config.connect_concurrency))
    chargers = [
        SimCharger(config, index, stats=stats, rng=rng, gate=gate, wallclock=wallclock or _utcnow)
        for index in range(config.chargers)
    ]
    tasks = [asyncio.create_task(charger.run(), name=charger.charger_id) for charger in chargers]
    try:
        async with _panel(config, stats, enabled=progress):
            if tasks:
                # Charger tasks only finish by crashing: stop at the first one.
                await asyncio.wait(tasks, timeout=config.duration_s, return_when=asyncio.FIRST_EXCEPTION)
            elif config.duration_s is not None:
                await asyncio.sleep(config.duration_s)
            else:
                await asyncio.Event().wait()
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return stats


@contextlib.asynccontextmanager
async def _panel(config: SimConfig, stats: SimStats, *, enabled: bool) -> AsyncIterator[None]:
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    with Live(render(config, stats, 0.0), console=Console(), refresh_per_second=2, transient=False) as live:
        rate = 0.0

        async def refresh() -> None:
            nonlocal rate
            last_calls, last_at = stats.calls_sent, loop.time()
            while True:
                await asyncio.sleep(0.5)
                now = loop.time()
                rate = (stats.calls_sent - last_calls) / max(now - last_at, 1e-6)
                last_calls, last_at = stats.calls_sent, now
                live.update(render(config, stats, rate))

        task = asyncio.create_task(refresh(), name="sim-progress")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])
            live.update(render(config, stats, rate))


def render(config: SimConfig, stats: SimStats, calls_per_s: float) -> Panel:
    """The live panel: connections, sessions, energy, traffic and failures."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("connected", f"{stats.connected}/{stats.chargers}", "booted", str(stats.booted)),
        ("active sessions", str(stats.active_sessions), "completed", str(stats.sessions_completed)),
        ("energy", f"{stats.energy_wh / 1000:,.1f} kWh", "meter values", str(stats.meter_values)),
        ("calls/s", f"{calls_per_s:,.1f}", "calls sent", str(stats.calls_sent)),
        ("errors", str(stats.call_errors + stats.call_timeouts), "rejected auth", str(stats.rejected_auth)),
        ("reconnects", str(stats.reconnects), "replayed", str(stats.replayed)),
    ]
    for row in rows:
        table.add_row(*row)
    title = f"chargegrid simulate · {config.url} · OCPP {config.protocol} · ×{config.speed:g}"
    return Panel(table, title=title, expand=False)
