"""Settings: command-line options override ``CHARGEGRID_*`` environment variables, which
override the defaults below."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHARGEGRID_", extra="ignore")

    database_url: str = "sqlite:///./chargegrid.db"
    host: str = "127.0.0.1"
    ocpp_port: int = 9000
    http_port: int = 8080
    auto_register: bool = False
    heartbeat_interval: int = 300
    log_format: str = "console"  # console | json
    log_level: str = "info"
    message_log_size: int = 40
    command_timeout: float = 30.0
    rate_per_s: float = 50.0
    migrate: bool = True
