"""The gateway's non-registry HTTP endpoints: the token service and the admin API.

* ``GET /token`` is a Docker token server (distribution's "Token Authentication Specification"
  and "OAuth2 Token Authentication" GET form): Basic credentials (or none, for anonymous pull)
  in, a bearer token for the requested ``scope`` parameters out, narrowed to the caller's roles.
* ``/_safeguard/gateway/...`` is the admin API the ``safeguard gateway`` and ``safeguard
  quarantine`` commands call. Every admin call needs the ``admin`` role (HTTP Basic or a bearer
  token); without a users file only loopback clients are admitted. Errors are JSON
  ``{"code", "message", "hint"}`` with the error's HTTP status.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from safeguard.core.errors import InvalidInput, SafeguardError
from safeguard.gateway.auth import SERVICE, AuthConfig, Principal

ADMIN_PREFIX: Final = "/_safeguard/gateway/"
TOKEN_PATH: Final = "/token"


class AdminRequired(SafeguardError):
    code = "ADMIN_REQUIRED"
    http_status = 403


class Unauthenticated(SafeguardError):
    code = "UNAUTHORIZED"
    http_status = 401


def is_gateway_site_path(path: str) -> bool:
    return path == TOKEN_PATH or path.startswith(ADMIN_PREFIX)


def error_response(exc: SafeguardError) -> JSONResponse:
    status = getattr(exc, "status", None) or exc.http_status
    headers = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = f'Basic realm="{SERVICE}"'
    return JSONResponse(exc.to_dict(), status_code=int(status), headers=headers)


def _is_loopback(request: Request) -> bool:
    if request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def admin_principal(auth: AuthConfig, request: Request) -> Principal:
    """The admin making ``request``, or a typed 401/403."""
    principal = auth.authenticate(request.headers.get("authorization"))
    if principal is None:
        raise Unauthenticated("invalid credentials", hint="check the admin user and password")
    if not auth.enabled:
        if not _is_loopback(request):
            raise AdminRequired(
                "the admin API answers only loopback clients when the gateway has no users file",
                hint="start the gateway with --auth FILE and an admin user",
            )
        return Principal("local-admin", principal.actions, None, False)
    if not principal.authenticated:
        raise Unauthenticated("the admin API needs credentials", hint="pass an admin user")
    if not principal.is_admin:
        raise AdminRequired(
            f"{principal.name} is not an admin", hint="admin actions need the admin role"
        )
    return principal


async def json_body(request: Request, limit: int = 1024 * 1024) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > limit:
        raise InvalidInput("request body too large")
    try:
        doc = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object")
    return doc


AdminHandler = Callable[[Request, Principal], Awaitable[Response]]


def admin_route(auth: AuthConfig, path: str, handler: AdminHandler, methods: list[str]) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            principal = admin_principal(auth, request)
            return await handler(request, principal)
        except SafeguardError as exc:
            return error_response(exc)

    return Route(ADMIN_PREFIX + path, endpoint, methods=methods)


def build_site(auth: AuthConfig, admin_routes: list[Route]) -> Starlette:
    async def token(request: Request) -> Response:
        principal = auth.authenticate(request.headers.get("authorization"))
        if principal is None:
            return error_response(Unauthenticated("invalid credentials"))
        scopes = [s for value in request.query_params.getlist("scope") for s in value.split(" ")]
        service = request.query_params.get("service") or SERVICE
        if service != SERVICE:
            return JSONResponse(
                {"code": "UNSUPPORTED", "message": f"unknown service {service[:100]!r}"},
                status_code=400,
            )
        if not principal.authenticated and not principal.actions:
            return error_response(Unauthenticated("authentication required"))
        return JSONResponse(auth.issue(principal, scopes, service))

    return Starlette(routes=[Route(TOKEN_PATH, token, methods=["GET"]), *admin_routes])
