"""reasoning-gym datasets as a source, and its scorer as a verifier (extra ``gym``)."""
