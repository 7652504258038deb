"""``safeguard verify`` and ``verify-attestation``: cosign's verification commands and flags.

``verify --key cosign.pub IMAGE`` or ``verify --certificate-identity[-regexp] ...
--certificate-oidc-issuer[-regexp] ... --trusted-root trusted_root.json IMAGE`` finds every
signature attached to IMAGE (OCI referrers, the referrers tag schema, the ``sha256-<hex>.sig``
tag), checks each with ``safeguard.verify.engine`` and, like cosign, prints the verified payloads
as a JSON array on stdout and the checks performed on stderr. ``--output json`` prints the whole
verdict (every signature looked at, the reason it was accepted or refused, the evidence) instead.
Exit codes: 0 verified, 1 verification failed (reasons on stderr), 2 usage or input error,
3 registry unreachable. The flags shared with ``verify-blob`` live here.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import typer

from safeguard.cli.app import app
from safeguard.cli.output import OUTPUT_OPTION, OutputFormat, emit_json, err_console, reported
from safeguard.cli.tree import INSECURE_OPTION
from safeguard.core.errors import EXIT_VERIFICATION_FAILED, InvalidInput
from safeguard.core.reference import Reference
from safeguard.oci.client import RegistryClient
from safeguard.signing.keyref import load_verification_key
from safeguard.verify.attestations import resolve_predicate_type
from safeguard.verify.checks import COSIGN_SIGN_PREDICATE, Expectation
from safeguard.verify.engine import verify_image
from safeguard.verify.identity import IdentityPolicy, Match
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.trustroot import load_trust_material
from safeguard.verify.verdict import Verdict

KEY_OPTION = typer.Option(
    None, "--key", help="Public key (cosign.pub, a certificate) or a pkcs11: URI."
)
IDENTITY_OPTION = typer.Option(
    None, "--certificate-identity", help="Exact identity (SAN) of a keyless signer."
)
IDENTITY_RE_OPTION = typer.Option(
    None, "--certificate-identity-regexp", help="Regular expression for the signer's identity."
)
ISSUER_OPTION = typer.Option(
    None, "--certificate-oidc-issuer", help="Exact OIDC issuer of a keyless signer."
)
ISSUER_RE_OPTION = typer.Option(
    None, "--certificate-oidc-issuer-regexp", help="Regular expression for the OIDC issuer."
)
GH_REPO_OPTION = typer.Option(
    None, "--certificate-github-workflow-repository", help="Required workflow repository."
)
GH_TRIGGER_OPTION = typer.Option(
    None, "--certificate-github-workflow-trigger", help="Required workflow trigger."
)
GH_SHA_OPTION = typer.Option(None, "--certificate-github-workflow-sha", help="Required commit.")
GH_NAME_OPTION = typer.Option(None, "--certificate-github-workflow-name", help="Workflow name.")
GH_REF_OPTION = typer.Option(None, "--certificate-github-workflow-ref", help="Workflow ref.")
TRUSTED_ROOT_OPTION = typer.Option(
    None,
    "--trusted-root",
    help="trusted_root.json: certificate authorities and transparency logs to trust.",
)
IGNORE_TLOG_OPTION = typer.Option(
    False,
    "--insecure-ignore-tlog",
    help="Accept signatures without a verified transparency log entry.",
)


def build_policy(
    *,
    key: str | None,
    identity: str | None,
    identity_regexp: str | None,
    issuer: str | None,
    issuer_regexp: str | None,
    trusted_root: Path | None,
    ignore_tlog: bool,
    extensions: dict[str, str | None] | None = None,
) -> TrustPolicy:
    """The ``TrustPolicy`` cosign's flags describe; usage errors as ``InvalidInput``."""
    keyless = any(v is not None for v in (identity, identity_regexp, issuer, issuer_regexp))
    if key is None and not keyless:
        raise InvalidInput(
            "give --key, or --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]",
            hint="verification needs something to trust",
        )
    ident = None
    if keyless:
        if identity is None and identity_regexp is None:
            raise InvalidInput(
                "--certificate-identity or --certificate-identity-regexp is required"
            )
        if issuer is None and issuer_regexp is None:
            raise InvalidInput(
                "--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required"
            )
        ident = IdentityPolicy(
            Match(identity, identity_regexp),
            Match(issuer, issuer_regexp),
            {k: v for k, v in (extensions or {}).items() if v is not None},
        )
    trust = load_trust_material(trusted_root) if trusted_root is not None else None
    keys = (load_verification_key(key),) if key is not None else ()
    return TrustPolicy(keys=keys, identity=ident, trust=trust, ignore_tlog=ignore_tlog)


def report_failure(verdict: Verdict, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        emit_json(verdict.as_dict())
    err_console.print(
        f"[bold red]error[/] verification failed for {verdict.subject}", highlight=False
    )
    for reason in verdict.reasons:
        err_console.print(f"  - {reason}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_VERIFICATION_FAILED)


def checks_performed(verdict: Verdict, policy: TrustPolicy) -> list[str]:
    lines = ["The cosign claims were validated"]
    logged = any(t.get("verified") for e in verdict.verified for t in e.get("tlog", []))
    if logged:
        lines.append("Existence of the claims in the transparency log was verified offline")
    elif policy.require_tlog:
        lines.append("Transparency log entries were required")
    else:
        lines.append("No transparency log entry was verified (none required)")
    if any("certificate" in e.get("signer", {}) for e in verdict.verified):
        lines.append(
            "The code-signing certificate was verified using trusted certificate authority "
            "certificates"
        )
    if any("keyId" in e.get("signer", {}) for e in verdict.verified):
        lines.append("The signatures were verified against the specified public key")
    return lines


def cosign_payload(evidence: dict[str, Any], reference: str, digest: str) -> Any:
    """What cosign prints for a verified image signature: the simple-signing document, or the
    same shape for a v3 bundle signature (``type`` is the predicate type)."""
    payload = evidence.get("payload")
    if isinstance(payload, dict) and payload.get("predicateType") == COSIGN_SIGN_PREDICATE:
        subject = (payload.get("subject") or [{}])[0]
        return {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": COSIGN_SIGN_PREDICATE,
            },
            "optional": subject.get("annotations") or {},
        }
    return payload


async def _verify(
    image: str, policy: TrustPolicy, expect: Expectation, allow_insecure: bool
) -> Verdict:
    ref = Reference.parse(image)
    async with RegistryClient.for_reference(ref, allow_insecure=allow_insecure) as client:
        return await verify_image(client, ref, policy, expect)


@app.command("verify")
def verify_command(
    image: str = typer.Argument(..., help="REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST"),
    key: str | None = KEY_OPTION,
    certificate_identity: str | None = IDENTITY_OPTION,
    certificate_identity_regexp: str | None = IDENTITY_RE_OPTION,
    certificate_oidc_issuer: str | None = ISSUER_OPTION,
    certificate_oidc_issuer_regexp: str | None = ISSUER_RE_OPTION,
    gh_repository: str | None = GH_REPO_OPTION,
    gh_trigger: str | None = GH_TRIGGER_OPTION,
    gh_sha: str | None = GH_SHA_OPTION,
    gh_name: str | None = GH_NAME_OPTION,
    gh_ref: str | None = GH_REF_OPTION,
    trusted_root: Path | None = TRUSTED_ROOT_OPTION,
    insecure_ignore_tlog: bool = IGNORE_TLOG_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Verify the signatures of IMAGE (cosign-compatible)."""
    with reported(output):
        policy = build_policy(
            key=key,
            identity=certificate_identity,
            identity_regexp=certificate_identity_regexp,
            issuer=certificate_oidc_issuer,
            issuer_regexp=certificate_oidc_issuer_regexp,
            trusted_root=trusted_root,
            ignore_tlog=insecure_ignore_tlog,
            extensions={
                "github-workflow-repository": gh_repository,
                "github-workflow-trigger": gh_trigger,
                "github-workflow-sha": gh_sha,
                "github-workflow-name": gh_name,
                "github-workflow-ref": gh_ref,
            },
        )
        verdict = asyncio.run(_verify(image, policy, Expectation(), allow_insecure_registry))
    if not verdict.allowed:
        report_failure(verdict, output)
    if output is OutputFormat.json:
        emit_json(verdict.as_dict())
        return
    name, _, digest = verdict.subject.partition("@")
    err_console.print(
        f"\nVerification for {image} --\nThe following checks were performed on each of these "
        "signatures:",
        highlight=False,
    )
    for line in checks_performed(verdict, policy):
        err_console.print(f"  - {line}", highlight=False, soft_wrap=True)
    err_console.print("")
    payloads = [cosign_payload(e, name, digest) for e in verdict.verified]
    sys.stdout.write(json.dumps(payloads, separators=(",", ":")) + "\n")


@app.command("verify-attestation")
def verify_attestation_command(
    image: str = typer.Argument(..., help="REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST"),
    type_: str | None = typer.Option(
        None, "--type", help="Predicate type (slsaprovenance1, custom, ... or a URI)."
    ),
    key: str | None = KEY_OPTION,
    certificate_identity: str | None = IDENTITY_OPTION,
    certificate_identity_regexp: str | None = IDENTITY_RE_OPTION,
    certificate_oidc_issuer: str | None = ISSUER_OPTION,
    certificate_oidc_issuer_regexp: str | None = ISSUER_RE_OPTION,
    gh_repository: str | None = GH_REPO_OPTION,
    gh_ref: str | None = GH_REF_OPTION,
    trusted_root: Path | None = TRUSTED_ROOT_OPTION,
    insecure_ignore_tlog: bool = IGNORE_TLOG_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    allow_insecure_registry: bool = INSECURE_OPTION,
) -> None:
    """Verify the attestations of IMAGE; prints each verified in-toto statement (JSON line)."""
    with reported(output):
        policy = build_policy(
            key=key,
            identity=certificate_identity,
            identity_regexp=certificate_identity_regexp,
            issuer=certificate_oidc_issuer,
            issuer_regexp=certificate_oidc_issuer_regexp,
            trusted_root=trusted_root,
            ignore_tlog=insecure_ignore_tlog,
            extensions={"github-workflow-repository": gh_repository, "github-workflow-ref": gh_ref},
        )
        predicate = resolve_predicate_type(type_) if type_ is not None else None
        verdict = asyncio.run(
            _verify(image, policy, Expectation(True, predicate), allow_insecure_registry)
        )
    if not verdict.allowed:
        report_failure(verdict, output)
    if output is OutputFormat.json:
        emit_json(verdict.as_dict())
        return
    err_console.print(f"\nVerification for {image} --", highlight=False, soft_wrap=True)
    for line in checks_performed(verdict, policy):
        err_console.print(f"  - {line}", highlight=False, soft_wrap=True)
    for evidence in verdict.verified:
        sys.stdout.write(json.dumps(evidence.get("payload"), separators=(",", ":")) + "\n")
