"""A ``Signer`` whose private key stays in a PKCS#11 token (HSM, smart card, SoftHSM2).

Addressed by an RFC 7512 URI (``safeguard.keys.pkcs11_uri``): the token by ``token``/``serial``/
``slot-id``, the key by ``object`` (CKA_LABEL) and/or ``id`` (CKA_ID), the module by
``module-path`` (or the ``module_path`` argument, or ``COSIGN_PKCS11_MODULE_PATH``), the PIN by
``pin-value``, ``pin-source=file:<path>``, the ``pin`` argument or ``COSIGN_PKCS11_PIN``.

Mechanisms (PKCS#11 v2.40 section 2.3 and v3.0 section 2.3.14): ECDSA keys sign with the plain
``CKM_ECDSA`` over a digest hashed here (SHA-256 for P-256, SHA-384 for P-384), since tokens such
as SoftHSM2 lack ``CKM_ECDSA_SHA256``; the raw ``r || s`` result is DER-encoded. Ed25519 keys
(``CKK_EC_EDWARDS``) sign the message with ``CKM_EDDSA``. The public key is read from the
token's public-key object (``CKA_EC_PARAMS`` + ``CKA_EC_POINT``).

One session per token is opened and logged in when the first signer on it is built, and reused
for every signature by every signer on that token (PKCS#11 logs in per application and token);
a lock serialises its use, so signers may be shared between threads. Since a second ``C_Login``
cannot check a PIN once the token is logged in, the shared session keeps a salted scrypt hash of
the PIN it was opened with and every later signer must present the same PIN (compared in constant
time); any other PIN, or none, is refused exactly like a rejected login.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from safeguard.keys.base import (
    Algorithm,
    PublicHalf,
    PublicKey,
    der_signature_from_raw,
)
from safeguard.keys.errors import (
    KeyInvalid,
    KeyUnsupported,
    PKCS11ObjectNotFound,
    PKCS11PinInvalid,
    PKCS11TokenNotFound,
    PKCS11Unavailable,
    PKCS11URIInvalid,
)
from safeguard.keys.pkcs11_uri import PKCS11URI, parse_pkcs11_uri

MODULE_ENV: Final = "COSIGN_PKCS11_MODULE_PATH"
PIN_ENV: Final = "COSIGN_PKCS11_PIN"

# DER encodings of CKA_EC_PARAMS: a namedCurve OID, or (Ed25519 on PKCS#11 3.0 tokens such as
# SoftHSM2) the PrintableString "edwards25519".
_CURVES: Final[dict[bytes, ec.EllipticCurve | None]] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06032b6570"): None,
    b"\x13\x0cedwards25519": None,
}


def _unwrap_octet_string(value: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING holding the point; some tokens return it bare."""
    if len(value) >= 2 and value[0] == 0x04:
        first = value[1]
        if first < 0x80:
            start, length = 2, first
        else:
            count = first & 0x7F
            start, length = 2 + count, int.from_bytes(value[2 : 2 + count], "big")
        if start + length == len(value):
            return value[start:]
    return value


def public_key_from_attributes(ec_params: bytes, ec_point: bytes) -> PublicKey:
    """A ``cryptography`` public key from a token's ``CKA_EC_PARAMS`` and ``CKA_EC_POINT``."""
    if ec_params not in _CURVES:
        raise KeyUnsupported("the token key is on a curve Safeguard does not support")
    curve = _CURVES[ec_params]
    point = _unwrap_octet_string(ec_point)
    try:
        if curve is None:
            return ed25519.Ed25519PublicKey.from_public_bytes(point)
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError as exc:
        raise KeyInvalid(f"the token's public key point is invalid: {exc}") from None


def _resolve_pin(uri: PKCS11URI, pin: str | None, env: Mapping[str, str]) -> str | None:
    if pin is not None:
        return pin
    if uri.pin_value is not None:
        return uri.pin_value
    source = uri.pin_source
    if source is not None:
        path = source[5:] if source.startswith("file:") else source
        if "://" in path:
            raise PKCS11URIInvalid("pin-source must be a local file (file:/path)")
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise PKCS11PinInvalid(
                f"cannot read the PIN from {path}: {exc.strerror}",
                hint="point pin-source at a readable file holding the PIN",
            ) from None
    return env.get(PIN_ENV)


# A per-process random salt: the PIN hash kept beside a shared session is useless elsewhere, and
# scrypt makes each comparison cost a few milliseconds, slowing guesses through ``acquire``.
_PIN_SALT: Final = os.urandom(16)


def _pin_hash(pin: str | None) -> bytes:
    material = b"\x00" if pin is None else b"\x01" + pin.encode("utf-8")
    return hashlib.scrypt(material, salt=_PIN_SALT, n=2**12, r=8, p=1, dklen=32)


class _SharedSession:
    """One logged-in session per (module, token), shared by every signer on that token.

    PKCS#11 logs in per application and token, so a second ``C_Login`` fails with
    ``CKR_USER_ALREADY_LOGGED_IN``; and a session is not safe for concurrent operations, so all
    its users share one lock. The session closes when its last signer closes.
    """

    _registry: ClassVar[dict[tuple[str, str], _SharedSession]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: tuple[str, str], session: Any, pin_hash: bytes) -> None:
        self.key = key
        self.session = session
        self.pin_hash = pin_hash
        self.lock = threading.Lock()
        self.users = 0

    @classmethod
    def acquire(cls, module: str, token: Any, pin: str | None) -> _SharedSession:
        key = (module, f"{token.label}/{token.serial!r}")
        pin_hash = _pin_hash(pin)
        with cls._registry_lock:
            shared = cls._registry.get(key)
            if shared is None:
                shared = cls(key, _open_session(token, pin), pin_hash)
                cls._registry[key] = shared
            elif not hmac.compare_digest(shared.pin_hash, pin_hash):
                # The token is already logged in for this process, so C_Login would not check
                # this PIN: refuse it as the token would have.
                raise _pin_rejected(token)
            shared.users += 1
            return shared

    def release(self) -> None:
        with self._registry_lock:
            self.users -= 1
            if self.users > 0:
                return
            self._registry.pop(self.key, None)
        with self.lock, contextlib.suppress(pkcs11.PKCS11Error):
            self.session.close()


def _pin_rejected(token: Any) -> PKCS11PinInvalid:
    return PKCS11PinInvalid(
        f"the PIN was rejected by token {token.label!r}",
        hint="check pin-value/pin-source or COSIGN_PKCS11_PIN; repeated failures lock the token",
    )


def _open_session(token: Any, pin: str | None) -> Any:
    try:
        return token.open(user_pin=pin)
    except (pkcs11.PinIncorrect, pkcs11.PinLenRange, pkcs11.PinInvalid):
        raise _pin_rejected(token) from None
    except pkcs11.PinLocked:
        raise PKCS11PinInvalid(
            "the token's user PIN is locked", hint="ask the token's security officer"
        ) from None
    except pkcs11.UserPinNotInitialized:
        raise PKCS11PinInvalid("the token has no user PIN set") from None
    except pkcs11.PKCS11Error as exc:
        raise PKCS11Unavailable(f"cannot open a session on the token: {exc!r}") from None


class PKCS11Signer(PublicHalf):
    """Signs with a token key; see the module docstring. Close it (or use ``with``) when done."""

    def __init__(
        self,
        uri: str | PKCS11URI,
        *,
        pin: str | None = None,
        module_path: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        environment = os.environ if env is None else env
        self._uri = parse_pkcs11_uri(uri) if isinstance(uri, str) else uri
        module = module_path or self._uri.module_path or environment.get(MODULE_ENV)
        if not module:
            raise PKCS11URIInvalid(
                "no PKCS#11 module given",
                hint=f"add ?module-path=/path/to/module.so to the URI or set {MODULE_ENV}",
            )
        if self._uri.object is None and self._uri.id is None:
            raise PKCS11URIInvalid(
                "the PKCS#11 URI names no key", hint="add object=<label> and/or id=<%xx bytes>"
            )
        self._shared: _SharedSession | None = None
        self._session: Any = None
        try:
            library = pkcs11.lib(module)
        except pkcs11.PKCS11Error as exc:
            raise PKCS11Unavailable(
                f"cannot load the PKCS#11 module {module}: {exc}",
                hint="check module-path points at the vendor's PKCS#11 library",
            ) from None
        token = self._find_token(library)
        user_pin = _resolve_pin(self._uri, pin, environment)
        self._shared = _SharedSession.acquire(module, token, user_pin)
        self._lock = self._shared.lock
        self._session = self._shared.session
        try:
            self._private = self._find_key(ObjectClass.PRIVATE_KEY)
            public = self._find_key(ObjectClass.PUBLIC_KEY)
            public_key = self._read_public_key(public)
        except BaseException:
            self.close()
            raise
        self._set_public_key(public_key)

    def _find_token(self, library: Any) -> Any:
        criteria: dict[str, Any] = {}
        if self._uri.token is not None:
            criteria["token_label"] = self._uri.token
        if self._uri.serial is not None:
            criteria["token_serial"] = self._uri.serial.encode("utf-8")
        try:
            if self._uri.slot_id is not None:
                slots = [
                    s
                    for s in library.get_slots(token_present=True)
                    if s.slot_id == self._uri.slot_id
                ]
                if not slots:
                    raise pkcs11.NoSuchToken()
                token = slots[0].get_token()
                if self._uri.token is not None and token.label != self._uri.token:
                    raise pkcs11.NoSuchToken()
                return token
            return library.get_token(**criteria)
        except pkcs11.NoSuchToken:
            raise PKCS11TokenNotFound(
                f"no PKCS#11 token matches {self._uri.redacted()}",
                hint="list tokens with `pkcs11-tool --module <lib> -L` and check token=/serial=",
            ) from None
        except pkcs11.MultipleTokensReturned:
            raise PKCS11TokenNotFound(
                "several PKCS#11 tokens match; name one with token= or serial="
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise PKCS11Unavailable(f"cannot list PKCS#11 tokens: {exc!r}") from None

    def _find_key(self, object_class: ObjectClass) -> Any:
        attributes: dict[Attribute, Any] = {Attribute.CLASS: object_class}
        if self._uri.object is not None:
            attributes[Attribute.LABEL] = self._uri.object
        if self._uri.id is not None:
            attributes[Attribute.ID] = self._uri.id
        kind = "private" if object_class == ObjectClass.PRIVATE_KEY else "public"
        with self._lock:
            try:
                # Consume the search fully so C_FindObjectsFinal runs now, on an open session.
                found = list(self._session.get_objects(attributes))
            except pkcs11.PKCS11Error as exc:
                raise PKCS11Unavailable(f"cannot search the token: {exc!r}") from None
        if not found:
            raise PKCS11ObjectNotFound(
                f"no {kind} key matches {self._uri.redacted()}",
                hint="list objects with `pkcs11-tool --module <lib> -O --login` and check "
                "object=/id=",
            )
        if len(found) > 1:
            raise PKCS11ObjectNotFound(
                f"several {kind} keys match {self._uri.redacted()}; add id= or object="
            )
        return found[0]

    @staticmethod
    def _read_public_key(public: Any) -> PublicKey:
        if public.key_type not in (KeyType.EC, KeyType.EC_EDWARDS):
            raise KeyUnsupported(f"token key type {public.key_type!r} is not supported")
        return public_key_from_attributes(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])

    @property
    def uri(self) -> PKCS11URI:
        return self._uri

    def _raw_sign(self, data: bytes, mechanism: Mechanism) -> bytes:
        if self._shared is None:
            raise PKCS11Unavailable("the PKCS#11 signer is closed")
        with self._lock:
            if self._session is None:
                raise PKCS11Unavailable("the PKCS#11 session is closed")
            try:
                result: bytes = self._private.sign(data, mechanism=mechanism)
            except pkcs11.PKCS11Error as exc:
                raise PKCS11Unavailable(f"the token failed to sign: {exc!r}") from None
            return result

    def sign(self, data: bytes) -> bytes:
        if self._algorithm is Algorithm.ED25519:
            return self._raw_sign(data, Mechanism.EDDSA)
        name = self._algorithm.hash_name
        assert name is not None
        return self.sign_digest(hashlib.new(name, data).digest())

    def sign_digest(self, digest: bytes) -> bytes:
        if self._algorithm is Algorithm.ED25519:
            raise KeyUnsupported("Ed25519 signs messages, not digests")
        hash_algorithm = self._algorithm.hash_algorithm
        assert hash_algorithm is not None
        if len(digest) != hash_algorithm.digest_size:
            raise KeyInvalid(
                f"a {self._algorithm} digest is {hash_algorithm.digest_size} bytes, "
                f"not {len(digest)}"
            )
        return der_signature_from_raw(self._raw_sign(digest, Mechanism.ECDSA))

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            with shared.lock:
                self._session = None
            shared.release()

    def __enter__(self) -> PKCS11Signer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
