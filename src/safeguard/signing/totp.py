"""TOTP (RFC 6238) for release engineers' second factor: HMAC-SHA-1, 30-second steps, 6 digits.

Implemented here with ``hmac``/``hashlib`` rather than a dependency: the algorithm is a dozen lines
(RFC 4226 §5.3 HOTP with dynamic truncation, over the time-step counter of RFC 6238 §4.2), it is
checked against the RFC's own test vectors (Appendix B), and no TOTP library is among the
project's dependencies. SHA-1, 30 s and 6 digits are what every authenticator app supports for an
``otpauth://`` URI (Google Authenticator's Key Uri Format), so they are fixed.

Verification (``match``) accepts the current step and one step either side (RFC 6238 §5.2
recommends at most one step of network delay), compares in constant time, and returns the
matching *counter*: the caller refuses any counter at or below the last one it accepted, so a
code cannot be used twice, nor can an older code be used after a newer one (RFC 6238 §5.2, "the
verifier MUST NOT accept the second attempt of the OTP after the successful validation").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from typing import Final
from urllib.parse import quote, urlencode

STEP: Final = 30
DIGITS: Final = 6
SECRET_BYTES: Final = 20  # RFC 4226 §4 R6: 160 bits recommended for HMAC-SHA-1
WINDOW: Final = 1


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def counter_at(when: float, step: int = STEP) -> int:
    """The RFC 6238 time-step counter T = floor((now - T0) / X), T0 = 0."""
    return int(when // step)


def hotp(secret: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226 §5.3: HMAC over the 8-byte big-endian counter, dynamic truncation, modulo."""
    mac = hmac.new(secret, struct.pack(">Q", counter), getattr(hashlib, digest)).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def totp(
    secret: bytes, when: float | None = None, digits: int = DIGITS, digest: str = "sha1"
) -> str:
    return hotp(secret, counter_at(time.time() if when is None else when), digits, digest)


def match(secret: bytes, code: str, when: float | None = None, window: int = WINDOW) -> int | None:
    """The counter whose code ``code`` is, within ``window`` steps of ``when``; else ``None``."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    now = counter_at(time.time() if when is None else when)
    found = None
    for counter in range(now - window, now + window + 1):
        # No early exit: every candidate is computed and compared in constant time.
        if hmac.compare_digest(hotp(secret, counter), code):
            found = counter
    return found


def b32(secret: bytes) -> str:
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def otpauth_uri(secret: bytes, account: str, issuer: str = "Safeguard") -> str:
    """``otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30``
    (Google Authenticator Key Uri Format), for a QR code or manual entry."""
    label = quote(f"{issuer}:{account}", safe=":@")
    query = urlencode(
        {
            "secret": b32(secret),
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP,
        }
    )
    return f"otpauth://totp/{label}?{query}"
