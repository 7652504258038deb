"""HTTP plumbing of the registry client: scheme rule, credentials, auth challenges, one session."""
