"""HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 8760 for names).

A trunk or registrar answers 401 (WWW-Authenticate) or 407 (Proxy-Authenticate); the
request is sent again with an Authorization or Proxy-Authorization header computed here.
MD5 with and without ``qop=auth`` is supported: what SIP trunks and kamailio's ``auth``
module ask for. ``auth-int`` and SHA-256 are not (a challenge offering only those is
refused with `AuthError`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

__all__ = ["AuthError", "Challenge", "Credentials", "authorization"]


class AuthError(Exception):
    """A challenge we cannot answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 401
        self.message = message
        self.more_info = "RFC 3261 §22.4"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password for a trunk or registrar; ``realm`` None answers any realm."""

    username: str
    password: str = field(repr=False)
    realm: str | None = None


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    stale: bool = False

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() != "digest":
            raise AuthError(f"not a digest challenge: {scheme}")
        params = {
            key.lower(): quoted if quoted else bare
            for key, quoted, bare in re.findall(
                r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', rest
            )
        }
        if "realm" not in params or "nonce" not in params:
            raise AuthError("challenge without realm or nonce")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            params["realm"],
            params["nonce"],
            params.get("opaque"),
            params.get("algorithm", "MD5"),
            qop,
            params.get("stale", "").lower() == "true",
        )


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def authorization(
    challenge: Challenge,
    credentials: Credentials,
    method: str,
    uri: str,
    *,
    nonce_count: int = 1,
    cnonce: str | None = None,
) -> str:
    """The value of the Authorization (or Proxy-Authorization) header answering ``challenge``."""
    if challenge.algorithm.upper() != "MD5":
        raise AuthError(f"digest algorithm {challenge.algorithm} is not supported")
    if challenge.qop and "auth" not in challenge.qop:
        raise AuthError(f"qop {','.join(challenge.qop)} is not supported")
    if credentials.realm is not None and credentials.realm != challenge.realm:
        raise AuthError(f"no credentials for realm {challenge.realm!r}")
    ha1 = _md5(f"{credentials.username}:{challenge.realm}:{credentials.password}")
    ha2 = _md5(f"{method}:{uri}")
    fields = [
        f'username="{credentials.username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
    ]
    if challenge.qop:
        cnonce = cnonce or secrets.token_hex(8)
        nc = f"{nonce_count:08x}"
        response = _md5(f"{ha1}:{challenge.nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{_md5(f"{ha1}:{challenge.nonce}:{ha2}")}"')
    fields.append("algorithm=MD5")
    if challenge.opaque is not None:
        fields.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(fields)
