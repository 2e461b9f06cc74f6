"""HTTP API adapter (FastAPI): operators' REST API with OpenAPI, and live events over SSE."""
