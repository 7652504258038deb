"""What a key's retirement and revocation times mean for a signature, judged at the LOG time.

Time is the transparency log's integrated time of the signature, never the wall clock of whoever
verifies (DESIGN.md, "Time comes from the log"). For one key, at ``log_time``:

* *retired at T*: the key signs no more. Signatures the log integrated before T stay valid; those
  integrated at or after T are ``retired`` (refused).
* *revoked at T* (compromise): signatures integrated at or after T are ``revoked`` (refused); those
  before T are ``flag_for_review``: still valid, but someone must look at them, since the
  compromise may predate its discovery.
* neither: ``valid``; a key nothing is known about: ``unknown``.

Several sources may speak about one key (the policy's ``trustRoots.*.keys[].retiredAt``/
``revokedAt``, the store's custody records of ``safeguard keys``): the stricter answer wins
(``stricter``). Pure functions and values, no I/O; the verifier
(``safeguard.verify.custody_check``) and key custody (``safeguard.signing.custody``) both apply
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final


class KeyState(StrEnum):
    VALID = "valid"
    RETIRED = "retired"
    REVOKED = "revoked"
    FLAG_FOR_REVIEW = "flag_for_review"
    UNKNOWN = "unknown"


_SEVERITY: Final = {
    KeyState.UNKNOWN: 0,
    KeyState.VALID: 1,
    KeyState.FLAG_FOR_REVIEW: 2,
    KeyState.RETIRED: 3,
    KeyState.REVOKED: 4,
}


def aware(when: datetime) -> datetime:
    """``when`` with a time zone (a naive time is UTC)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def state_at(
    log_time: datetime, retired_at: datetime | None, revoked_at: datetime | None
) -> KeyState:
    """The module's rules for one key's times at ``log_time``."""
    log_time = aware(log_time)
    if revoked_at is not None:
        return KeyState.REVOKED if log_time >= aware(revoked_at) else KeyState.FLAG_FOR_REVIEW
    if retired_at is not None and log_time >= aware(retired_at):
        return KeyState.RETIRED
    return KeyState.VALID


def stricter(a: KeyState, b: KeyState) -> KeyState:
    """The stricter of two answers about one key."""
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


@dataclass(frozen=True, slots=True)
class KeyTimes:
    """A key's lifecycle times from one source (``source``: ``policy``, ``custody``, ...)."""

    key_id: str
    name: str
    retired_at: datetime | None = None
    revoked_at: datetime | None = None
    reason: str | None = None
    source: str = "policy"

    def state_at(self, log_time: datetime) -> KeyState:
        return state_at(log_time, self.retired_at, self.revoked_at)
