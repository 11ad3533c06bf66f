"""API keys (stored as hashes) and secrets (encrypted at rest)."""

from __future__ import annotations

import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken

KEY_PREFIX = "dk_"


def generate_api_key() -> str:
    return f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"


def hash_api_key(key: str) -> str:
    # Keys carry 256 bits of entropy, so a fast hash is safe and keeps auth cheap.
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """The part of a key that may be shown to help people tell keys apart."""
    return key[:10]


class SecretBox:
    """Encrypts secret values with the deployment's Fernet key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise ValueError(
                "secret cannot be decrypted with the configured DEEPLOYD_SECRET_KEY"
            ) from exc
