"""An EV traction battery: capacity, state of charge and a tapering acceptance curve.

Rules (pure and deterministic: no clock, no randomness, no I/O):
- ``soc`` is a fraction in [0, 1]; energy is whole Wh; power is whole W; time is seconds.
- The battery accepts its full ``max_power_w`` below ``TAPER_START`` (80 % SoC), then a linear
  taper down to ``TAPER_FLOOR`` (10 %) of max power at 100 % SoC, the usual CC/CV shape seen in
  real charging sessions.
- ``charge`` draws ``min(offered, acceptance)`` and integrates in short steps, each step using the
  acceptance at its start. Acceptance never rises with SoC, so the average power over the call is
  never above the acceptance at the starting SoC nor above the offered power.
- Energy is conserved exactly: the SoC moves by ``delivered_wh / capacity_wh`` and the energy
  delivered is floored to whole Wh and never exceeds the room left in the battery, so SoC never
  passes 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

TAPER_START = 0.8
TAPER_FLOOR = 0.1
#: Integration step (simulated seconds). Short enough that the taper is followed closely.
STEP_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Battery:
    """A battery of ``capacity_wh`` at state of charge ``soc`` (0..1) accepting up to ``max_power_w``."""

    capacity_wh: int
    soc: float
    max_power_w: int

    def __post_init__(self) -> None:
        if self.capacity_wh <= 0:
            raise ValueError("capacity_wh must be positive")
        if not 0.0 <= self.soc <= 1.0:
            raise ValueError("soc must be within 0..1")
        if self.max_power_w < 0:
            raise ValueError("max_power_w must not be negative")

    @property
    def room_wh(self) -> int:
        """Whole Wh that still fit in the battery."""
        return max(0, math.floor((1.0 - self.soc) * self.capacity_wh + 1e-9))


def acceptance_power_w(battery: Battery, soc: float) -> int:
    """Power (W) the battery accepts at ``soc``: full power below 80 %, linear taper to 10 % at 100 %."""
    if soc < TAPER_START:
        return battery.max_power_w
    progress = min(1.0, (soc - TAPER_START) / (1.0 - TAPER_START))
    return round(battery.max_power_w * (1.0 - (1.0 - TAPER_FLOOR) * progress))


def charge(battery: Battery, offered_power_w: int, seconds: float) -> tuple[Battery, int]:
    """Charge for ``seconds`` at up to ``offered_power_w``; return the new battery and the Wh delivered.

    The delivered energy never exceeds the room left, nor ``min(offered, acceptance(soc)) * seconds``.
    """
    if seconds <= 0 or offered_power_w <= 0:
        return battery, 0
    room = battery.room_wh
    soc = battery.soc
    energy = 0.0
    left = seconds
    while left > 0 and energy < room:
        step = min(STEP_S, left)
        power = min(offered_power_w, acceptance_power_w(battery, soc))
        if power <= 0:
            break
        energy = min(float(room), energy + power * step / 3600.0)
        soc = battery.soc + energy / battery.capacity_wh
        left -= step
    # The epsilon absorbs float drift from summing steps (21999.9999 Wh is 22000 Wh).
    delivered = min(room, math.floor(energy + 1e-6))
    new_soc = min(1.0, battery.soc + delivered / battery.capacity_wh)
    return replace(battery, soc=new_soc), delivered
