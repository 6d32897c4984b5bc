"""Preamble of every sandboxed program (passed as ``python -I -c SOURCE FILE``).

Defence in depth beside the network namespace: an audit hook refuses to create any socket but
AF_UNIX, so networking fails even where no namespace could be made. Audit hooks cannot be
removed from Python, but native code (ctypes, C extensions) can still bypass them: this alone
is weaker than the namespace. Then the program runs as ``__main__``.
"""

from __future__ import annotations


def main() -> None:
    import runpy
    import socket
    import sys

    allowed = {int(socket.AF_UNIX)}

    def hook(event: str, args: tuple) -> None:
        if event == "socket.__new__" and len(args) > 1 and int(args[1]) not in allowed:
            raise PermissionError("network access is disabled in the synthloom sandbox")
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
            sock = args[0] if args else None
            family = getattr(sock, "family", None)
            if event == "socket.getaddrinfo" or family not in allowed:
                raise PermissionError("network access is disabled in the synthloom sandbox")

    sys.addaudithook(hook)
    path = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = "."
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main()
