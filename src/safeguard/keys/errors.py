"""Typed errors of the key room: wrong passwords and PINs, missing tokens and objects.

Each carries a stable code and a hint; all are usage errors (exit 2) except an unreachable HSM
library or device (exit 3), and a signature that does not verify (exit 1).
"""

from __future__ import annotations

from safeguard.core.errors import InvalidInput, NotFound, SafeguardError, Unreachable


class KeyInvalid(InvalidInput):
    """Key material that cannot be read or used (bad PEM, unsupported algorithm...)."""

    code = "KEY_INVALID"


class KeyUnsupported(KeyInvalid):
    code = "KEY_UNSUPPORTED"


class KeyPasswordInvalid(InvalidInput):
    code = "KEY_PASSWORD_INVALID"


class KeyPasswordMissing(InvalidInput):
    code = "KEY_PASSWORD_MISSING"


class KeyFileExists(InvalidInput):
    code = "KEY_FILE_EXISTS"


class KeyNotFound(NotFound):
    code = "KEY_NOT_FOUND"


class PKCS11URIInvalid(InvalidInput):
    code = "PKCS11_URI_INVALID"


class PKCS11PinInvalid(InvalidInput):
    code = "PKCS11_PIN_INVALID"


class PKCS11TokenNotFound(NotFound):
    code = "PKCS11_TOKEN_NOT_FOUND"


class PKCS11ObjectNotFound(NotFound):
    code = "PKCS11_OBJECT_NOT_FOUND"


class PKCS11Unavailable(Unreachable):
    """The PKCS#11 module could not be loaded or the device failed."""

    code = "PKCS11_UNAVAILABLE"


class KeylessUnavailable(SafeguardError):
    """Keyless (Fulcio/Rekor) signing cannot start: no identity token, or no trust config."""

    code = "KEYLESS_UNAVAILABLE"
