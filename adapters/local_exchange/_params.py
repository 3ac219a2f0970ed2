"""Errors and request parameters: Binance's ``{"code", "msg"}`` answers, the query string
and form body parsed by Binance's rules (query wins, no empty or padded values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from replay.sim import Reject

__all__ = ["ApiError", "Response"]


class ApiError(Exception):
    """A Binance error answer ``{"code": ..., "msg": ...}`` with its HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: never answer (the "timeout" fault): the server keeps the connection silent
    hang: bool = False


def _missing(name: str) -> ApiError:
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _err(e: ApiError | Reject) -> dict[str, Any]:
    if isinstance(e, ApiError):
        return {"code": e.code, "msg": e.msg}
    return {"code": e.code, "msg": e.message}


def _params(query: bytes, body: bytes) -> dict[str, str]:
    """Query string and form body; the query string wins on a duplicate (Binance's rule)."""
    out: dict[str, str] = {}
    for raw in (body, query):
        if not raw:
            continue
        try:
            pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise ApiError(-1100, "Illegal characters found in a parameter.") from None
        for k, v in pairs:
            if v == "" or v != v.strip():
                raise ApiError(
                    -1102, f"Mandatory parameter '{k}' was not sent, was empty/null, or malformed."
                )
            out[k] = v
    return out


def _int(p: dict[str, str], name: str, default: int) -> int:
    v = p.get(name)
    if v is None:
        return default
    try:
        return int(v)
    except ValueError:
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'.") from None


def _ws_text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return msgspec.json.encode(v).decode()
    return str(v)
