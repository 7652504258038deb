"""Async client for any registry that speaks the OCI distribution spec v1.1.

``RegistryClient`` (``client.py``) reaches one registry host: blobs (``blobs.py``), manifests, tags
and the catalog (``manifests.py``), referrers with the tag-schema fallback (``referrers.py``).
``layout.py`` reads and writes OCI image layouts on disk, ``copy.py`` copies an artifact with its
children and referrers between registries and layouts, ``discover.py`` builds the referrers tree.
The HTTP plumbing (scheme rule, auth challenges, credentials, error mapping) is in ``transport/``.
"""

from safeguard.oci.client import RegistryClient
from safeguard.oci.errors import DigestMismatch, InsecureRegistry

__all__ = ["DigestMismatch", "InsecureRegistry", "RegistryClient"]
