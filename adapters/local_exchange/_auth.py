"""Binance's request authentication: HMAC-SHA256 signatures and the timestamp window.

``sign(secret, payload)`` is what a client computes; ``check_signed`` is what the exchange
does with a request (ref/binance.md §2): the signed payload is the query string
concatenated directly with the body (no ``&`` between them), both exactly as sent, minus the
``signature`` parameter; the hex digest is compared case-insensitively. Then the time window:
``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow`` (default 5000,
at most 60000), else -1021. Secrets never appear in an error message.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["AuthError", "check_signed", "check_timestamp", "sign", "signed_payload", "ws_payload"]


class AuthError(Exception):
    """A request refused before it reaches the matching engine: Binance code and message."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def sign(secret: str, payload: str | bytes) -> str:
    """hex(HMAC-SHA256(secret, payload)), as a Binance client computes it."""
    data = payload.encode() if isinstance(payload, str) else payload
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def _strip_signature(raw: bytes) -> tuple[bytes, bytes | None]:
    """``raw`` without its ``signature=...`` parameter, and that signature (None if absent)."""
    if b"signature=" not in raw:
        return raw, None
    kept: list[bytes] = []
    sig: bytes | None = None
    for part in raw.split(b"&"):
        if part.startswith(b"signature="):
            sig = part[len(b"signature=") :]
        else:
            kept.append(part)
    return b"&".join(kept), sig


def signed_payload(query: bytes, body: bytes) -> tuple[bytes, bytes | None]:
    """(the bytes a client signed, the signature it sent)."""
    q, sig_q = _strip_signature(query)
    b, sig_b = _strip_signature(body)
    return q + b, sig_q if sig_q is not None else sig_b


def check_signed(secret: str, query: bytes, body: bytes) -> None:
    payload, sig = signed_payload(query, body)
    if not sig:
        raise AuthError(
            -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
        )
    expected = sign(secret, payload)
    try:
        given = sig.decode("ascii").lower()
    except UnicodeDecodeError:
        given = ""
    if not hmac.compare_digest(expected, given):
        raise AuthError(-1022, "Signature for this request is not valid.")


def check_timestamp(params: dict[str, str], server_ms: int) -> None:
    ts_text = params.get("timestamp")
    if not ts_text:
        raise AuthError(
            -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        )
    try:
        ts = int(ts_text)
        window = int(params.get("recvWindow") or 5000)
    except ValueError:
        raise AuthError(-1100, "Illegal characters found in parameter 'timestamp'.") from None
    if window > 60_000 or window <= 0:
        raise AuthError(-1131, "recvWindow must be less than 60000")
    if ts >= server_ms + 1000:
        raise AuthError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server_ms - ts > window:
        raise AuthError(-1021, "Timestamp for this request is outside of the recvWindow.")


def ws_payload(params: dict[str, object]) -> str:
    """The WebSocket API's signed string: every param but ``signature``, sorted by name."""
    from urllib.parse import urlencode

    items = sorted(
        (k, _ws_value(v)) for k, v in params.items() if k != "signature" and v is not None
    )
    return urlencode(items)


def _ws_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
