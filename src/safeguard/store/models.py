"""Every model module, imported once so ``Base.metadata`` knows every table.

Migrations (``migrations/env.py``) and the schema-drift test import this; a room that adds a
models module adds its import here.
"""

from safeguard.store import (
    gateway_models,
    policy_models,
    registry_models,
    signing_models,
    tlog_models,
)
from safeguard.store.base import Base

metadata = Base.metadata

__all__ = [
    "gateway_models",
    "metadata",
    "policy_models",
    "registry_models",
    "signing_models",
    "tlog_models",
]
