"""OCPP adapter: OCPP-J framing, schema validation and the per-version message modules."""
