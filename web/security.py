"""Headers on every answer of the server: pages cannot be framed (clickjacking), types are not sniffed, and a
Content-Security-Policy lets a page run only the console's own script files and the inline scripts the server
rendered itself (a fresh nonce per page), so text a citizen typed into a ticket can never run as script."""
from __future__ import annotations

import secrets

from aiohttp import web

NONCE = "csp_nonce"


def csp_nonce(request: web.Request) -> str:
    """The nonce of this response's inline ``<script nonce=...>`` tags (made on first use)."""
    nonce = request.get(NONCE)
    if nonce is None:
        nonce = request[NONCE] = secrets.token_urlsafe(16)
    return str(nonce)


def content_security_policy(nonce: str | None) -> str:
    scripts = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    # Styles stay 'unsafe-inline': the templates use style attributes, and CSS cannot run script.
    # 'self' in connect-src also covers ws:// and wss:// to the same host and port (CSP level 3).
    return ("default-src 'self'; "
            f"script-src {scripts}; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", content_security_policy(request.get(NONCE)))


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(add_security_headers)
