"""What a verification trusts: public keys, a certificate identity, a trusted root, log rules.

``TrustPolicy`` is built by the CLI from cosign's flags (``--key``, ``--certificate-identity*``,
``--certificate-oidc-issuer*``, ``--trusted-root``, ``--insecure-ignore-tlog``) and by the policy
room from ``safeguard.yaml``. Its ``fingerprint`` names it for the result cache: two policies
with the same fingerprint accept exactly the same signatures.

The transparency-log rule (docs/verification.md, "The log choice"): when the trusted root lists
transparency logs, every accepted signature must carry a log entry that verifies against them,
unless ``ignore_tlog`` (cosign's ``--insecure-ignore-tlog``) says otherwise. Without such a root,
key-signed material is accepted on its signature alone and the evidence says the log was not
checked, which is what ``cosign sign --tlog-upload=false`` material needs. Keyless material always
needs a trusted root: its certificate is only meaningful with a time the log (or a timestamp
authority) vouches for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

from safeguard.core.errors import InvalidInput
from safeguard.keys.base import PublicKey, key_id_for
from safeguard.verify.identity import IdentityPolicy
from safeguard.verify.trustroot import TrustMaterial


@dataclass(frozen=True)
class TrustPolicy:
    keys: tuple[PublicKey, ...] = ()
    identity: IdentityPolicy | None = None
    trust: TrustMaterial | None = None
    ignore_tlog: bool = False
    key_ids: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        if not self.keys and self.identity is None:
            raise InvalidInput(
                "nothing to verify against",
                hint="give --key PUBLIC_KEY, or --certificate-identity[-regexp] with "
                "--certificate-oidc-issuer[-regexp] and --trusted-root",
            )
        if self.identity is not None and self.trust is None:
            raise InvalidInput(
                "keyless verification needs a trusted root",
                hint="pass --trusted-root trusted_root.json (Sigstore's or Safeguard's)",
            )
        object.__setattr__(self, "key_ids", tuple(key_id_for(k) for k in self.keys))

    @property
    def require_tlog(self) -> bool:
        return self.trust is not None and self.trust.has_logs and not self.ignore_tlog

    @cached_property
    def fingerprint(self) -> str:
        identity = None
        if self.identity is not None:
            identity = {
                "subject": [self.identity.subject.exact, self.identity.subject.regexp],
                "issuer": [self.identity.issuer.exact, self.identity.issuer.regexp],
                "extensions": dict(sorted(self.identity.extensions.items())),
            }
        doc = {
            "keys": sorted(self.key_ids),
            "identity": identity,
            "trust": self.trust.digest if self.trust is not None else None,
            "ignoreTlog": self.ignore_tlog,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
