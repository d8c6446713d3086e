"""Store URLs shown to people: the password never leaves the process in a message or a report."""

from __future__ import annotations

import re
from urllib.parse import unquote

_QUERY_PASSWORD = re.compile(r"(?i)(password=)[^&#]*")


def _userinfo_span(url: str) -> tuple[int, int] | None:
    """Start and end of ``user:password`` in ``scheme://user:password@host...``, if present."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    start = scheme_end + 3
    rest = url[start:]
    # the authority ends at the first '?' or '#'; a password may (wrongly, unencoded) hold '/'
    stop = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, stop)
    if at < 0:
        return None
    return start, start + at


def url_password(url: str) -> str | None:
    span = _userinfo_span(url)
    if span is None:
        return None
    userinfo = url[span[0] : span[1]]
    return userinfo.split(":", 1)[1] if ":" in userinfo else None


def redact_url(url: str) -> str:
    """``postgresql://user:secret@host/db?password=x`` -> ``postgresql://user:***@host/db?password=***``."""
    text = url
    span = _userinfo_span(text)
    if span is not None:
        userinfo = text[span[0] : span[1]]
        if ":" in userinfo:
            text = text[: span[0]] + userinfo.split(":", 1)[0] + ":***" + text[span[1] :]
    return _QUERY_PASSWORD.sub(r"\1***", text)


def scrub(message: str, url: str) -> str:
    """Remove the URL's password (as written and percent-decoded) from a library's message."""
    password = url_password(url)
    query = [m.group(0)[len("password=") :] for m in _QUERY_PASSWORD.finditer(url)]
    for secret in [password, *query]:
        if secret:
            for form in {secret, unquote(secret)}:
                if form:
                    message = message.replace(form, "***")
    return message
