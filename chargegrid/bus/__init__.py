"""Event bus adapters: in-process by default (NATS / Redis for several nodes come later)."""
