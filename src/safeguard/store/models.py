"""Every model module, imported once so ``Base.metadata`` knows every table.

Migrations (``migrations/env.py``) and the schema-drift test import this; a room that adds a
models module adds its import here.
"""

from safeguard.store import policy_models, registry_models, tlog_models
from safeguard.store.base import Base

metadata = Base.metadata

__all__ = ["metadata", "policy_models", "registry_models", "tlog_models"]
