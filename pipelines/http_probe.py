"""One quick HTTP GET to tell whether a server is there, before a client library retries for minutes.

Both the MLflow tracking URI check (``pipelines/tracking/uri.py``) and the Ray Jobs address check
(``pipelines/distributed/jobs.py``) use it.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from components.config import ConfigError


@dataclass(frozen=True)
class Probe:
    """What came back: an HTTP status (any, errors included) and body, or why nothing did."""

    status: int | None  # None when nothing answered over HTTP
    body: bytes = b""
    reason: Any = None  # the network error when nothing answered

    @property
    def answered(self) -> bool:
        return self.status is not None


def probe(url: str, timeout_s: float, headers: dict[str, str] | None = None) -> Probe:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:
            return Probe(int(r.status), r.read())
    except urllib.error.HTTPError as e:
        return Probe(int(e.code))
    except (urllib.error.URLError, OSError, TimeoutError, ValueError, http.client.HTTPException) as e:
        return Probe(None, reason=getattr(e, "reason", e))


def check_http_url(url: str, what: str, example: str) -> str:
    """``url`` if it is an http(s) URL with a host and, if any, a numeric port; else ConfigError."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError as e:
        raise ConfigError(f"{what} {url!r} is not a URL like {example} ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ConfigError(f"{what} {url!r} is not a URL like {example} (an http(s) scheme and a host)")
    return url
