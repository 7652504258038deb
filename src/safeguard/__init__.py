"""Safeguard: an organisation's OCI artifact signing program, end to end.

See ``docs/`` and the design map in the repository for how the packages fit together.
"""

__version__ = "0.1.0"
