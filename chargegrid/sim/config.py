"""Simulation settings and live counters.

Rules: real seconds and simulated seconds are kept apart. ``speed`` is simulated seconds per real
second; driver arrivals, departures, dwell times, battery charging and random drops run in
simulated time, while network timing (meter interval, heartbeats, call timeouts, offline periods,
reconnect backoff) is in real seconds so the CSMS sees a believable message rate at any speed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

DEFAULT_TOKENS: tuple[str, ...] = tuple(f"SIMTOKEN{n:02d}" for n in range(1, 11))
PROTOCOLS = ("1.6", "2.0.1", "2.1", "mix")


@dataclass(kw_only=True)
class SimConfig:
    """What to simulate. Defaults give ten chargers on mixed protocols at real speed."""

    url: str
    chargers: int = 10
    protocol: str = "mix"
    prefix: str = "SIM"
    password: str | None = "simulated-charger-secret"
    connectors: int = 2
    arrival_rate_per_hour: float = 2.0
    speed: float = 1.0
    meter_interval_s: float = 10.0
    id_tokens: tuple[str, ...] = DEFAULT_TOKENS
    drop_probability_per_hour: float = 0.0
    duration_s: float | None = None
    seed: int | None = None
    max_power_w: int = 22000
    connect_concurrency: int = 200
    # Additions (not in the issue text), real seconds, mainly so tests can run fast:
    offline_s: tuple[float, float] = (2.0, 5.0)
    reconnect_backoff_s: tuple[float, float] = (1.0, 30.0)
    call_timeout_s: float = 30.0
    heartbeat_cap_s: float = 60.0
    first_index: int = 1

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        if self.chargers < 0 or self.connectors < 1:
            raise ValueError("chargers must be >= 0 and connectors >= 1")
        if self.speed <= 0 or self.meter_interval_s <= 0:
            raise ValueError("speed and meter_interval_s must be positive")
        if not self.id_tokens:
            raise ValueError("id_tokens must not be empty")

    def version_for(self, index: int) -> str:
        """The subprotocol of the charger at 0-based ``index`` ("mix" alternates 1.6 and 2.0.1)."""
        if self.protocol == "mix":
            return "ocpp1.6" if index % 2 == 0 else "ocpp2.0.1"
        return f"ocpp{self.protocol}"

    def charger_id(self, index: int) -> str:
        return f"{self.prefix}-{index + self.first_index:04d}"


@dataclass(slots=True)
class SimStats:
    """Live counters shared by every simulated charger (gauges say so; the rest only grow)."""

    chargers: int = 0
    connected: int = 0  # gauge: chargers with an open WebSocket now
    booted: int = 0  # BootNotifications accepted (each reconnect boots again)
    active_sessions: int = 0  # gauge
    sessions_started: int = 0
    sessions_completed: int = 0
    energy_wh: int = 0
    meter_values: int = 0
    calls_sent: int = 0
    calls_received: int = 0  # CSMS-initiated CALLs answered
    call_errors: int = 0  # CALLERRORs received
    call_timeouts: int = 0
    reconnects: int = 0
    drops: int = 0  # connections closed by the simulator on purpose (random drop, Reset)
    replayed: int = 0  # buffered or unacknowledged messages delivered after a reconnect
    discarded: int = 0  # 1.6 messages whose transaction never got an id from the CSMS
    rejected_auth: int = 0  # handshakes refused (HTTP 401/403/404)
    connect_failures: int = 0  # other failed connection attempts
    authorize_rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
