"""The real components the suite relies on start, answer and stop."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from tests.fixtures.distribution import RegistryServer


def test_distribution_answers_v2(distribution_registry: RegistryServer) -> None:
    response = httpx.get(f"{distribution_registry.url}/v2/")
    assert response.status_code == 200


def test_postgres_answers(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar() == 1
    engine.dispose()
