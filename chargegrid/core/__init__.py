"""The domain: pure, synchronous, deterministic. No I/O, no clock reads: time is an argument.

Everything here can be tested without a socket, a database or an event loop, which is why the
property tests live here. Adapters and services depend on this package; it depends on nothing
but the standard library.
"""
