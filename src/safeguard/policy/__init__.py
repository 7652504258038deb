"""The policy room: one declarative, versioned policy file (``safeguard.yaml``).

* ``schema``: the pydantic models of the file (``Policy``, ``Identity``, ``RegistryRule``,
  ``VerificationRule``, ...); ``jsonschema`` exports them as JSON Schema for editors;
* ``load``: YAML in (``yamlsafe``: bounded, YAML 1.2), validated (schema, then ``checks``:
  references and files), every problem out at once with its line (``PolicyInvalid``);
* ``match``: globs (``*`` within a segment, ``**`` across), ``rule_for`` (first match in file
  order), ``identity_may_publish``;
* ``store``: numbered versions in the store (``PolicyStore``: apply, active, get, history,
  diff, rollback); ``diff``: what changed between two versions.
"""

from safeguard.policy.diff import Change, PolicyDiff
from safeguard.policy.errors import (
    PolicyInvalid,
    PolicyIssue,
    PolicyNotApplied,
    PolicyVersionNotFound,
)
from safeguard.policy.load import LoadedPolicy, load_policy, load_policy_text
from safeguard.policy.match import (
    GlobInvalid,
    compile_glob,
    glob_matches,
    identity_may_publish,
    rule_for,
)
from safeguard.policy.schema import (
    Admission,
    AttestationRequirement,
    Cleanup,
    FailurePolicy,
    Identity,
    IdentityKind,
    KeylessMatch,
    OIDCClaims,
    Policy,
    RegistryRule,
    SignerRef,
    TrustKey,
    TrustRoot,
    UnsignedPush,
    VerificationMode,
    VerificationRule,
)
from safeguard.policy.store import PolicyStore, PolicyVersion, PolicyVersionInfo

__all__ = [
    "Admission",
    "AttestationRequirement",
    "Change",
    "Cleanup",
    "FailurePolicy",
    "GlobInvalid",
    "Identity",
    "IdentityKind",
    "KeylessMatch",
    "LoadedPolicy",
    "OIDCClaims",
    "Policy",
    "PolicyDiff",
    "PolicyInvalid",
    "PolicyIssue",
    "PolicyNotApplied",
    "PolicyStore",
    "PolicyVersion",
    "PolicyVersionInfo",
    "PolicyVersionNotFound",
    "RegistryRule",
    "SignerRef",
    "TrustKey",
    "TrustRoot",
    "UnsignedPush",
    "VerificationMode",
    "VerificationRule",
    "compile_glob",
    "glob_matches",
    "identity_may_publish",
    "load_policy",
    "load_policy_text",
    "rule_for",
]
