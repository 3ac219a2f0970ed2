"""Errors, by who is to blame (h11's scheme).

``InvalidEvent``: the outside world sent something the engine cannot apply (a fill for a
cancelled order twice, a transition the order table forbids). The reducer turns it into a
journaled alert and keeps running; nothing in the state changed.

``InvariantViolation``: a bug in us. The engine stops: every later ``step`` raises too.
"""

from __future__ import annotations

__all__ = ["ConfigError", "EngineError", "InvalidEvent", "InvariantViolation"]


class EngineError(Exception):
    """Abstract base; raise one of the subclasses."""

    def __init__(self, *args: object) -> None:
        if type(self) is EngineError:
            raise TypeError("EngineError is abstract: raise InvalidEvent or InvariantViolation")
        super().__init__(*args)


class InvalidEvent(EngineError):
    """A venue-caused event that cannot be applied; ``code`` is a short alert kind."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InvariantViolation(EngineError):
    """An internal bug: the state can no longer be trusted."""


class ConfigError(ValueError):
    """A config value is invalid; the message is one line naming the key and the fix."""
