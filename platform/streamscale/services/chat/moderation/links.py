"""Link detection and the per-channel link policy.

Finds URLs with a scheme, ``www.`` names, and bare domains ("example.com"), including
the usual obfuscations ("example[.]com", "example(dot)com", "example dot com"). A bare
name only counts when its last label is a known top-level domain, so "e.g.", "file.txt"
and "node.js" in ordinary chat are not links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from .filters import InvalidRule

__all__ = ["LinkPolicy", "LinkRules", "find_domains"]


class LinkPolicy(StrEnum):
    ALLOW_ALL = "allow_all"
    ALLOW_LISTED = "allow_listed"
    BLOCK_ALL = "block_all"
    HOLD = "hold"
    """Hold messages with links (outside the allowed domains) for a moderator to review."""


_TLD_NAMES = """
com net org info biz edu gov mil int io co me tv gg app dev xyz live link site online
club shop store top vip win bet fun icu cc ws ly to sh fm am ai so pw tk ml ga cf gq
ru su uk us de fr es it nl be ch at pl se no dk fi cz sk hu ro bg gr pt ie ua by kz
cn jp kr in id vn th ph my sg hk tw au nz ca mx br ar cl pe ve za ng ke eg tr ir il sa
ae pk bd lk np eu asia news blog page click download stream games zip mov tech space
website network cloud art ink lol wtf porn sex xxx onion
"""
_TLDS = frozenset(_TLD_NAMES.split())

# Bounded repeats only: a long run of spaces must not make this quadratic.
_DEOBFUSCATE = re.compile(r" ?[\[({<] ?(?:\.|dot) ?[\])}>] ?| dot ")
_RUN = re.compile(r"[\w.:/-]+")  # a possible URL; one linear scan, no backtracking
# Dots drawn otherwise: folding maps look-alikes to their UTS #39 prototypes, and those of
# "•", "∙", "‧" (middle dot) and "。" (ring below) are dots to a reader of a link.
_DOTS = str.maketrans(dict.fromkeys("\u00b7\u02f3\u2022\u2219\u2027\u3002\uff61", "."))


def _host(run: str) -> tuple[str, bool] | None:
    """The host name in one run of URL-ish characters, and whether it was explicit."""
    scheme, sep, rest = run.partition("://")
    explicit = bool(sep)
    host = (rest if sep else scheme).split("/", 1)[0].split(":", 1)[0].strip(".-")
    labels = host.split(".")
    if len(labels) < 2 or not all(labels):
        return None
    explicit = explicit or labels[0] == "www"
    tld = labels[-1]
    if not ((tld.isalpha() and 2 <= len(tld) <= 24) or tld.startswith("xn--")):
        return None
    if not explicit and tld not in _TLDS:
        return None
    return (".".join(labels[1:]) if labels[0] == "www" else host), explicit


def find_domains(folded: str) -> list[str]:
    """Host names of the links in already-folded text (see :func:`.normalise.fold`)."""
    folded = folded.translate(_DOTS)
    if "." not in folded and "dot" not in folded:
        return []
    text = _DEOBFUSCATE.sub(".", folded)
    found: list[str] = []
    for match in _RUN.finditer(text):
        run = match.group()
        if "." in run:
            host = _host(run)
            if host is not None:
                found.append(host[0])
    return found


_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$")


@dataclass(slots=True)
class LinkRules:
    """One channel's link policy; persist ``policy`` and ``allowed_domains``."""

    policy: LinkPolicy = LinkPolicy.ALLOW_ALL
    allowed_domains: set[str] = field(default_factory=set)

    def allow_domain(self, domain: str) -> str:
        name = domain.strip().lower().removeprefix("www.").rstrip(".")
        if not _DOMAIN.match(name):
            raise InvalidRule(f"not a domain name: {domain!r}")
        self.allowed_domains.add(name)
        return name

    def is_allowed(self, host: str) -> bool:
        """A listed domain allows its subdomains too ("clips.twitch.tv" under "twitch.tv")."""
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)

    def verdict(self, folded: str) -> tuple[str, str] | None:
        """``("block" | "hold", domain)`` for the first offending link, or None."""
        if self.policy is LinkPolicy.ALLOW_ALL:
            return None
        for host in find_domains(folded):
            if self.policy is LinkPolicy.BLOCK_ALL:
                return ("block", host)
            if not self.is_allowed(host):
                return ("hold" if self.policy is LinkPolicy.HOLD else "block", host)
        return None
