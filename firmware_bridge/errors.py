"""The firmware_bridge error tree: one root, so callers (and the CLIs' exit statuses) tell its errors apart.

`FirmwareBridgeError` is the root of every error this package raises on purpose: `RequestError` (a
request or setting refused before a byte is sent), `bus.BusError` (a transaction failed on the wire),
`safety.SafetyRefused` (a safety setting or start condition refused) and `safety.SafetyTripped` (a run ended by a safety reaction).
"""

from __future__ import annotations


class FirmwareBridgeError(Exception):
    """Root of every error firmware_bridge raises on purpose."""


class RequestError(FirmwareBridgeError, ValueError):
    """A bus request or setting refused before anything was sent: unknown motor or register, value out of range."""
