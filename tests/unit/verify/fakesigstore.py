"""A small, real Sigstore-shaped world for tests: a CA (root + intermediate) issuing Fulcio-profile
leaf certificates with an embedded SCT from a CT log key (RFC 6962 §3.2/§3.3, encoded here
independently of ``safeguard.verify.sct``), a Rekor-v1-style log key that signs SETs, and the
trusted_root.json naming them with chosen validity windows. Everything is real cryptography; only
the services are absent."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from collections.abc import Sequence
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
SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def _spki_sha256(key: ec.EllipticCurvePublicKey) -> bytes:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


def _der_octet_string(data: bytes) -> bytes:
    n = len(data)
    if n < 0x80:
        return bytes([0x04, n]) + data
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x04, 0x80 | len(size)]) + size + data


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
    ct_log: bool = True  # the trusted root lists the CT log (and leaves carry its SCT)
    ct_valid_from: dt.datetime | None = None  # the CT key is valid from a day before this
    ct_valid_until: dt.datetime | None = None

    def __post_init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.inter_key = ec.generate_private_key(ec.SECP384R1())
        self.log_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
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
        curve: ec.EllipticCurve | None = None,
        sct_keys: Sequence[ec.EllipticCurvePrivateKey] | None = None,
        sct_forged: bool = False,
        sct_extension: bytes | None = None,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A Fulcio-profile leaf for a new key (P-256 unless ``curve``), valid ``minutes`` from
        ``not_before``. It embeds one SCT per key of ``sct_keys`` (default: the CT log's; other
        keys are logs the trusted root does not list; none: no SCT list); ``sct_forged`` signs
        another timestamp than the one each SCT states (a bad signature from the right log);
        ``sct_extension`` replaces the SCT list extension's value (hostile bytes)."""
        key = ec.generate_private_key(curve or ec.SECP256R1())
        nb = not_before or self.start
        builder = (
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
        )
        keys = [self.ct_key] if sct_keys is None else list(sct_keys)
        value = sct_extension
        if value is None and keys:
            # The precertificate's TBS is the final one without the SCT list (RFC 6962 §3.2):
            # the same builder, signed before the extension is added.
            precert = builder.sign(self.inter_key, hashes.SHA384())
            tbs = precert.tbs_certificate_bytes
            value = _der_octet_string(self.sct_list(tbs, nb, keys, forged=sct_forged))
        if value is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(SCT_LIST_OID, value), False)
        return key, builder.sign(self.inter_key, hashes.SHA384())

    def sct_list(
        self,
        tbs: bytes,
        when: dt.datetime,
        log_keys: Sequence[ec.EllipticCurvePrivateKey],
        *,
        forged: bool = False,
    ) -> bytes:
        """A TLS-encoded ``SignedCertificateTimestampList`` of v1 precert SCTs, one per key."""
        timestamp = int(when.timestamp() * 1000)
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp + (1 if forged else 0), 1)
            + _spki_sha256(self.inter_key.public_key())
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)
        )
        items = b""
        for log_key in log_keys:
            signature = log_key.sign(signed, ec.ECDSA(hashes.SHA256()))
            sct = (
                bytes([0])
                + _spki_sha256(log_key.public_key())
                + struct.pack("!QH", timestamp, 0)
                + bytes([4, 3])  # sha256, ecdsa (RFC 5246 §7.4.1.4.1)
                + struct.pack("!H", len(signature))
                + signature
            )
            items += struct.pack("!H", len(sct)) + sct
        return struct.pack("!H", len(items)) + items

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
            "ctlogs": [
                {
                    "baseUrl": "https://ct.safeguard.test",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": _b64(
                            self.ct_key.public_key().public_bytes(
                                serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo,
                            )
                        ),
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "validFor": window(self.ct_valid_from or self.start, self.ct_valid_until),
                    },
                    "logId": {"keyId": _b64(_spki_sha256(self.ct_key.public_key()))},
                }
            ]
            if self.ct_log
            else [],
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
