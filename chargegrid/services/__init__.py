"""Use cases: the only place where the pure core meets I/O (store, bus, charger gateway).

Services receive their adapters as the interfaces in :mod:`chargegrid.services.ports`; the
composition root (``chargegrid.app``) picks the implementations.
"""
