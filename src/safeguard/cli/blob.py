"""Blob commands, as cosign names them: ``sign-blob``, ``attest-blob``, ``verify-blob``,
``verify-blob-attestation``.

``sign-blob --key KEYREF --bundle OUT FILE`` writes a Sigstore bundle v0.3 with a
``messageSignature`` (and prints the base64 signature, as cosign does). ``attest-blob`` writes a
DSSE bundle of an in-toto statement about the file. ``verify-blob --bundle B FILE`` accepts either
kind: for a DSSE bundle the file must be one of the statement's subjects. FILE may be
``sha256:<hex>`` to verify by digest without the bytes. Trust flags are ``verify``'s; signing
flags (``--tlog-url``, ``--tlog-upload``) are ``sign``'s: a logged blob signature is a
``hashedrekord`` 0.0.1 entry, a blob attestation a ``dsse`` 0.0.1 entry.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import typer

from safeguard.cli.app import app
from safeguard.cli.attest import PREDICATE_OPTION, TYPE_OPTION, read_predicate
from safeguard.cli.output import OUTPUT_OPTION, OutputFormat, emit_json, err_console, reported
from safeguard.cli.sign import (
    SIGN_KEY_OPTION,
    TLOG_UPLOAD_OPTION,
    TLOG_URL_OPTION,
    report_tlog,
    signer_for,
    tlog_for,
    tlog_summary,
)
from safeguard.cli.verify import (
    BUILDER_ID_OPTION,
    GH_REF_OPTION,
    GH_REPO_OPTION,
    IDENTITY_OPTION,
    IDENTITY_RE_OPTION,
    IGNORE_TLOG_OPTION,
    ISSUER_OPTION,
    ISSUER_RE_OPTION,
    KEY_OPTION,
    LOG_STATE_OPTION,
    ONLINE_TLOG_OPTION,
    SOURCE_BRANCH_OPTION,
    SOURCE_TAG_OPTION,
    SOURCE_URI_OPTION,
    TRUSTED_ROOT_OPTION,
    build_policy,
    online_check,
    report_failure,
)
from safeguard.core.digest import SIGNATURE_ALGORITHMS, Digest, is_digest
from safeguard.core.errors import InvalidInput
from safeguard.formats.bundle import Bundle
from safeguard.signing.sign import attest_blob, sign_blob
from safeguard.verify.attestations import resolve_predicate_type
from safeguard.verify.checks import Artifact, Expectation
from safeguard.verify.engine import verify_bundle
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.predicates import requirement_from_flags

BUNDLE_IN_OPTION = typer.Option(..., "--bundle", help="The Sigstore bundle to verify against.")
BUNDLE_OUT_OPTION = typer.Option(None, "--bundle", help="Write the Sigstore bundle here.")


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None


def read_artifact(arg: str) -> Artifact:
    """A file's bytes, or (for ``sha256:<hex>``, ``sha384:<hex>`` or ``sha512:<hex>`` that is not
    a file) just the digest: a P-384 key signs the blob's SHA-384 digest."""
    path = Path(arg)
    if not path.exists() and is_digest(arg, algorithms=SIGNATURE_ALGORITHMS):
        return Artifact(Digest.parse(arg, algorithms=SIGNATURE_ALGORITHMS), None, arg)
    data = read_file(path, "file")
    return Artifact(Digest.of(data), data, path.name)


def write_bundle(bundle: Bundle, path: Path | None) -> None:
    if path is None:
        return
    try:
        path.write_bytes(bundle.to_json())
    except OSError as exc:
        raise InvalidInput(f"cannot write bundle {path}: {exc.strerror}") from None


@app.command("sign-blob")
def sign_blob_command(
    file: Path = typer.Argument(..., help="The file to sign."),
    key: str = SIGN_KEY_OPTION,
    bundle: Path | None = BUNDLE_OUT_OPTION,
    tlog_url: str | None = TLOG_URL_OPTION,
    tlog_upload: bool | None = TLOG_UPLOAD_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Accepted for cosign compatibility."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Sign a file; write a Sigstore bundle v0.3 (message signature)."""
    with reported(output), tlog_for(tlog_url, tlog_upload) as tlog:
        data = read_file(file, "file")
        with signer_for(key) as signer:
            made = sign_blob(data, signer, tlog=tlog)
        write_bundle(made, bundle)
        logged = tlog_summary(tlog)
        if output is not OutputFormat.json:
            report_tlog(tlog)
    if output is OutputFormat.json:
        emit_json(
            {
                "bundle": str(bundle) if bundle else None,
                "signature": base64.b64encode(made.signature).decode(),
                "digest": str(Digest.of(data)),
                "tlog": logged,
            }
        )
        return
    if bundle is not None:
        err_console.print(f"Wrote bundle to file {bundle}", highlight=False, soft_wrap=True)
    sys.stdout.write(base64.b64encode(made.signature).decode() + "\n")


@app.command("attest-blob")
def attest_blob_command(
    file: str = typer.Argument(..., help="The file (or sha256:<hex>) the attestation is about."),
    key: str = SIGN_KEY_OPTION,
    predicate: Path = PREDICATE_OPTION,
    type_: str = TYPE_OPTION,
    bundle: Path = typer.Option(..., "--bundle", help="Write the Sigstore bundle here."),
    tlog_url: str | None = TLOG_URL_OPTION,
    tlog_upload: bool | None = TLOG_UPLOAD_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Attest a predicate about a file; write a DSSE Sigstore bundle v0.3."""
    with reported(output), tlog_for(tlog_url, tlog_upload) as tlog:
        artifact = read_artifact(file)
        predicate_type, body = read_predicate(predicate, type_)
        with signer_for(key) as signer:
            made = attest_blob(
                artifact.digest, artifact.name, signer, predicate_type, body, tlog=tlog
            )
        write_bundle(made, bundle)
        logged = tlog_summary(tlog)
        if output is not OutputFormat.json:
            report_tlog(tlog)
    if output is OutputFormat.json:
        emit_json(
            {
                "bundle": str(bundle),
                "predicateType": predicate_type,
                "digest": str(artifact.digest),
                "tlog": logged,
            }
        )
    else:
        err_console.print(f"Wrote bundle to file {bundle}", highlight=False, soft_wrap=True)


def _verify_blob(
    file: str,
    bundle: Path,
    policy: TrustPolicy,
    expect: Expectation,
    output: OutputFormat,
    online: tuple[str | None, Path | None] = (None, None),
) -> None:
    with reported(output):
        artifact = read_artifact(file)
        raw = read_file(bundle, "bundle")
        with online_check(*online, policy) as check:
            verdict = verify_bundle(
                raw, artifact, policy, expect, location=str(bundle), online=check
            )
    if not verdict.allowed:
        report_failure(verdict, output)
    if output is OutputFormat.json:
        emit_json(verdict.as_dict())
    else:
        checked = [e["detail"]["onlineLog"] for e in verdict.verified if "onlineLog" in e["detail"]]
        if checked:
            err_console.print(
                f"Log entries checked online at {checked[0]['url']} "
                f"(tree size {checked[0]['treeSize']})",
                highlight=False,
                soft_wrap=True,
            )
        err_console.print("Verified OK", highlight=False, soft_wrap=True)


@app.command("verify-blob")
def verify_blob_command(
    file: str = typer.Argument(..., help="The file, or sha256:<hex>."),
    bundle: Path = BUNDLE_IN_OPTION,
    key: str | None = KEY_OPTION,
    certificate_identity: str | None = IDENTITY_OPTION,
    certificate_identity_regexp: str | None = IDENTITY_RE_OPTION,
    certificate_oidc_issuer: str | None = ISSUER_OPTION,
    certificate_oidc_issuer_regexp: str | None = ISSUER_RE_OPTION,
    gh_repository: str | None = GH_REPO_OPTION,
    gh_ref: str | None = GH_REF_OPTION,
    trusted_root: Path | None = TRUSTED_ROOT_OPTION,
    insecure_ignore_tlog: bool = IGNORE_TLOG_OPTION,
    tlog_url: str | None = ONLINE_TLOG_OPTION,
    log_state: Path | None = LOG_STATE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Verify a file against a bundle (message signature, or a DSSE statement naming it)."""
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
    _verify_blob(
        file, bundle, policy, Expectation(any_statement=True), output, (tlog_url, log_state)
    )


@app.command("verify-blob-attestation")
def verify_blob_attestation_command(
    file: str = typer.Argument(..., help="The file, or sha256:<hex>."),
    bundle: Path = BUNDLE_IN_OPTION,
    type_: str | None = typer.Option(None, "--type", help="Required predicate type."),
    key: str | None = KEY_OPTION,
    certificate_identity: str | None = IDENTITY_OPTION,
    certificate_identity_regexp: str | None = IDENTITY_RE_OPTION,
    certificate_oidc_issuer: str | None = ISSUER_OPTION,
    certificate_oidc_issuer_regexp: str | None = ISSUER_RE_OPTION,
    builder_id: str | None = BUILDER_ID_OPTION,
    source_uri: str | None = SOURCE_URI_OPTION,
    source_tag: str | None = SOURCE_TAG_OPTION,
    source_branch: str | None = SOURCE_BRANCH_OPTION,
    trusted_root: Path | None = TRUSTED_ROOT_OPTION,
    insecure_ignore_tlog: bool = IGNORE_TLOG_OPTION,
    tlog_url: str | None = ONLINE_TLOG_OPTION,
    log_state: Path | None = LOG_STATE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Verify an attestation bundle about a file (subject digest and predicate type)."""
    with reported(output):
        policy = build_policy(
            key=key,
            identity=certificate_identity,
            identity_regexp=certificate_identity_regexp,
            issuer=certificate_oidc_issuer,
            issuer_regexp=certificate_oidc_issuer_regexp,
            trusted_root=trusted_root,
            ignore_tlog=insecure_ignore_tlog,
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
    _verify_blob(file, bundle, policy, expect, output, (tlog_url, log_state))
