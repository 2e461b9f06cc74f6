"""Deciding whether a driver's ID token may charge.

Rules: an unknown token is Invalid; a token past its expiry is Expired whatever its stored
status; otherwise the stored status stands. Expiry is inclusive: a token expiring at ``now``
is already expired.
"""

from __future__ import annotations

from datetime import datetime

from chargegrid.core.model import IdToken, TokenStatus


def authorize(token: IdToken | None, now: datetime) -> TokenStatus:
    """The status to answer an Authorize / start request with, at ``now`` (UTC-aware)."""
    if token is None:
        return TokenStatus.INVALID
    if token.expires_at is not None and token.expires_at <= now:
        return TokenStatus.EXPIRED
    return token.status
