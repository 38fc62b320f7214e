"""What of a MongoDB URI may be shown: every message that quotes one goes through `redact` or `server_of`.

A URI carries secrets in two places: the password of its user information (which a careless user may
leave unescaped, `@` included) and options that hold secrets (pymongo's list: `proxyUsername`,
`proxyPassword`, `tlsCertificateKeyFilePassword`, plus `authMechanismProperties`, which may hold an AWS
session token). Redaction is generous: when the URI is malformed, more is hidden, never less.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

from pymongo.common import SENSITIVE_OPTIONS_FOR_REPR

HIDDEN = "***"
SECRET_OPTIONS = frozenset({*SENSITIVE_OPTIONS_FOR_REPR, "authmechanismproperties"})
_SCHEME = re.compile(r"mongodb(?:\+srv)?://", re.IGNORECASE)


def _split(uri: str) -> tuple[str, str, str, str] | None:
    """(scheme, user information or "", hosts and path, options) of a URI, or None if it is not one."""
    match = _SCHEME.match(uri)
    if not match:
        return None
    rest = uri[match.end() :]
    head, question, options = rest.partition("?")
    # The user information ends at the last "@" before the options; a password holding "?" unescaped
    # moves that point, so then the last "@" of the whole URI is taken (hiding more rather than less).
    if "@" in head:
        userinfo, _, hosts = head.rpartition("@")
    elif "@" in rest and "/" not in head:
        userinfo, _, hosts = rest.rpartition("@")
        hosts, _, options = hosts.partition("?")
    else:
        userinfo, hosts = "", head
    return match.group(0), userinfo, hosts, options if question or options else ""


def _secret_options(options: str) -> list[tuple[str, str]]:
    pairs = (p.partition("=") for p in re.split(r"[&;]", options) if p)
    return [(key, value) for key, _, value in pairs if key.lower() in SECRET_OPTIONS and value]


def secrets(uri: str) -> list[str]:
    """Every secret the URI holds, as written and unescaped, longest first."""
    parts = _split(uri)
    if parts is None:
        return []
    _, userinfo, _, options = parts
    found = [userinfo.partition(":")[2]] if ":" in userinfo else []
    for key, value in _secret_options(options):
        found.append(value)
        if key.lower() == "authmechanismproperties":  # "NAME:value,NAME:value": each value alone too
            found += [item.partition(":")[2] for item in unquote(value).split(",")]
    variants = {v for s in found for v in (s, unquote(s), unquote_plus(s)) if v}
    return sorted(variants, key=len, reverse=True)


def redacted_uri(uri: str) -> str:
    """The URI with its password and secret-bearing option values replaced by ***."""
    parts = _split(uri)
    if parts is None:
        return uri
    scheme, userinfo, hosts, options = parts
    user = (
        f"{userinfo.partition(':')[0]}:{HIDDEN}@" if ":" in userinfo else f"{userinfo}@" if userinfo else ""
    )
    hidden = {key: HIDDEN for key, _ in _secret_options(options)}
    shown = "&".join(
        f"{key}={hidden[key]}" if key in hidden else pair
        for pair in re.split(r"[&;]", options)
        if pair
        for key in [pair.partition("=")[0]]
    )
    return f"{scheme}{user}{hosts}" + (f"?{shown}" if shown else "")


def redact(text: str, uri: str | None) -> str:
    """`text` with the URI shown redacted and each of its secrets hidden wherever else it appears."""
    if not uri:
        return text
    text = text.replace(uri, redacted_uri(uri))
    for secret in secrets(uri):
        text = text.replace(secret, HIDDEN)
    return text


def server_of(uri: str) -> str:
    """Scheme and hosts only: no user, password or options."""
    parts = _split(uri)
    if parts is None:
        return "mongodb://?"
    scheme, _, hosts, _ = parts
    return f"{scheme}{hosts.partition('/')[0]}"
