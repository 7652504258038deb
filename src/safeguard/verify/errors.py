"""The one error the verification checks raise: a named reason why a signature was refused.

``CheckFailed.reason_code`` is a stable name for the reason (``SIGNATURE_INVALID``,
``DIGEST_MISMATCH``, ``TLOG_KEY_OUTSIDE_VALIDITY``...), listed in ``docs/verification.md``; the
engine records it in the evidence of the signature it refused and carries on with the next one.
"""

from __future__ import annotations

from safeguard.core.errors import VerificationFailed


class CheckFailed(VerificationFailed):
    code = "VERIFICATION_FAILED"

    def __init__(self, reason_code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason_code = reason_code
