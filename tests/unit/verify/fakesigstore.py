"""A small, real Sigstore-shaped world for tests: a CA (root + intermediate) issuing Fulcio-profile
leaf certificates, a Rekor-v1-style log key that signs SETs, and the trusted_root.json naming them
with chosen validity windows. Everything is real cryptography; only the services are absent."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from safeguard.formats import rekor
from safeguard.formats.bundle import InclusionProof, TransparencyLogEntry
from safeguard.keys.base import public_key_pem
from safeguard.tlog import merkle
from safeguard.tlog.checkpoint import Checkpoint, sign_checkpoint
from safeguard.tlog.note import EcdsaSigner, rekor_log_id
from safeguard.verify.logentry import set_payload
from safeguard.verify.trustroot import TrustMaterial, parse_trusted_root

UTC = dt.UTC
ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    return bytes([0x0C, len(raw)]) + raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "safeguard.test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass
class FakeSigstore:
    start: dt.datetime = field(default_factory=lambda: dt.datetime(2024, 1, 1, tzinfo=UTC))
    log_valid_until: dt.datetime | None = None
    ca_valid_until: dt.datetime | None = None

    def __post_init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.inter_key = ec.generate_private_key(ec.SECP384R1())
        self.log_key = ec.generate_private_key(ec.SECP256R1())
        self.log_id = rekor_log_id(self.log_key.public_key())
        not_before = self.start - dt.timedelta(days=1)
        not_after = self.start + dt.timedelta(days=3650)
        self.root = self._ca_cert(
            _name("root"), _name("root"), self.root_key, self.root_key, not_before, not_after, 1
        )
        self.intermediate = self._ca_cert(
            _name("intermediate"),
            _name("root"),
            self.inter_key,
            self.root_key,
            not_before,
            not_after,
            0,
        )
        self.index = 0
        self.tree = merkle.MerkleLog()

    @staticmethod
    def _ca_cert(subject, issuer, key, signer, nb, na, path_len):  # type: ignore[no-untyped-def]
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
            .sign(signer, hashes.SHA384())
        )

    def leaf(
        self,
        email: str = "dev@safeguard.test",
        issuer: str = "https://issuer.safeguard.test",
        *,
        not_before: dt.datetime | None = None,
        minutes: int = 10,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        nb = not_before or self.start
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(nb + dt.timedelta(minutes=minutes))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.inter_key.public_key()),
                False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(x509.UnrecognizedExtension(ISSUER_OID, issuer.encode()), False)
            .add_extension(x509.UnrecognizedExtension(ISSUER_V2_OID, _der_utf8(issuer)), False)
            .sign(self.inter_key, hashes.SHA384())
        )
        return key, cert

    def trusted_root(self) -> dict[str, object]:
        def window(start: dt.datetime, end: dt.datetime | None) -> dict[str, str]:
            out = {"start": (start - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
            if end is not None:
                out["end"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
            return out

        log_der = self.log_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                {
                    "baseUrl": "https://log.safeguard.test",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": _b64(log_der),
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "validFor": window(self.start, self.log_valid_until),
                    },
                    "logId": {"keyId": _b64(self.log_id)},
                }
            ],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "safeguard.test", "commonName": "root"},
                    "uri": "https://ca.safeguard.test",
                    "certChain": {
                        "certificates": [
                            {
                                "rawBytes": _b64(
                                    self.intermediate.public_bytes(serialization.Encoding.DER)
                                )
                            },
                            {"rawBytes": _b64(self.root.public_bytes(serialization.Encoding.DER))},
                        ]
                    },
                    "validFor": window(self.start, self.ca_valid_until),
                }
            ],
            "ctlogs": [],
            "timestampAuthorities": [],
        }

    def trust(self) -> TrustMaterial:
        return parse_trusted_root(json.dumps(self.trusted_root()).encode())

    def write_root(self, path: Path) -> Path:
        path.write_text(json.dumps(self.trusted_root()))
        return path

    def log(self, body: bytes, when: dt.datetime | None = None) -> TransparencyLogEntry:
        """Log ``body`` (a canonical entry body): an entry with a SET, an inclusion proof and a
        checkpoint signed by the log key, as Rekor v1 returns them."""
        parsed = rekor.parse_entry(body)
        index = self.tree.append(merkle.leaf_hash(body))
        size = self.tree.size
        t = int((when or self.start + dt.timedelta(minutes=1)).timestamp())
        unsigned = TransparencyLogEntry(
            index, self.log_id, parsed.kind, parsed.api_version, body, t, None, None
        )
        sig = self.log_key.sign(set_payload(unsigned), ec.ECDSA(hashes.SHA256()))
        root = self.tree.root(size)
        note = sign_checkpoint(
            Checkpoint("log.safeguard.test - 1", size, root),
            EcdsaSigner.from_private_key("log.safeguard.test", self.log_key),
        )
        proof = InclusionProof(
            index, root, size, tuple(self.tree.inclusion_proof(index, size)), note.decode()
        )
        return TransparencyLogEntry(
            index, self.log_id, parsed.kind, parsed.api_version, body, t, sig, proof
        )

    @staticmethod
    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    @staticmethod
    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return public_key_pem(key.public_key())
