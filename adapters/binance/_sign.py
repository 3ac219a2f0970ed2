"""Request signing and API credentials.

Binance signs ``HMAC_SHA256(secret, query_string + body)`` over **the exact bytes sent**
(ref/binance.md §2.1): the client builds the encoded string once, signs it and sends that very
string, never a dict an HTTP library might re-encode. The WS API signs the parameters sorted
by name (§2.4).

Credentials come from the environment (``REPLAYMM_API_KEY`` / ``REPLAYMM_API_SECRET``) or from a
key file readable by its owner only (mode 0600 or stricter; anything else is refused). They are
never logged, journaled or put in an exception message: ``Credentials`` hides both values from
``repr``/``str``, and the REST client strips the signature from any text it raises.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "Credentials",
    "CredentialsError",
    "encode_params",
    "load_credentials",
    "sign",
    "ws_api_payload",
]

ENV_KEY = "REPLAYMM_API_KEY"
ENV_SECRET = "REPLAYMM_API_SECRET"


class CredentialsError(Exception):
    """The API key or secret is missing, or the key file is unsafe. Never contains a secret."""


class Credentials:
    """An API key and its HMAC secret. ``repr`` and ``str`` never show either."""

    __slots__ = ("_secret", "api_key")

    def __init__(self, api_key: str, secret: str) -> None:
        if not api_key or not secret:
            raise CredentialsError("API key and secret must both be non-empty")
        self.api_key = api_key
        self._secret = secret.encode()

    def sign(self, payload: bytes) -> str:
        return sign(self._secret, payload)

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> object:  # never pickled into anything
        raise TypeError("credentials cannot be pickled")

    def secret_values(self) -> tuple[str, str]:
        """Both values, for tests that grep outputs for leaks."""
        return self.api_key, self._secret.decode()


def sign(secret: bytes, payload: bytes) -> str:
    """Hex HMAC-SHA256 of ``payload`` (the exact query string + body bytes)."""
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def encode_params(params: Iterable[tuple[str, object]]) -> str:
    """``k=v&k=v`` in the given order, percent-encoded like the official SDK (``urlencode``).

    Values are sent as given: booleans as ``true``/``false``, everything else with ``str``.
    """
    parts = []
    for k, v in params:
        if isinstance(v, bool):
            v = "true" if v else "false"
        parts.append(f"{k}={quote(str(v), safe='')}")
    return "&".join(parts)


def ws_api_payload(params: Mapping[str, object]) -> str:
    """The string the WS API signs: every param but ``signature``, sorted by name."""
    return encode_params(sorted((k, v) for k, v in params.items() if k != "signature"))


def load_credentials(
    key_file: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials from ``key_file`` if given, else from the environment.

    The key file holds two lines ``api_key=...`` and ``api_secret=...`` (``#`` comments and
    blank lines allowed) and must not be readable or writable by group or others.
    """
    if key_file is not None:
        path = Path(key_file)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise CredentialsError(f"key file {path} not found") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError(
                f"key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be readable "
                f"by its owner only: chmod 600 {path}"
            )
        values: dict[str, str] = {}
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, sep, v = line.partition("=")
            if not sep:
                raise CredentialsError(f"key file {path} line {n}: expected name=value")
            values[k.strip().lower()] = v.strip()
        key, secret = values.get("api_key", ""), values.get("api_secret", "")
        if not key or not secret:
            raise CredentialsError(f"key file {path} needs both api_key=... and api_secret=...")
        return Credentials(key, secret)
    env = os.environ if env is None else env
    key, secret = env.get(ENV_KEY, ""), env.get(ENV_SECRET, "")
    if not key or not secret:
        raise CredentialsError(
            f"no API credentials: set {ENV_KEY} and {ENV_SECRET}, or pass --key-file "
            "(a file with api_key=... and api_secret=..., mode 0600)"
        )
    return Credentials(key, secret)
