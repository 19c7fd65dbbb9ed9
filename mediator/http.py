"""What every peer's HTTP exchange shares: addresses without credentials, and error
bodies reduced to what an operator can read in one line."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit, urlunsplit

import requests

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
DETAIL_CHARS = 200


def without_userinfo(url: str) -> str:
    """The URL without any ``user:password@`` part: what logs and reports may show."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def body_detail(response: requests.Response, limit: int = DETAIL_CHARS) -> str:
    """One line from an error body: a JSON ``error``/``reason`` or ``message``, an HTML
    page's title (a proxy's error page, never the whole page), or the text's start."""
    text = response.text or ""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        parts = [
            str(data[k]) for k in ("error", "reason", "message") if isinstance(data.get(k), str)
        ]
        if parts:
            return _one_line(" / ".join(dict.fromkeys(parts)), limit)
    if "<html" in text[:500].lower() or "<!doctype" in text[:500].lower():
        title = _TITLE.search(text)
        shown = html.unescape(title.group(1)) if title else "an HTML error page"
        return _one_line(shown, limit)
    return _one_line(_TAGS.sub(" ", text), limit)


def _one_line(text: str, limit: int) -> str:
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"{cut}…"
