"""Manifest pushes and deletes through the gateway: the policy decides, the registry stores, the
gateway records (distribution-spec v1.1 "Pushing Manifests", "Deleting tags", "Deleting
Manifests"; policy: the ``registries`` rules of safeguard.yaml).

For a ``PUT /v2/<name>/manifests/<reference>`` the manifest is read (at most 4 MiB, else 413
``MANIFEST_INVALID``) and parsed (malformed: 400 ``MANIFEST_INVALID``; a digest in the URL that
does not match: 400 ``DIGEST_INVALID``) before anything reaches the registry. Then, under the
rule for the repository:

* the quarantine namespace is read-only: ``DENIED``;
* a push **by digest** is always allowed — that is how images, index children, signatures and
  attestations (referrers with a ``subject``) arrive — unless it also names tags (``?tag=``),
  which are judged like tags pushed by name;
* cosign's ``sha256-<hex>.sig``/``.att``/``.sbom`` tags are allowed when ``sha256:<hex>`` is a
  manifest of the same repository (stored, or pending in grace), and referrers tag-schema
  indexes ``sha256-<hex>`` when they are image indexes; neither is subject to the signing rule;
* a tag that exists and would move to another digest is refused when it matches
  ``immutableTags`` or points at a signed digest (only an admin retag moves it);
* the unsigned-push mode: ``reject`` refuses a tag for a digest without a signature that
  verifies under the rule's signers, with the way out in the message (push by digest, sign,
  then tag — or ``safeguard push``); ``grace`` stores the manifest by digest and keeps the tag
  pending (``grace``); ``warn`` accepts with a ``Warning`` header; ``off`` accepts.

Decisions about tags are audit events (``audit``), written once the registry answered (or
when the gateway refused). What the registry accepted is recorded after it answered and before
the client is answered: pending tags, the referrers index (registries without the API, with
``OCI-Subject`` on the answer), and signatures arriving for pending tags release them.
A registry failure in between leaves none of it behind.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

import anyio.to_thread

from safeguard.core import mediatypes as mt
from safeguard.core.digest import DEFAULT_ALGORITHM, Digest
from safeguard.core.errors import (
    EXIT_UNREACHABLE,
    InvalidManifest,
    OCIError,
    OCIErrorCode,
    SafeguardError,
)
from safeguard.core.manifest import Manifest, parse_manifest
from safeguard.gateway.audit import AuditEvent, AuditLog
from safeguard.gateway.grace import Grace, PendingTags
from safeguard.gateway.referrers import ReferrerIndex
from safeguard.gateway.rules import GatewayRule, PolicySource
from safeguard.gateway.signed import SignatureCheck
from safeguard.gateway.tags import is_attached_tag, is_referrers_index_tag, tag_digest
from safeguard.gateway.upstream import Upstream
from safeguard.registry.context import MANIFEST_LIMIT, check_digest, check_tag
from safeguard.registry.http import Headers
from safeguard.registry.manifests import _too_large

if TYPE_CHECKING:
    from safeguard.gateway.app import Call

log = logging.getLogger("safeguard.gateway.pushes")
_run = anyio.to_thread.run_sync

PUSH_HINT: Final = (
    "push by digest, sign, then tag (or use `safeguard push --key KEY SRC DST`, which does all "
    "three)"
)
RETAG_HINT: Final = "an admin can move it: safeguard gateway retag REPO:TAG --to DIGEST --reason"

Relay = Callable[..., Awaitable[tuple[int, Headers, bytes]]]


def denied(message: str, hint: str | None = None) -> OCIError:
    text = f"{message}: {hint}" if hint else message
    return OCIError(OCIErrorCode.DENIED, text, status=403, hint=hint)


def warning(text: str) -> tuple[bytes, bytes]:
    """``Warning: 299 - "text"`` (RFC 7234 section 5.5; quoted-string escaping)."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return (b"warning", f'299 - "{quoted}"'.encode("utf-8", "replace"))


@dataclass
class Plan:
    """What to do with one manifest push."""

    upstream_reference: str
    upstream_tags: list[str]  # ?tag= to pass on (pushes by digest)
    pending: list[str] = field(default_factory=list)  # tags to hold until signed
    warnings: list[str] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    released_tags: list[str] = field(default_factory=list)  # tags that replace pending ones


class Enforcer:
    def __init__(
        self,
        upstream: Upstream,
        rules: PolicySource,
        signatures: SignatureCheck,
        audit: AuditLog,
        pending: PendingTags,
        grace: Grace,
        referrers: ReferrerIndex,
    ) -> None:
        self.upstream = upstream
        self.rules = rules
        self.signatures = signatures
        self.audit = audit
        self.pending = pending
        self.grace = grace
        self.referrers = referrers

    def refuse_writes_to_quarantine(self, repository: str) -> None:
        if self.rules.cached().in_quarantine(repository):
            raise denied(f"{repository} is in the quarantine namespace, which is read-only")

    def _event(self, call: Call, **fields: object) -> AuditEvent:
        return AuditEvent(
            client=call.client,
            identity=call.principal.name,
            repository=call.route.name,
            **fields,  # type: ignore[arg-type]
        )

    # -- PUT ----------------------------------------------------------------------------------

    async def put_manifest(self, call: Call, relay: Relay) -> None:
        route, req = call.route, call.req
        repository = route.name
        self.refuse_writes_to_quarantine(repository)
        declared = req.content_length()
        if declared is not None and declared > MANIFEST_LIMIT:
            raise _too_large()
        raw = await req.read(MANIFEST_LIMIT, _too_large)
        try:
            manifest = parse_manifest(raw, req.header(b"content-type"))
        except InvalidManifest as exc:
            raise OCIError(OCIErrorCode.MANIFEST_INVALID, exc.message, status=400) from exc
        url_digest = check_digest(route.reference) if route.by_digest else None
        digest = Digest.of(raw, url_digest.algorithm if url_digest else DEFAULT_ALGORITHM)
        if url_digest is not None and digest != url_digest:
            raise OCIError(
                OCIErrorCode.DIGEST_INVALID,
                f"manifest digest is {digest}, not {url_digest} as the URL says",
                status=400,
                detail={"expected": str(url_digest), "actual": str(digest)},
            )
        tags = [check_tag(t) for t in req.query.get("tag", [])] if route.by_digest else []
        if not route.by_digest:
            tags = [check_tag(route.reference)]
        plan = Plan(route.reference, [] if not route.by_digest else list(tags))
        rule = self.rules.cached().rule_for(repository)
        for tag in tags:
            await self._judge_tag(call, rule, tag, manifest, digest, plan)
        if plan.pending:
            plan.upstream_reference = str(digest)
            plan.upstream_tags = [t for t in plan.upstream_tags if t not in plan.pending]
        query = urlencode([("tag", t) for t in plan.upstream_tags]).encode()
        status, headers, body = await relay(
            call,
            path=f"/v2/{repository}/manifests/{plan.upstream_reference}",
            body=raw,
            query=query,
        )
        if status == 201:
            headers = await self._accepted(call, rule, manifest, digest, plan, headers)
        await call_respond(call, status, headers, body)

    async def _judge_tag(
        self,
        call: Call,
        rule: GatewayRule | None,
        tag: str,
        manifest: Manifest,
        digest: Digest,
        plan: Plan,
    ) -> None:
        repository = call.route.name
        subject = is_attached_tag(tag)
        if subject is not None:
            if not await self._in_repository(repository, subject):
                raise denied(
                    f"{tag} is a signature tag for {subject}, which is not a manifest of "
                    f"{repository}",
                    "push the image first, then its signature",
                )
            return
        if is_referrers_index_tag(tag) is not None and manifest.media_type == mt.OCI_INDEX:
            return
        if rule is None:
            return
        await self._check_move(call, rule, tag, digest)
        mode = rule.mode
        event = {"action": "push", "tag": tag, "digest": str(digest), "mode": mode}
        if mode == "off":
            plan.events.append(
                self._event(call, decision="allowed", reason="unsigned-push mode off", **event)
            )
            plan.released_tags.append(tag)
            return
        try:
            outcome = await self.signatures.verified(repository, str(digest), rule)
        except SafeguardError as exc:
            if exc.exit_code == EXIT_UNREACHABLE:
                raise  # the registry is down: 503, and nothing decided
            await self.audit.record(
                self._event(call, decision="denied", reason=f"policy unusable: {exc}", **event)
            )
            raise denied(
                f"the signing policy for {repository} cannot be evaluated ({exc.message})",
                "fix the policy's signers; the gateway refuses what it cannot check",
            ) from None
        if outcome.ok:
            plan.events.append(
                self._event(call, decision="allowed", reason=outcome.reason, **event)
            )
            plan.released_tags.append(tag)
            return
        if mode == "reject":
            await self.audit.record(
                self._event(call, decision="denied", reason=outcome.reason, **event)
            )
            raise denied(
                f"unsigned push refused: {repository}:{tag} ({digest}) has no signature that "
                f"verifies under the policy for {rule.match}",
                PUSH_HINT,
            )
        if mode == "warn":
            plan.warnings.append(
                f"{repository}:{tag} is not signed by an allowed signer; accepted (warn mode)"
            )
            plan.events.append(self._event(call, decision="warned", reason=outcome.reason, **event))
            plan.released_tags.append(tag)
            return
        plan.pending.append(tag)
        plan.warnings.append(
            f"{repository}:{tag} is pending: it becomes visible once {digest} is signed by an "
            f"allowed signer, within {rule.grace_seconds} s, or it goes to quarantine"
        )
        plan.events.append(self._event(call, decision="pending", reason=outcome.reason, **event))

    async def _in_repository(self, repository: str, digest: Digest) -> bool:
        client = self.upstream.client()
        if await client.manifests.head(repository, digest) is not None:
            return True
        return await _run(self.pending.has_digest, repository, str(digest))

    async def _check_move(self, call: Call, rule: GatewayRule, tag: str, digest: Digest) -> None:
        repository = call.route.name
        current = await tag_digest(self.upstream.client(), repository, tag)
        if current is None or current == digest:
            return
        if rule.tag_is_immutable(tag):
            reason = f"tag {tag} is immutable (immutableTags of {rule.match})"
        elif await self.signatures.signed(repository, str(current), rule):
            reason = f"tag {tag} points at signed {current}"
        else:
            return
        await self.audit.record(
            self._event(
                call,
                action="push",
                decision="denied",
                tag=tag,
                digest=str(digest),
                old_digest=str(current),
                mode=rule.mode,
                reason=reason,
            )
        )
        raise denied(f"{repository}:{tag} may not move: {reason}", RETAG_HINT)

    async def _accepted(
        self,
        call: Call,
        rule: GatewayRule | None,
        manifest: Manifest,
        digest: Digest,
        plan: Plan,
        headers: Headers,
    ) -> Headers:
        repository = call.route.name
        out = list(headers)
        if plan.pending:
            assert rule is not None
            seconds = rule.grace_seconds
            for tag in plan.pending:
                await _run(
                    self.pending.add,
                    repository,
                    tag,
                    str(digest),
                    manifest.media_type,
                    seconds,
                    call.client,
                    call.principal.name,
                )
        for tag in plan.released_tags:
            await _run(self.pending.supersede, repository, tag)
        if manifest.subject is not None:
            subject = str(manifest.subject.digest)
            if await self.referrers.emulating(repository, subject):
                await self.referrers.record(repository, manifest, digest)
                out = [(k, v) for k, v in out if k != b"oci-subject"]
                out.append((b"oci-subject", subject.encode()))
            await self._signature_arrived(repository, subject)
        elif not call.route.by_digest and (subject_digest := is_attached_tag(call.route.reference)):
            await self._signature_arrived(repository, str(subject_digest))
        for event in plan.events:
            await self.audit.record(event)
        for text in plan.warnings:
            out.append(warning(text))
        return out

    async def _signature_arrived(self, repository: str, subject: str) -> None:
        try:
            released = await self.grace.on_signature(repository, subject)
        except SafeguardError as exc:
            log.warning(
                "gateway: signature for %s in %s not checked yet: %s", subject, repository, exc
            )
            return
        if released:
            log.info("gateway: released %s in %s", ", ".join(released), repository)

    # -- DELETE -------------------------------------------------------------------------------

    async def delete_manifest(self, call: Call, relay: Relay) -> None:
        route = call.route
        repository = route.name
        self.refuse_writes_to_quarantine(repository)
        rule = self.rules.cached().rule_for(repository)
        client = self.upstream.client()
        event = {"action": "delete", "mode": rule.mode if rule else None}
        subject: str | None = None
        if route.by_digest:
            digest = str(check_digest(route.reference))
            if rule is not None:
                found = await client.manifests.get_optional(repository, Digest.parse(digest))
                if found is not None:
                    parsed = parse_manifest(found.raw, found.media_type)
                    reason = None
                    if parsed.subject is not None:
                        reason = f"{digest} is signature material for {parsed.subject.digest}"
                    elif await self.signatures.signed(repository, digest, rule):
                        reason = f"{digest} is signed"
                    if reason is not None:
                        await self.audit.record(
                            self._event(
                                call, decision="denied", digest=digest, reason=reason, **event
                            )
                        )
                        raise denied(
                            f"deleting {repository}@{digest} is refused: {reason}",
                            "an admin can quarantine it: safeguard quarantine move",
                        )
            subject = await self.referrers.subject_of(repository, digest)
        else:
            tag = check_tag(route.reference)
            if rule is not None and is_attached_tag(tag) is None:
                current = await tag_digest(client, repository, tag)
                reason = None
                if current is not None and rule.tag_is_immutable(tag):
                    reason = f"tag {tag} is immutable (immutableTags of {rule.match})"
                elif current is not None and await self.signatures.signed(
                    repository, str(current), rule
                ):
                    reason = f"tag {tag} points at signed {current}"
                if reason is not None:
                    await self.audit.record(
                        self._event(call, decision="denied", tag=tag, reason=reason, **event)
                    )
                    raise denied(
                        f"deleting {repository}:{tag} is refused: {reason}",
                        "an admin can remove it: safeguard gateway untag REPO:TAG --reason",
                    )
        status, headers, body = await relay(call, path=None, body=b"", query=None)
        if 200 <= status < 300:
            if subject is not None:
                await self.referrers.forget(repository, route.reference, subject)
            if rule is not None:
                await self.audit.record(
                    self._event(
                        call,
                        decision="allowed",
                        tag=None if route.by_digest else route.reference,
                        digest=route.reference if route.by_digest else None,
                        reason="deleted",
                        **event,
                    )
                )
        await call_respond(call, status, headers, body)


async def call_respond(call: Call, status: int, headers: Headers, body: bytes) -> None:
    """Answer with what the registry answered (headers as it sent them, length fixed)."""
    out = [(k, v) for k, v in headers if k != b"content-length"]
    out.append((b"content-length", str(len(body)).encode()))
    call.out.started = True
    await call.send({"type": "http.response.start", "status": status, "headers": out})
    await call.send(
        {
            "type": "http.response.body",
            "body": b"" if call.req.method == "HEAD" else body,
            "more_body": False,
        }
    )
