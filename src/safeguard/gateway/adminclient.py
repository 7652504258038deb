"""Calling a gateway's admin API from the command line (``safeguard gateway``, ``safeguard
quarantine``): which URL, which credentials, and typed errors for what it answers.

The gateway is named by its registry host (``HOST[:PORT]``, as in image references) and reached
by the same scheme rule as registries (``safeguard.oci.transport.endpoint``: plain HTTP only on
loopback unless ``--allow-insecure-registry``). Credentials: ``--username`` with the password in
``SAFEGUARD_GATEWAY_PASSWORD``, else the entry for the host in the Docker/containers auth files
(what ``skopeo login`` / ``docker login`` wrote).
"""

from __future__ import annotations

import os
from typing import Any, Final

import httpx

from safeguard.core.errors import EXIT_UNREACHABLE, InvalidInput, SafeguardError, Unreachable
from safeguard.gateway.site import ADMIN_PREFIX
from safeguard.oci.transport.credentials import Credentials, lookup_credentials
from safeguard.oci.transport.endpoint import resolve_endpoint

PASSWORD_ENV: Final = "SAFEGUARD_GATEWAY_PASSWORD"


class AdminCallFailed(SafeguardError):
    """The gateway refused or failed an admin call; keeps its status and code."""

    code = "GATEWAY_ADMIN_FAILED"

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class AdminCallUnavailable(AdminCallFailed):
    """The gateway could not do it now (its registry or store is down): retrying may help."""

    exit_code = EXIT_UNREACHABLE


def credentials_for(host: str, username: str | None) -> Credentials | None:
    if username:
        return Credentials(username, os.environ.get(PASSWORD_ENV, ""))
    return lookup_credentials(host)


def call(
    host: str,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    username: str | None = None,
    allow_insecure: bool = False,
    timeout: float = 600.0,
) -> dict[str, Any]:
    endpoint = resolve_endpoint(host, allow_insecure=allow_insecure)
    url = f"{endpoint.base_url}{ADMIN_PREFIX}{path}"
    creds = credentials_for(host, username)
    headers = {"authorization": creds.basic_header()} if creds is not None else {}
    try:
        with httpx.Client(verify=endpoint.verify_tls, timeout=timeout) as client:
            response = client.request(method, url, json=body, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise Unreachable(
            f"cannot reach the gateway at {endpoint.base_url}: {exc}",
            hint="check the host and that safeguard serve is running there",
        ) from exc
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code != 200:
        message = doc.get("message") if isinstance(doc, dict) else None
        hint = doc.get("hint") if isinstance(doc, dict) else None
        if response.status_code == 404 and not isinstance(doc, dict):
            message = f"{endpoint.base_url} has no gateway admin API"
        kind = AdminCallUnavailable if response.status_code >= 500 else AdminCallFailed
        raise kind(
            str(message or f"the gateway answered {response.status_code}"),
            status=response.status_code,
            hint=str(hint) if hint else None,
        )
    if not isinstance(doc, dict):
        raise InvalidInput(f"the gateway answered something that is not a JSON object to {path}")
    return doc
