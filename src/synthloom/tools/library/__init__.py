"""A small executable API library (APIGen's API pool): math, units, dates, text, each a
self-contained module whose public functions are tools (run in the sandbox)."""

from __future__ import annotations

#: Domain -> module, as ``SandboxedPythonTools`` takes it.
LIBRARY = {
    "math": "synthloom.tools.library.mathtools",
    "units": "synthloom.tools.library.units",
    "dates": "synthloom.tools.library.dates",
    "text": "synthloom.tools.library.text",
}
