"""Shared fixtures: real components on free loopback ports, each cleaned up after itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import distribution, postgres
from tests.fixtures.distribution import RegistryServer


@pytest.fixture(scope="session")
def distribution_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Debian's docker-registry 2.8.2, anonymous, delete enabled."""
    if not distribution.available():
        pytest.skip("docker-registry is not installed (make test installs it)")
    with distribution.run_distribution(tmp_path_factory.mktemp("distribution")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not postgres.available():
        pytest.skip("PostgreSQL server binaries are not installed (make test installs them)")
    with postgres.run_postgres() as url:
        yield url


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def builtin_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Safeguard's own registry on SQLite, in a fresh data directory."""
    from tests.fixtures.builtin import run_builtin

    with run_builtin(tmp_path_factory.mktemp("builtin")) as server:
        yield server


@pytest.fixture(params=["builtin", "distribution"])
def any_registry(request: pytest.FixtureRequest) -> RegistryServer:
    """Each test using this runs once against our registry and once against distribution 2.8."""
    server: RegistryServer = request.getfixturevalue(f"{request.param}_registry")
    return server
