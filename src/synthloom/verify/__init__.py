"""Verification tools: a Python sandbox, read-only SQLite execution, math answer equivalence.

Every record a recipe marks ``verified: true`` passed one of these checks (see docs/verify.md).
"""
