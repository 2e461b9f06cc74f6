"""Charger and driver simulator: an OCPP 1.6 / 2.0.1 / 2.1 client fleet for demos and load tests.

Rules: the simulator is a client of the CSMS and shares no code with the server side (an
import-linter contract keeps ``chargegrid.sim`` away from ``ocpp``, ``api``, ``store``, ``bus``,
``web`` and ``services``), so it tests the server from the outside, as real chargers would.
"""

from chargegrid.sim.battery import Battery, acceptance_power_w, charge
from chargegrid.sim.config import SimConfig, SimStats
from chargegrid.sim.runner import run_simulation

__all__ = ["Battery", "SimConfig", "SimStats", "acceptance_power_w", "charge", "run_simulation"]
