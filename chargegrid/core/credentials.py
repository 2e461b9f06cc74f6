"""Password hashing for charger credentials and API keys.

Charger passwords (OCPP security profiles 1 and 2) are checked at every WebSocket handshake,
and 10,000 chargers may reconnect at once after a restart. PBKDF2-SHA256 with a modest
iteration count keeps one check well under a millisecond while a leaked table still costs an
attacker real work; OCPP asks for 16-40 character random passwords, whose entropy is the real
protection. API keys are 256-bit random tokens, so a plain SHA-256 of them is enough.
Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac

ITERATIONS = 2_000


def hash_password(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    """``pbkdf2_sha256$ITER$SALTHEX$HASHHEX``; the salt comes from the caller (no I/O here)."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches ``encoded``; malformed hashes never match."""
    try:
        scheme, iters, salt_hex, hash_hex = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt_hex), int(iters))
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
