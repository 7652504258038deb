"""``safeguard serve``: run the node's HTTP surfaces (today the built-in registry) under uvicorn.

``--port 0`` binds a free port; the line printed on start-up says where it listens. Server logs
are JSON lines on stderr (``--log-format text`` for uvicorn's own format).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from safeguard.cli.app import app
from safeguard.cli.output import fail, reported
from safeguard.cli.storeopts import DATA_DIR_OPTION, DATABASE_OPTION
from safeguard.core.errors import InvalidInput
from safeguard.gateway.config import GatewaySettings
from safeguard.oci.transport.credentials import Credentials, lookup_credentials


class JsonLineFormatter(logging.Formatter):
    """One JSON object per log record: time, level, logger, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and Safeguard's loggers, as JSON lines."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonLineFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "safeguard")
        },
    }


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it every keep-alive response stalls on Nagle + delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        fail(
            InvalidInput(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="choose another --port (0 picks a free one) or --host",
            )
        )
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def gateway_settings(
    upstream: str | None,
    policy: Path | None,
    auth: Path | None,
    public_url: str | None,
    listen: str | None = None,
    blob_redirect: bool = False,
    upstream_public_url: str | None = None,
) -> GatewaySettings:
    """The gateway's settings from serve's flags (``listen``: the HOST:PORT bound); upstream
    credentials come from ``SAFEGUARD_UPSTREAM_USERNAME``/``_PASSWORD``, else the
    Docker/containers auth files. ``blob_redirect``: blob GETs answer 307 to the upstream
    (at ``upstream_public_url``, default ``upstream``) instead of being relayed."""
    credentials = None
    redirect_url = _blob_redirect_url(upstream, blob_redirect, upstream_public_url)
    if upstream is not None:
        if not upstream.startswith(("http://", "https://")):
            raise InvalidInput(
                f"--upstream {upstream!r} is not a URL", hint="write http(s)://HOST[:PORT]"
            )
        user = os.environ.get("SAFEGUARD_UPSTREAM_USERNAME")
        if user:
            credentials = Credentials(user, os.environ.get("SAFEGUARD_UPSTREAM_PASSWORD", ""))
        else:
            credentials = lookup_credentials(upstream.split("://", 1)[1].rstrip("/"))
    for flag, path in (("--policy", policy), ("--auth", auth)):
        if path is not None and not path.is_file():
            raise InvalidInput(f"{flag} {path}: no such file")
    return GatewaySettings(
        upstream=upstream.rstrip("/") if upstream else None,
        upstream_credentials=credentials,
        auth_file=auth,
        policy_file=policy,
        public_url=public_url,
        blob_redirect_url=redirect_url,
        listen=listen,
    )


def _blob_redirect_url(
    upstream: str | None, blob_redirect: bool, upstream_public_url: str | None
) -> str | None:
    if upstream_public_url is not None and not blob_redirect:
        raise InvalidInput(
            "--upstream-public-url is used only with --blob-redirect",
            hint="add --blob-redirect, or drop --upstream-public-url",
        )
    if not blob_redirect:
        return None
    if upstream is None:
        raise InvalidInput(
            "--blob-redirect needs --upstream",
            hint="the built-in registry is in the same process: there is no relay to skip",
        )
    url = upstream_public_url or upstream
    if not url.startswith(("http://", "https://")) or "?" in url or "#" in url:
        raise InvalidInput(
            f"--upstream-public-url {url!r} is not a base URL", hint="write http(s)://HOST[:PORT]"
        )
    return url.rstrip("/")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="0 picks a free port"),
    data_dir: Path = DATA_DIR_OPTION,
    database: str | None = DATABASE_OPTION,
    tlog_key: str | None = typer.Option(
        None,
        "--tlog-key",
        envvar="SAFEGUARD_TLOG_KEY",
        help="transparency log key: PEM or cosign key file, or pkcs11: URI "
        "(default: made in the data dir on first start)",
    ),
    upstream: str | None = typer.Option(
        None,
        "--upstream",
        envvar="SAFEGUARD_UPSTREAM",
        help="registry the gateway fronts, http(s)://HOST[:PORT] (default: the built-in one)",
    ),
    policy: Path | None = typer.Option(
        None, "--policy", help="policy file the gateway enforces (default: the active policy)"
    ),
    auth: Path | None = typer.Option(
        None, "--auth", help="gateway users file (roles pull/push/admin); default: no auth"
    ),
    public_url: str | None = typer.Option(
        None, "--public-url", help="URL clients reach the gateway at (for token challenges)"
    ),
    blob_redirect: bool = typer.Option(
        False,
        "--blob-redirect",
        help="answer blob GETs with 307 to the upstream instead of relaying the bytes "
        "(clients must be able to reach and pull from the upstream)",
    ),
    upstream_public_url: str | None = typer.Option(
        None,
        "--upstream-public-url",
        help="URL clients reach the upstream at, for --blob-redirect (default: --upstream)",
    ),
    log_level: str = typer.Option("warning", "--log-level", help="debug, info, warning, error"),
    log_format: str = typer.Option("json", "--log-format", help="json (lines) or text"),
    access_log: bool = typer.Option(False, "--access-log", help="log every request"),
) -> None:
    """Run Safeguard's HTTP surfaces: the gateway under /v2/ (in front of the built-in registry,
    or of --upstream), the transparency log, the token and admin endpoints."""
    import uvicorn

    from safeguard.server import create_app

    if log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
        fail(InvalidInput(f"unknown --log-level {log_level!r}", hint="use warning or info"))
    if log_format not in ("json", "text"):
        fail(InvalidInput(f"unknown --log-format {log_format!r}", hint="use json or text"))
    sock = _bind(host, port)  # first: the gateway needs the bound port (--port 0) as its name
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    with reported():
        settings = gateway_settings(
            upstream,
            policy,
            auth,
            public_url,
            f"{shown}:{bound}",
            blob_redirect=blob_redirect,
            upstream_public_url=upstream_public_url,
        )
        application = create_app(data_dir, database, tlog_key=tlog_key, gateway=settings)
    base = f"http://{shown}:{bound}"
    typer.echo(f"Safeguard listening on {base} (data: {application.data_dir})")
    typer.echo(
        f"  OCI registry {base}/v2/ · transparency log {base}/api/v1/log · "
        f"signing service {base}/api/v1/signatures"
    )
    source = policy or "the store's active one"
    typer.echo(
        f"Gateway in front of {upstream or 'the built-in registry'}; "
        f"users: {auth or 'none (no authentication)'}; policy: {source}"
    )
    if settings.blob_redirect_url:
        typer.echo(f"Blob GETs are redirected (307) to {settings.blob_redirect_url}")
    config = uvicorn.Config(
        application,
        log_level=log_level.lower(),
        log_config=log_config(log_level) if log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])
