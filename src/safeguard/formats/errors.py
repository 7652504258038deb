"""Typed errors of the wire-format parsers and builders.

Every parser in ``safeguard.formats`` raises one of these (all ``InvalidInput``, exit code 2,
HTTP 400) on hostile or malformed input, so that callers never see a ``KeyError`` or a
``json.JSONDecodeError`` escape from a format they were handed.
"""

from __future__ import annotations

from safeguard.core.errors import InvalidInput


class FormatError(InvalidInput):
    """Bytes that do not follow the wire format they claim to be."""

    code = "FORMAT_INVALID"


class SimpleSigningInvalid(FormatError):
    code = "SIMPLE_SIGNING_INVALID"


class SignatureManifestInvalid(FormatError):
    code = "SIGNATURE_MANIFEST_INVALID"


class DSSEInvalid(FormatError):
    code = "DSSE_INVALID"


class StatementInvalid(FormatError):
    code = "INTOTO_STATEMENT_INVALID"


class ProvenanceInvalid(FormatError):
    code = "SLSA_PROVENANCE_INVALID"


class CINotDetected(InvalidInput):
    """Provenance was asked for outside a CI system we know how to describe."""

    code = "CI_NOT_DETECTED"


class BundleInvalid(FormatError):
    code = "BUNDLE_INVALID"


class RekorEntryInvalid(FormatError):
    code = "REKOR_ENTRY_INVALID"
