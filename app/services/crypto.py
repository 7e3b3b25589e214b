"""Secrets at rest: password hashing, random tokens and their hashes, and sealed values."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.settings import get_settings

_hasher = PasswordHasher()
# Verifying against this keeps the time of "no such user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An Argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; spends the same time when there is no hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> str:
    """A random, URL-safe token with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The keyed hash under which a token is stored (the token itself never is)."""
    key = _derive(b"encore token hash")
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def sign(value: str, purpose: str) -> str:
    """An HMAC of a value for one purpose."""
    key = _derive(purpose.encode())
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def signatures_match(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a.encode(), b.encode())


def seal(plaintext: str) -> str:
    """Encrypt a small secret (such as a TOTP seed) with a key derived from SECRET_KEY."""
    return _fernet().encrypt(plaintext.encode()).decode()


def unseal(sealed: str) -> str | None:
    """Decrypt a sealed value; None when it cannot be (for example after a key change)."""
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


def _fernet() -> Fernet:
    return _fernet_for(_derive(b"encore sealed values"))


@lru_cache(maxsize=8)
def _fernet_for(key: bytes) -> Fernet:
    # One object per derived key: building it checks and splits the key each time.
    return Fernet(base64.urlsafe_b64encode(key))


def _derive(info: bytes) -> bytes:
    return _derive_from(get_settings().resolved_secret_key, info)


@lru_cache(maxsize=32)
def _derive_from(secret: str, info: bytes) -> bytes:
    # Cached by secret: a changed SECRET_KEY derives anew.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode())
