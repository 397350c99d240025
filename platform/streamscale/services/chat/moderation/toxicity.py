"""Toxicity scoring: the model interface, the thresholds, and a fast linear scorer.

The shipped model (alt-profanity-check, see :mod:`.shipped_model`) is a TF-IDF unigram
vectoriser feeding five calibrated linear SVMs. Through scikit-learn one call costs
~3.4 ms whatever the batch size (input validation dominates), far too slow per chat
message. :class:`LinearTfidfScorer` evaluates the same arithmetic in plain Python from
the extracted weights (~10-20 µs a message) and is checked against scikit-learn's own
output when it is built.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "LinearTfidfScorer",
    "ToxicityModel",
    "ToxicityThresholds",
]


@runtime_checkable
class ToxicityModel(Protocol):
    """Scores texts in [0, 1]; 1 is toxic. CPU-bound and thread-safe once loaded.

    Pass many texts at once where you can: a batch is never slower than its messages
    one by one, and for some models (scikit-learn's) far faster.
    """

    def scores(self, texts: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class ToxicityThresholds:
    """Score >= ``block`` blocks; ``hold`` <= score < ``block`` holds for review."""

    # The shipped model mostly scores profanity ("this game sucks": 0.996), so by default
    # it only holds messages for a moderator; channels may lower `block` to auto-block.
    # `hold` comes from the false-positive rate on ordinary chat (tests/services/chat/
    # moderation/ordinary_chat.txt, README "Chat"): at 0.9 the model holds 5 of 568
    # ordinary lines (gaming slang: "quad kill", "that was sick"), at 0.95 one.
    hold: float = 0.95
    block: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.hold <= self.block <= 1.0:
            raise ValueError("thresholds need 0 <= hold <= block <= 1")

    def verdict(self, score: float) -> str | None:
        """``"block"``, ``"hold"`` or None (pass). NaN fails safe: held for review."""
        if score >= self.block:
            return "block"
        if score >= self.hold or math.isnan(score):
            return "hold"
        return None


@dataclass(frozen=True, slots=True)
class _Fold:
    """One calibrated linear SVM: p = 1 / (1 + exp(a * (w.x + c) + b))."""

    intercept: float
    a: float
    b: float


class LinearTfidfScorer:
    """Exact pure-Python evaluation of TF-IDF (l2, raw tf) -> mean of sigmoid(SVM) folds.

    ``weights`` maps a vocabulary term to ``(idf, w_fold0, w_fold1, ...)``. Terms outside
    the vocabulary (stop words included) contribute nothing, as in scikit-learn.
    """

    def __init__(
        self,
        weights: Mapping[str, tuple[float, ...]],
        folds: Sequence[tuple[float, float, float]],
        *,
        token_pattern: str = r"(?u)\b\w\w+\b",
        lowercase: bool = True,
    ) -> None:
        self._weights = dict(weights)
        self._folds = tuple(_Fold(*f) for f in folds)
        self._token = re.compile(token_pattern)
        self._lowercase = lowercase

    def score(self, text: str) -> float:
        if self._lowercase:
            text = text.lower()
        counts = Counter(self._token.findall(text))
        rows: list[tuple[float, tuple[float, ...]]] = []
        norm_sq = 0.0
        for term, count in counts.items():
            row = self._weights.get(term)
            if row is not None:
                value = count * row[0]
                norm_sq += value * value
                rows.append((value, row))
        norm = math.sqrt(norm_sq) or 1.0
        total = 0.0
        for k, fold in enumerate(self._folds, start=1):
            decision = fold.intercept
            for value, row in rows:
                decision += value / norm * row[k]
            z = fold.a * decision + fold.b
            total += 1.0 / (1.0 + math.exp(z)) if z < 700 else 0.0
        return total / len(self._folds)

    def scores(self, texts: Sequence[str]) -> list[float]:
        return [self.score(text) for text in texts]
