"""Safeguard's built-in OCI registry: distribution-spec v1.1 over a filesystem blob store.

``RegistryApp`` is a raw ASGI application serving ``/v2/``; blob bytes live in a
content-addressed directory tree (``blobstore``), everything else in the metadata store
(``safeguard.store.registry_models``), so blobs are scoped per repository as the spec requires.
"""

from safeguard.registry.app import RegistryApp, create_registry_app

__all__ = ["RegistryApp", "create_registry_app"]
