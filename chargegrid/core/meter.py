"""Meter values: normalising OCPP samples and reading energy, power and state of charge.

Rules:
- Values are converted to base units (Wh, W, varh, var, A, V, %): 1.6 sends strings with a
  ``unit`` ("kWh", ...), 2.x sends numbers with ``unitOfMeasure`` {unit, multiplier}.
- A missing measurand means "Energy.Active.Import.Register" (both versions' default); a
  missing unit means Wh (the default for that measurand).
- Signed 1.6 values (``format: SignedData``) carry no number and are skipped here; the raw
  frame stays in the message log.
- Timestamps without a zone are taken as UTC, as real chargers that omit the "Z" mean UTC.
- A sample's digest is a hash of its content, so a replayed sample is recognised and stored
  once while two different samples with the same timestamp are both kept (the store keys
  samples by charger, timestamp and digest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from chargegrid.core.model import MeterSample, SampledValue

ENERGY_REGISTER = "Energy.Active.Import.Register"
_FIELDS = "%s,%r,%s,%s,%s,%s"  # one SampledValue, all six fields
POWER = "Power.Active.Import"
SOC = "SoC"

_SCALE: dict[str, tuple[str, float]] = {
    "kWh": ("Wh", 1000.0),
    "kW": ("W", 1000.0),
    "kvarh": ("varh", 1000.0),
    "kvar": ("var", 1000.0),
    "kVA": ("VA", 1000.0),
    "Percent": ("%", 1.0),
}


def parse_timestamp(text: str) -> datetime:
    """Parse an OCPP date-time; naive values are UTC. Raises ValueError on garbage."""
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    return at.astimezone(UTC)


def _normalise(unit: str, value: float) -> tuple[str, float]:
    scaled = _SCALE.get(unit)
    if scaled is None:
        return unit, value
    return scaled[0], value * scaled[1]


def values_v16(sampled: Iterable[Mapping[str, Any]]) -> tuple[SampledValue, ...]:
    """Normalise 1.6 ``sampledValue`` entries (string values)."""
    out = []
    for sv in sampled:
        if sv.get("format") == "SignedData":
            continue
        try:
            number = float(sv["value"])
        except (KeyError, ValueError):
            continue
        unit, number = _normalise(sv.get("unit", "Wh"), number)
        get = sv.get
        out.append(
            SampledValue(
                get("measurand", ENERGY_REGISTER), number, unit, get("phase"), get("location"), get("context")
            )
        )
    return tuple(out)


def values_v2(sampled: Iterable[Mapping[str, Any]]) -> tuple[SampledValue, ...]:
    """Normalise 2.0.1 / 2.1 ``sampledValue`` entries (numbers with a unit multiplier)."""
    out = []
    for sv in sampled:
        uom = sv.get("unitOfMeasure") or {}
        number = float(sv["value"]) * (10.0 ** int(uom.get("multiplier", 0)))
        unit, number = _normalise(uom.get("unit", "Wh"), number)
        get = sv.get
        out.append(
            SampledValue(
                get("measurand", ENERGY_REGISTER), number, unit, get("phase"), get("location"), get("context")
            )
        )
    return tuple(out)


def make_sample(
    *,
    charger_id: str,
    evse_id: int,
    connector_id: int,
    transaction_id: str | None,
    timestamp: datetime,
    values: tuple[SampledValue, ...],
) -> MeterSample:
    """Build a sample and its content digest."""
    # The charger and the timestamp are not hashed: the store's key is (charger, timestamp,
    # digest), so the digest only tells apart samples of one charger at one instant. Joined by
    # hand: this runs once per sample on the MeterValues hot path, and repr() costs more.
    key = f"{evse_id}|{connector_id}|{transaction_id or ''}|" + "|".join([_FIELDS % v for v in values])
    digest = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    return MeterSample(charger_id, evse_id, connector_id, transaction_id, timestamp, values, digest)


def samples_v16(
    *,
    charger_id: str,
    evse_id: int,
    connector_id: int,
    transaction_id: str | None,
    meter_values: Iterable[Mapping[str, Any]],
) -> tuple[MeterSample, ...]:
    """The samples of a 1.6 ``meterValue`` list: ``values_v16`` and ``make_sample`` in one pass.

    This is the MeterValues hot path; one loop without intermediate tuples and calls costs
    about half of composing the two. ``test_core`` checks that both give the same samples.
    """
    prefix = f"{evse_id}|{connector_id}|{transaction_id or ''}|"
    scale = _SCALE
    fields = _FIELDS
    out = []
    for mv in meter_values:
        values = []
        keys = []
        for sv in mv["sampledValue"]:
            get = sv.get
            if get("format") == "SignedData":
                continue
            try:
                number = float(sv["value"])
            except (KeyError, ValueError):
                continue
            unit = get("unit", "Wh")
            scaled = scale.get(unit)
            if scaled is not None:
                unit, number = scaled[0], number * scaled[1]
            v = SampledValue(
                get("measurand", ENERGY_REGISTER), number, unit, get("phase"), get("location"), get("context")
            )
            values.append(v)
            keys.append(fields % v)
        digest = hashlib.blake2b((prefix + "|".join(keys)).encode(), digest_size=12).hexdigest()
        out.append(
            MeterSample(
                charger_id, evse_id, connector_id, transaction_id, parse_timestamp(mv["timestamp"]), tuple(values),
                digest,
            )
        )
    return tuple(out)


def _total(values: Iterable[SampledValue], measurand: str, unit: str) -> float | None:
    """The value of a measurand: the un-phased value if given, else the sum over phases.

    Only the outlet/unspecified location counts: an EV-side reading is not what was delivered.
    """
    total: float | None = None
    for sv in values:
        if sv.measurand != measurand or sv.unit != unit or sv.location in ("EV", "Inlet"):
            continue
        if sv.phase is None:
            return sv.value
        if sv.phase in ("L1", "L2", "L3", "L1-N", "L2-N", "L3-N"):
            total = (total or 0.0) + sv.value
    return total


def energy_register_wh(values: Iterable[SampledValue]) -> int | None:
    """The energy import register in whole Wh (rounded down), if the sample has it."""
    total = _total(values, ENERGY_REGISTER, "Wh")
    return None if total is None else int(total)


def power_w(values: Iterable[SampledValue]) -> int | None:
    """The active import power in whole W, if the sample has it."""
    total = _total(values, POWER, "W")
    return None if total is None else int(total)


def soc_percent(values: Iterable[SampledValue]) -> float | None:
    """The vehicle's state of charge in percent, if the sample has it."""
    for sv in values:
        if sv.measurand == SOC:
            return sv.value
    return None
