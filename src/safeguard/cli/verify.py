"""``safeguard verify`` and ``verify-attestation``: cosign's verification commands and flags.

``verify --key cosign.pub IMAGE`` or ``verify --certificate-identity[-regexp] ...
--certificate-oidc-issuer[-regexp] ... --trusted-root trusted_root.json IMAGE`` finds every
signature attached to IMAGE (OCI referrers, the referrers tag schema, the ``sha256-<hex>.sig``
tag), checks each with ``safeguard.verify.engine`` and, like cosign, prints the verified payloads
as a JSON array on stdout and the checks performed on stderr. ``--output json`` prints the whole
verdict (every signature looked at, the reason it was accepted or refused, the evidence) instead.
Exit codes: 0 verified, 1 verification failed (reasons on stderr), 2 usage or input error,
3 registry unreachable. The flags shared with ``verify-blob`` live here.

``--tlog-url URL`` (with ``--trusted-root``) adds cosign's online log check: every accepted
signature's log entry must still be in the log at URL, unchanged, in a history that extends the
bundle's checkpoint (``safeguard.verify.online_log``); ``--log-state FILE`` also remembers the
log's checkpoint between runs. A log that cannot be reached then exits 3 (``TLOG_UNREACHABLE``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from safeguard.cli.app import app
from safeguard.cli.output import (
    INSECURE_OPTION,
    OUTPUT_OPTION,
    OutputFormat,
    emit_json,
    err_console,
    reported,
)
from safeguard.core.errors import EXIT_VERIFICATION_FAILED, InvalidInput
from safeguard.core.reference import Reference
from safeguard.oci.client import RegistryClient
from safeguard.signing.keyref import load_verification_key
from safeguard.verify.attestations import resolve_predicate_type
from safeguard.verify.checks import COSIGN_SIGN_PREDICATE, Expectation
from safeguard.verify.engine import verify_image
from safeguard.verify.identity import IdentityPolicy, Match
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.predicates import requirement_from_flags
from safeguard.verify.trustroot import load_trust_material
from safeguard.verify.verdict import Verdict

if TYPE_CHECKING:
    from safeguard.verify.online_log import OnlineLogCheck

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
BUILDER_ID_OPTION = typer.Option(
    None,
    "--builder-id",
    help="SLSA provenance: the builder that made it (name, or name@version; as slsa-verifier).",
)
SOURCE_URI_OPTION = typer.Option(
    None,
    "--source-uri",
    help="SLSA provenance: the source repository it was built from, e.g. github.com/acme/app.",
)
SOURCE_TAG_OPTION = typer.Option(
    None, "--source-tag", help="SLSA provenance: the git tag it was built from (e.g. v1.2.3)."
)
SOURCE_BRANCH_OPTION = typer.Option(
    None, "--source-branch", help="SLSA provenance: the git branch it was built from (e.g. main)."
)
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
ONLINE_TLOG_OPTION = typer.Option(
    None,
    "--tlog-url",
    "--rekor-url",
    help="Also check online that the Rekor v1 log at this URL still holds each accepted "
    "signature's entry unchanged, in a history extending the bundle's checkpoint (needs "
    "--trusted-root; exit 3 if the log cannot be reached).",
)
LOG_STATE_OPTION = typer.Option(
    None,
    "--log-state",
    help="With --tlog-url: the log checkpoint remembered between runs (tlog monitor's state "
    "format); refuse a log that went back or forked since; moved forward after a clean check.",
)


@contextmanager
def online_check(
    url: str | None, state: Path | None, policy: TrustPolicy
) -> Iterator[OnlineLogCheck | None]:
    """The online log check ``--tlog-url``/``--log-state`` ask for, or None (offline)."""
    if url is None:
        if state is not None:
            raise InvalidInput("--log-state needs --tlog-url")
        yield None
        return
    if policy.trust is None or not policy.trust.has_logs:
        raise InvalidInput(
            "--tlog-url needs --trusted-root with the log's key",
            hint="safeguard tlog export-trusted-root --url URL --out trusted_root.json",
        )
    if policy.ignore_tlog:
        raise InvalidInput("--tlog-url checks the log; --insecure-ignore-tlog ignores it")
    from safeguard.verify.online_log import OnlineLogCheck

    with OnlineLogCheck(url, policy.trust, state_path=state) as check:
        yield check


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
    online = [
        e["detail"]["onlineLog"] for e in verdict.verified if "onlineLog" in e.get("detail", {})
    ]
    if online:
        lines.append(
            f"The log entries were checked online at {online[0]['url']}: unchanged, in a history "
            f"consistent with the log's checkpoint of size {online[0]['treeSize']}"
        )
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
    image: str,
    policy: TrustPolicy,
    expect: Expectation,
    allow_insecure: bool,
    online: OnlineLogCheck | None = None,
) -> Verdict:
    ref = Reference.parse(image)
    async with RegistryClient.for_reference(ref, allow_insecure=allow_insecure) as client:
        return await verify_image(client, ref, policy, expect, online=online)


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
    tlog_url: str | None = ONLINE_TLOG_OPTION,
    log_state: Path | None = LOG_STATE_OPTION,
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
        with online_check(tlog_url, log_state, policy) as online:
            verdict = asyncio.run(
                _verify(image, policy, Expectation(), allow_insecure_registry, online)
            )
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
    builder_id: str | None = BUILDER_ID_OPTION,
    source_uri: str | None = SOURCE_URI_OPTION,
    source_tag: str | None = SOURCE_TAG_OPTION,
    source_branch: str | None = SOURCE_BRANCH_OPTION,
    trusted_root: Path | None = TRUSTED_ROOT_OPTION,
    insecure_ignore_tlog: bool = IGNORE_TLOG_OPTION,
    tlog_url: str | None = ONLINE_TLOG_OPTION,
    log_state: Path | None = LOG_STATE_OPTION,
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
        requirement = requirement_from_flags(
            predicate,
            builder_id=builder_id,
            source_uri=source_uri,
            source_tag=source_tag,
            source_branch=source_branch,
        )
        expect = Expectation(True, predicate, requirement=requirement)
        with online_check(tlog_url, log_state, policy) as online:
            verdict = asyncio.run(_verify(image, policy, expect, allow_insecure_registry, online))
    if not verdict.allowed:
        report_failure(verdict, output)
    if output is OutputFormat.json:
        emit_json(verdict.as_dict())
        return
    err_console.print(f"\nVerification for {image} --", highlight=False, soft_wrap=True)
    for line in checks_performed(verdict, policy):
        err_console.print(f"  - {line}", highlight=False, soft_wrap=True)
    if requirement is not None:
        asked = ", ".join(f"{k} {v}" for k, v in requirement.as_dict().items())
        err_console.print(f"  - The predicate states {asked}", highlight=False, soft_wrap=True)
    for evidence in verdict.verified:
        sys.stdout.write(json.dumps(evidence.get("payload"), separators=(",", ":")) + "\n")
