"""Operator administration: ID tokens and API keys.

API keys are shown once at creation and stored only as a SHA-256 hash. Lookups of a presented
key are cached briefly in memory, since every API request presents one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime

from chargegrid.core.credentials import hash_api_key
from chargegrid.core.model import IdToken, Role
from chargegrid.services.ports import ApiKeyRecord, Store

KEY_PREFIX = "cgk_"


class AdminService:
    def __init__(self, store: Store, clock: Callable[[], datetime], *, key_cache_s: float = 30.0) -> None:
        self.store = store
        self.clock = clock
        self.key_cache_s = key_cache_s
        self._keys: dict[str, tuple[float, ApiKeyRecord | None]] = {}

    async def create_api_key(self, role: Role, name: str | None = None) -> str:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        await self.store.add_api_key(hash_api_key(key), role, name, self.clock())
        return key

    async def role_for_key(self, key: str) -> Role | None:
        """The role of a presented API key, or None if unknown or revoked."""
        h = hash_api_key(key)
        cached = self._keys.get(h)
        mono = time.monotonic()
        if cached is not None and cached[0] > mono:
            record = cached[1]
        else:
            record = await self.store.get_api_key(h)
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[h] = (mono + self.key_cache_s, record)
        if record is None or record.revoked:
            return None
        return record.role

    async def upsert_token(self, token: IdToken) -> None:
        await self.store.upsert_token(token)

    async def list_tokens(self) -> list[IdToken]:
        return await self.store.list_tokens()

    async def get_token(self, token: str) -> IdToken | None:
        return await self.store.get_token(token)

    async def delete_token(self, token: str) -> bool:
        return await self.store.delete_token(token)
