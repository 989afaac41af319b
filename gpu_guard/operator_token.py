"""GPU_GUARD_TOKEN as the server reads it: surrounding whitespace stripped, header-unsafe values refused.

Kubernetes builds Secrets from files, and a token file ends in a newline that the Secret keeps; every
client strips it (urllib refuses a header value with a newline), so the server strips it too. A token
with characters an HTTP header cannot carry (control characters, non-ASCII) could never be sent, so
it is refused with a clear error, and the write routes stay locked: a refused token must never open
them to the loopback rule of a server without a token.
"""
from __future__ import annotations

import secrets
from typing import Optional, Tuple

_HOW = "set GPU_GUARD_TOKEN to printable ASCII (e.g. `openssl rand -hex 32`)"


def header_problem(token: str) -> Optional[str]:
    """Why `token` (already stripped) cannot travel in an Authorization header, or None."""
    for index, char in enumerate(token):
        if not (" " <= char <= "~"):
            return f"character {index + 1} ({char!r}) cannot be sent in an HTTP header"
    return None


def read_token(raw: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(token, problem). No token or only whitespace: (None, None). A refused token gives a random
    secret nobody knows, so that every write is refused (403) until the variable is fixed."""
    if raw is None or not raw.strip():
        return None, None
    token = raw.strip()
    problem = header_problem(token)
    if problem is None:
        return token, None
    return secrets.token_hex(32), (f"GPU_GUARD_TOKEN is refused: {problem}; every POST to config, drain, "
                                   f"pause and resume is refused (403) until you {_HOW} and restart")
