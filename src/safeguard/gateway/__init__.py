"""The registry gateway: a policy-enforcing proxy for the OCI Distribution API.

It sits in front of any registry (the built-in one in-process, or an external one over HTTP) and
relays every request with bodies streamed through (``upstream``), after authenticating the caller
(``auth``; tokens from its own ``/token``, ``site``). Around the relay it enforces the
``registries`` rules of the policy on pushes (unsigned-push modes, tag immutability, read-only
quarantine), keeps the pull log (``pulllog``, ``events``), serves quarantined artifacts under
their old names, and answers the referrers API for registries that lack it. ``mount`` wires it
into ``safeguard serve``; docs/gateway.md describes it for users.
"""
