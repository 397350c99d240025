"""The shipped toxicity model (alt-profanity-check): the one place that imports it.

The package loads its model (~1 MB of joblib pickles, ~1 s with scikit-learn) when it
is imported, so :meth:`ProfanityCheckModel.load` does that lazily; callers on trio run
it once in a thread (``await trio.to_thread.run_sync(model.load)``) before the first
message. The wheel carries its model files, so this works offline.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

from .toxicity import LinearTfidfScorer

__all__ = ["ProfanityCheckModel"]

logger = logging.getLogger(__name__)

_PROBES = (
    "",
    "what a lovely stream, thanks for the tips",
    "you are a fucking idiot",
    "Go back to where you came from, loser!!",
    "gg wp, that clutch was insane",
    "shit shit shit damn",
)


def _extract(vectorizer: Any, model: Any) -> LinearTfidfScorer | None:
    """Weights for the fast scorer, if the pickles have the structure it mirrors."""
    params = vectorizer.get_params()
    expected = {
        "analyzer": "word",
        "ngram_range": (1, 1),
        "norm": "l2",
        "sublinear_tf": False,
        "use_idf": True,
        "preprocessor": None,
        "tokenizer": None,
        "strip_accents": None,
    }
    if any(params.get(k) != v for k, v in expected.items()):
        return None
    if getattr(model, "method", None) != "sigmoid" or list(model.classes_) != [0, 1]:
        return None
    folds: list[tuple[float, float, float]] = []
    coefs: list[Any] = []
    for calibrated in model.calibrated_classifiers_:
        estimator, calibrators = calibrated.estimator, calibrated.calibrators
        if len(calibrators) != 1 or estimator.coef_.shape[0] != 1:
            return None
        folds.append(
            (float(estimator.intercept_[0]), float(calibrators[0].a_), float(calibrators[0].b_))
        )
        coefs.append(estimator.coef_[0])
    idf = vectorizer.idf_
    weights = {
        term: (float(idf[i]), *(float(c[i]) for c in coefs))
        for term, i in vectorizer.vocabulary_.items()
    }
    return LinearTfidfScorer(
        weights, folds, token_pattern=params["token_pattern"], lowercase=params["lowercase"]
    )


class ProfanityCheckModel:
    """:class:`.toxicity.ToxicityModel` over alt-profanity-check, loaded on first use.

    Uses the exact pure-Python scorer when the model's structure allows it and its
    output agrees with scikit-learn's on probe texts; otherwise scikit-learn itself.
    """

    def __init__(self, *, fast: bool = True) -> None:
        self._fast = fast
        self._lock = threading.Lock()
        self._scorer: LinearTfidfScorer | None = None
        self._predict: Any = None

    @property
    def loaded(self) -> bool:
        return self._predict is not None

    @property
    def uses_fast_path(self) -> bool:
        return self._scorer is not None

    def load(self) -> None:
        """Import the package and its pickles (blocking, ~1 s): call it in a thread."""
        with self._lock:
            if self._predict is not None:
                return
            module: Any = importlib.import_module("profanity_check.profanity_check")
            scorer = _extract(module.vectorizer, module.model) if self._fast else None
            if scorer is not None:
                expected = [float(p) for p in module.predict_prob(list(_PROBES))]
                got = scorer.scores(_PROBES)
                if any(abs(e - g) > 1e-6 for e, g in zip(expected, got, strict=True)):
                    logger.warning("fast toxicity scorer disagrees with scikit-learn; not used")
                    scorer = None
            self._scorer = scorer
            self._predict = module.predict_prob

    def scores(self, texts: Sequence[str]) -> list[float]:
        if self._predict is None:
            self.load()
        if not texts:
            return []
        if self._scorer is not None:
            return self._scorer.scores(texts)
        return [float(p) for p in self._predict(list(texts))]
