"""Request and response bodies; they are the OpenAPI document's schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chargegrid.core.model import Role, TokenStatus


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectorOut(BaseModel):
    evse_id: int
    connector_id: int
    status: str
    state: str
    error_code: str | None
    updated_at: datetime


class ChargerOut(BaseModel):
    id: str
    connected: bool
    ocpp_version: str | None
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    registered_at: datetime | None
    last_boot_at: datetime | None
    last_seen_at: datetime | None
    connectors: list[ConnectorOut]


class ChargerIn(Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[^/\s]+$")
    password: str | None = Field(default=None, min_length=8, max_length=64)


class MeterValueOut(BaseModel):
    timestamp: datetime
    values: list[dict[str, Any]]


class SessionOut(BaseModel):
    id: int | None
    charger_id: str
    evse_id: int
    connector_id: int
    transaction_id: str
    ocpp_version: str
    id_token: str | None
    status: str
    started_at: datetime
    stopped_at: datetime | None
    meter_start_wh: int | None
    meter_last_wh: int | None
    energy_wh: int
    power_w: int | None
    soc_percent: float | None
    stop_reason: str | None
    reservation_id: int | None
    meter_values: list[MeterValueOut] | None = None


class TokenIn(Strict):
    type: str = Field(default="ISO14443", max_length=32)
    status: TokenStatus = TokenStatus.ACCEPTED
    expires_at: datetime | None = None


class TokenOut(BaseModel):
    token: str
    type: str
    status: TokenStatus
    expires_at: datetime | None


class ApiKeyIn(Strict):
    role: Role
    name: str | None = Field(default=None, max_length=100)


class ApiKeyOut(BaseModel):
    key: str
    role: Role


class RemoteStartIn(Strict):
    id_token: str = Field(min_length=1, max_length=36)
    evse_id: int | None = Field(default=None, ge=1)
    connector_id: int | None = Field(default=None, ge=1)


class RemoteStopIn(Strict):
    transaction_id: str | None = Field(default=None, max_length=64)
    session_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


class ResetIn(Strict):
    type: Literal["soft", "hard"] = "soft"


class AvailabilityIn(Strict):
    operative: bool
    evse_id: int = Field(default=0, ge=0)
    connector_id: int | None = Field(default=None, ge=0)


class UnlockIn(Strict):
    evse_id: int = Field(ge=1)
    connector_id: int = Field(default=1, ge=1)


class TriggerIn(Strict):
    message: str = Field(min_length=1, max_length=50)
    evse_id: int | None = Field(default=None, ge=0)
    connector_id: int | None = Field(default=None, ge=0)


class GetConfigurationIn(Strict):
    keys: list[str] = Field(default_factory=list, max_length=100)


class ChangeConfigurationIn(Strict):
    key: str = Field(min_length=1, max_length=50)
    value: str = Field(max_length=500)


class VariableIn(Strict):
    component: str = Field(min_length=1, max_length=50)
    variable: str = Field(min_length=1, max_length=50)
    instance: str | None = Field(default=None, max_length=50)
    evse_id: int | None = None
    attribute_type: Literal["Actual", "Target", "MinSet", "MaxSet"] | None = None


class GetVariablesIn(Strict):
    variables: list[VariableIn] = Field(min_length=1, max_length=100)


class SetVariableIn(VariableIn):
    value: str = Field(max_length=1000)


class SetVariablesIn(Strict):
    values: list[SetVariableIn] = Field(min_length=1, max_length=100)


class FirmwareIn(Strict):
    location: str = Field(min_length=1, max_length=512)
    retrieve_at: datetime | None = None
    retries: int | None = Field(default=None, ge=0)
    retry_interval_s: int | None = Field(default=None, ge=0)


class CommandOut(BaseModel):
    charger_id: str
    action: str
    status: str | None
    response: dict[str, Any]


class MessageOut(BaseModel):
    at: datetime
    direction: Literal["in", "out"]
    frame: str


class Problem(BaseModel):
    """Every error answer: a sentence saying what is wrong; ``errors`` lists each invalid field
    (location, message, type) when the request did not match the schema."""

    detail: str
    errors: list[dict[str, Any]] | None = None
