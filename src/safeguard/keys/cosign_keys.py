"""cosign-compatible key files: ``cosign.key`` (encrypted private key) and ``cosign.pub``.

``cosign.key`` is a PEM block of type ``ENCRYPTED SIGSTORE PRIVATE KEY`` (older cosign wrote
``ENCRYPTED COSIGN PRIVATE KEY``; both are read) whose body is the JSON of
go-securesystemslib's ``encrypted`` package (sigstore/cosign ``pkg/cosign/keys.go``)::

    {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":<b64 32 bytes>},
     "cipher":{"name":"nacl/secretbox","nonce":<b64 24 bytes>},"ciphertext":<b64>}

The secretbox key is ``scrypt(password, salt, N, r, p, 32)`` and the plaintext a PKCS#8 DER
private key. Only the three scrypt parameter sets go-securesystemslib accepts are read (N = 2^15,
2^16 or 2^17 with r = 8, p = 1), so a tampered file cannot make us burn memory. ``cosign.pub`` is a
``PUBLIC KEY`` PEM block.

The password comes from the caller, else ``COSIGN_PASSWORD``, else an interactive prompt that a
caller can replace or turn off (``prompt=None``).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import nacl.exceptions
import nacl.secret
import nacl.utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from safeguard.formats._json import Struct, go_marshal
from safeguard.keys.base import PrivateKey, algorithm_for, public_key_pem
from safeguard.keys.errors import (
    KeyFileExists,
    KeyInvalid,
    KeyNotFound,
    KeyPasswordInvalid,
    KeyPasswordMissing,
)
from safeguard.keys.software import SoftwareSigner

SIGSTORE_PEM_TYPE: Final = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PEM_TYPE: Final = "ENCRYPTED COSIGN PRIVATE KEY"
PASSWORD_ENV: Final = "COSIGN_PASSWORD"
SCRYPT_PARAMS: Final = ((32768, 8, 1), (65536, 8, 1), (131072, 8, 1))
DEFAULT_SCRYPT: Final = (65536, 8, 1)
_PEM: Final = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n?-----END \1-----", re.DOTALL
)

PasswordPrompt = Callable[[bool], bytes]
"""``prompt(confirm)`` asks for a password (twice when ``confirm``) and returns it."""


def prompt_password(confirm: bool = False) -> bytes:
    """Ask on the terminal, as ``cosign`` does."""
    first = getpass.getpass("Enter password for private key: ")
    if confirm and getpass.getpass("Enter password for private key again: ") != first:
        raise KeyPasswordInvalid("the two passwords differ", hint="type the same password twice")
    return first.encode("utf-8")


def resolve_password(
    password: bytes | str | None,
    *,
    env: Mapping[str, str] | None = None,
    prompt: PasswordPrompt | None = prompt_password,
    confirm: bool = False,
) -> bytes:
    """The password to use: the argument, else ``COSIGN_PASSWORD``, else ``prompt``."""
    if password is not None:
        return password.encode("utf-8") if isinstance(password, str) else password
    environment = os.environ if env is None else env
    if PASSWORD_ENV in environment:
        return environment[PASSWORD_ENV].encode("utf-8")
    if prompt is None:
        raise KeyPasswordMissing(
            "no password for the key was given",
            hint=f"pass a password or set {PASSWORD_ENV}",
        )
    return prompt(confirm)


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=128 * n * r * p + 64 * 1024 * 1024
    )


def _pem_encode(kind: str, body: bytes) -> bytes:
    """PEM as Go's ``pem.EncodeToMemory``: 64-character base64 lines."""
    text = base64.b64encode(body).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n").encode()


def encrypt_private_key(
    private_key: PrivateKey,
    password: bytes,
    *,
    pem_type: str = SIGSTORE_PEM_TYPE,
    scrypt_params: tuple[int, int, int] = DEFAULT_SCRYPT,
) -> bytes:
    """``private_key`` as the bytes of a ``cosign.key`` file."""
    if pem_type not in (SIGSTORE_PEM_TYPE, COSIGN_PEM_TYPE):
        raise KeyInvalid(f"unknown cosign key PEM type {pem_type!r}")
    if scrypt_params not in SCRYPT_PARAMS:
        raise KeyInvalid(f"scrypt parameters {scrypt_params} are not ones cosign reads")
    algorithm_for(private_key)
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = nacl.utils.random(32)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    n, r, p = scrypt_params
    box = nacl.secret.SecretBox(_scrypt(password, salt, n, r, p))
    ciphertext = box.encrypt(der, nonce).ciphertext
    document = Struct(
        kdf=Struct(
            name="scrypt",
            params=Struct(N=n, r=r, p=p),
            salt=base64.b64encode(salt).decode(),
        ),
        cipher=Struct(name="nacl/secretbox", nonce=base64.b64encode(nonce).decode()),
        ciphertext=base64.b64encode(ciphertext).decode(),
    )
    return _pem_encode(pem_type, go_marshal(document))


def _field_b64(doc: object, *path: str) -> bytes:
    value: object = doc
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, str):
        raise KeyInvalid(f"encrypted key has no {'.'.join(path)}")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise KeyInvalid(f"encrypted key {'.'.join(path)} is not base64") from None


def _der_header(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content offset, content length) of the DER element at ``offset``."""
    tag = data[offset]
    first = data[offset + 1]
    if first < 0x80:
        return tag, offset + 2, first
    count = first & 0x7F
    length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
    return tag, offset + 2 + count, length


def _is_pkcs8(der: bytes) -> bool:
    """PKCS#8 ``PrivateKeyInfo`` is ``SEQUENCE{INTEGER, SEQUENCE AlgorithmIdentifier, ...}``;
    SEC1 and PKCS#1 keys have no AlgorithmIdentifier there. cosign (Go's ParsePKCS8PrivateKey)
    rejects the latter, and so do we."""
    try:
        tag, start, _ = _der_header(der, 0)
        if tag != 0x30:
            return False
        tag, start, length = _der_header(der, start)
        if tag != 0x02:
            return False
        tag, _, _ = _der_header(der, start + length)
    except IndexError:
        return False
    return tag == 0x30


def decrypt_private_key(data: bytes, password: bytes) -> PrivateKey:
    """Decrypt a ``cosign.key`` file's bytes; a wrong password raises ``KeyPasswordInvalid``."""
    match = _PEM.search(data)
    if match is None:
        raise KeyInvalid("not a PEM file", hint="expected a cosign.key file")
    kind = match.group(1).decode("ascii")
    if kind not in (SIGSTORE_PEM_TYPE, COSIGN_PEM_TYPE):
        raise KeyInvalid(
            f"unsupported PEM type {kind!r}",
            hint=f"expected {SIGSTORE_PEM_TYPE} or {COSIGN_PEM_TYPE}",
        )
    try:
        body = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        doc = json.loads(body)
    except ValueError:
        raise KeyInvalid("encrypted key body is not base64 JSON") from None
    if not isinstance(doc, dict):
        raise KeyInvalid("encrypted key body is not a JSON object")
    kdf, cipher = doc.get("kdf"), doc.get("cipher")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise KeyInvalid("encrypted key uses an unknown kdf")
    if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
        raise KeyInvalid("encrypted key uses an unknown cipher")
    params = kdf.get("params")
    triple = (
        (params.get("N"), params.get("r"), params.get("p")) if isinstance(params, dict) else None
    )
    if triple not in SCRYPT_PARAMS:
        raise KeyInvalid(f"unsupported scrypt parameters {params!r}")
    assert triple is not None
    salt = _field_b64(doc, "kdf", "salt")
    nonce = _field_b64(doc, "cipher", "nonce")
    ciphertext = _field_b64(doc, "ciphertext")
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeyInvalid("encrypted key nonce has the wrong size")
    n, r, p = (int(v) for v in triple)
    box = nacl.secret.SecretBox(_scrypt(password, salt, n, r, p))
    try:
        der = box.decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        raise KeyPasswordInvalid(
            "the password does not decrypt this key",
            hint=f"check the password (or {PASSWORD_ENV}) used when the key was generated",
        ) from None
    try:
        if not _is_pkcs8(der):
            raise ValueError("not PKCS#8")
        key = serialization.load_der_private_key(der, password=None)
    except ValueError:
        raise KeyInvalid(
            "the decrypted key is not a PKCS#8 private key",
            hint="cosign key files hold PKCS#8; re-import the key with cosign import-key-pair",
        ) from None
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise KeyInvalid(f"unsupported private key type {type(key).__name__}")
    algorithm_for(key)
    return key


def load_signer(
    key: Path | str | bytes,
    password: bytes | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    prompt: PasswordPrompt | None = prompt_password,
) -> SoftwareSigner:
    """A signer from a ``cosign.key`` path (or its bytes), with the password resolved as above."""
    if isinstance(key, bytes):
        data = key
    else:
        path = Path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"no key file at {path}") from None
        except OSError as exc:
            raise KeyInvalid(f"cannot read {path}: {exc.strerror}") from None
    secret = resolve_password(password, env=env, prompt=prompt)
    return SoftwareSigner(decrypt_private_key(data, secret))


def generate_key_pair(
    path_prefix: Path | str,
    password: bytes | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    prompt: PasswordPrompt | None = prompt_password,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write ``<prefix>.key`` (mode 0600) and ``<prefix>.pub`` for a new ECDSA P-256 key, as
    ``cosign generate-key-pair`` does; returns both paths."""
    prefix = Path(path_prefix)
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    if not overwrite:
        for path in (key_path, pub_path):
            if os.path.lexists(path):
                raise _exists(path)
    secret = resolve_password(password, env=env, prompt=prompt, confirm=True)
    private_key = ec.generate_private_key(ec.SECP256R1())
    encrypted = encrypt_private_key(private_key, secret)
    write_key_file(key_path, encrypted, 0o600, overwrite=overwrite)
    write_key_file(pub_path, public_key_pem(private_key.public_key()), 0o644, overwrite=overwrite)
    return key_path, pub_path


def _exists(path: Path) -> KeyFileExists:
    return KeyFileExists(
        f"{path} already exists", hint="choose another prefix, remove the old file or use --force"
    )


def write_key_file(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    """Write ``path`` whole or not at all, never through a symlink, with ``mode`` from the start.

    The bytes go to a new file beside ``path`` (``O_CREAT | O_EXCL | O_NOFOLLOW``, created with
    ``mode`` less the umask, so a private key is never readable by others, even for a moment),
    which is fsynced and then renamed over ``path`` (``overwrite``: ``os.replace``, which replaces
    a symlink itself rather than writing where it points, and an old 0644 file by a 0600 one) or
    hard-linked to it (no ``overwrite``: fails if anything, even a dangling symlink, is there).
    The directory is fsynced so the new name survives a crash.
    """
    directory = path.parent
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        for _ in range(16):
            tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(tmp, flags, mode)
            except FileExistsError:
                continue
            break
        else:
            raise KeyInvalid(f"cannot create a temporary file beside {path}")
    except OSError as exc:
        raise KeyInvalid(f"cannot write {path}: {exc.strerror}") from None
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                tmp.replace(path)
            else:
                try:
                    os.link(tmp, path, follow_symlinks=False)
                except FileExistsError:
                    raise _exists(path) from None
                tmp.unlink()
        except OSError as exc:
            raise KeyInvalid(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename itself is still atomic
    finally:
        os.close(fd)
