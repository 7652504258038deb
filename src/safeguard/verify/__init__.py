"""The one verification engine: discover, check the cryptography, check the log, check identity
and attestations against policy, and return a Verdict with every reason and the evidence used."""
