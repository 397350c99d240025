"""Reading a `/metrics` exposition: for tests, and for load runs that compare two scrapes.

Parsed with prometheus_client's own parser, so what passes here is what Prometheus reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Scrape", "scrape"]


@dataclass(frozen=True)
class Scrape:
    """One scrape: sample name (`..._total` for counters) -> [(labels, value)]."""

    samples: dict[str, list[tuple[dict[str, str], float]]]
    families: dict[str, str]  # family name -> type

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        families: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return cls(samples, families)

    def __contains__(self, name: object) -> bool:
        return name in self.samples

    def value(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels` (0 if none)."""
        return sum(v for have, v in self.matching(name, **labels))

    def matching(self, name: str, **labels: str) -> Iterator[tuple[dict[str, str], float]]:
        for have, v in self.samples.get(name, ()):
            if all(have.get(k) == want for k, want in labels.items()):
                yield have, v

    def by(self, name: str, label: str) -> dict[str, float]:
        """`name`'s values keyed by one label (summed over the others)."""
        out: dict[str, float] = {}
        for have, v in self.samples.get(name, ()):
            out[have.get(label, "")] = out.get(have.get(label, ""), 0.0) + v
        return out


async def scrape(client: httpx.AsyncClient, url: str) -> Scrape:
    """GET `url` (a `/metrics`) and parse it; raises httpx errors and for non-200."""
    response = await client.get(url)
    response.raise_for_status()
    return Scrape.parse(response.text)
