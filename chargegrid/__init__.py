"""chargegrid: an open-source central system (CSMS) for EV charging networks."""

__version__ = "0.1.0"
