"""The cross-site request forgery checks of the form (its security headers: plumbing.web)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def csrf_token(key: bytes, invitation_id: str) -> str:
    """Bound to the invitation: a form from one link cannot be posted to another."""
    return hmac.new(key, f"csrf:{invitation_id}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(key: bytes, invitation_id: str, given: str) -> bool:
    expected = csrf_token(key, invitation_id).encode()
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected)


def cross_site(headers: Mapping[str, str]) -> bool:
    """Browsers say where a form post comes from (`Sec-Fetch-Site`); refuse another site's.

    Not `Origin` against `Host`: an ingress may rewrite the host, and the HMAC above is the
    real defence; this only stops a forged post before it reaches the database.
    """
    return headers.get("sec-fetch-site", "same-origin") not in {"same-origin", "none"}
