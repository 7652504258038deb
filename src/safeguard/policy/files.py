"""The public files a policy refers to: key PEMs, trusted roots, CA certificates, JWKS.

Paths in a policy are relative to the policy file's directory (absolute paths work too). When a
policy is applied, every file it refers to is read, checked for what it must be (a PEM public
key, a Sigstore ``trusted_root.json``, PEM certificates, a JWKS document) and stored with the
version, so that a version means the same thing on every node and forever after, whatever
happens to the files on disk later (``PolicyVersion.read``). Only public material is stored:
private key references (``trustRoots.*.keys[].ref``: a ``pkcs11:`` URI or a cosign key file) stay
where they are and are opened by the signing service at signing time.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, Protocol

MAX_FILE_BYTES: Final = 4 * 1024 * 1024
MAX_TOTAL_BYTES: Final = 16 * 1024 * 1024


class FileKind(StrEnum):
    public_key = "public key"
    trusted_root = "Sigstore trusted root"
    certificates = "PEM certificates"
    jwks = "JWKS document"


class FileProblem(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class FileSource(Protocol):
    """Where a policy's relative paths are read from."""

    def read(self, path: str) -> bytes:
        """The file's bytes; raises ``FileProblem`` when it cannot be had."""
        ...


@dataclass(frozen=True)
class DirectoryFiles:
    """Files on disk, relative to ``base_dir`` (the policy file's directory)."""

    base_dir: Path

    def read(self, path: str) -> bytes:
        given = Path(path)
        full = given if given.is_absolute() else self.base_dir / given
        try:
            info = full.stat()
            if not stat.S_ISREG(info.st_mode):
                raise FileProblem(f"{path} is not a regular file ({full})")
            if info.st_size > MAX_FILE_BYTES:
                raise FileProblem(
                    f"{path} is {info.st_size} bytes; referenced files may be at most "
                    f"{MAX_FILE_BYTES // (1024 * 1024)} MiB"
                )
            return full.read_bytes()
        except FileNotFoundError:
            raise FileProblem(
                f"file {path} does not exist (looked for {full})",
                "paths are relative to the policy file's directory",
            ) from None
        except PermissionError:
            raise FileProblem(f"file {path} is not readable ({full})") from None
        except OSError as exc:
            raise FileProblem(f"cannot read {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class StoredFiles:
    """The files stored with a policy version."""

    files: Mapping[str, bytes]

    def read(self, path: str) -> bytes:
        try:
            return self.files[path]
        except KeyError:
            raise FileProblem(
                f"file {path} was not stored with this policy version",
                "apply the policy from its file so that the file is read",
            ) from None


def check_content(kind: FileKind, path: str, data: bytes) -> FileProblem | None:
    """``None`` when ``data`` is a valid ``kind``, else the problem."""
    try:
        if kind is FileKind.public_key:
            from safeguard.keys.base import load_public_key

            load_public_key(data)
        elif kind is FileKind.trusted_root:
            from safeguard.verify.trustroot import parse_trusted_root

            parse_trusted_root(data, path)
        elif kind is FileKind.certificates:
            from cryptography import x509

            if b"-----BEGIN CERTIFICATE-----" not in data:
                return FileProblem(f"{path} holds no PEM certificate", "give PEM CA certificates")
            x509.load_pem_x509_certificates(data)
        elif kind is FileKind.jwks:
            doc = json.loads(data)
            keys = doc.get("keys") if isinstance(doc, dict) else None
            if not isinstance(keys, list) or not all(
                isinstance(k, dict) and isinstance(k.get("kty"), str) for k in keys
            ):
                return FileProblem(
                    f"{path} is not a JWKS document",
                    'a JWKS is {"keys": [{"kty": ..., ...}]}, as the issuer serves it',
                )
    except Exception as exc:  # every parser's own error type: the file is not what it must be
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return FileProblem(f"{path} is not a valid {kind.value}: {message}")
    return None
