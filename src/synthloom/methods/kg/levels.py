"""KAQG's difficulty control (arXiv 2505.07618; mfshiu/kaqg): Bloom's-taxonomy levels and
weighted item features, and an IRT-style difficulty measured from a model's answers.

KAQG (``src/generation/scq_generator.py``, ``src/evaluation/features.py``) scores seven item
features 1-3 each -- among them the stem's length, its technical-term density and its
cognitive level on Bloom's taxonomy (1 remembering, 2 understanding / synthesising, 3
analysing / evaluating / creating) -- weighted (cognitive level 1.5, the others 1 here), and
draws at random one combination whose weighted sum lies within 1 of the target score of the
difficulty asked for (30 -> 10, 50 -> 14, 70 -> 18 over its seven features). Our questions are
open (no options), so only the three stem features apply; the targets are KAQG's, rescaled
from its seven-feature range onto the three features' range.

IRT: a 1PL (Rasch) item difficulty from k graded answers of one model, taken as a respondent of
ability 0: ``b = ln((k - c + 0.5) / (c + 0.5))`` for c correct of k (the 0.5 keeps all-right
and all-wrong items finite) -- positive for items the model mostly fails.
"""

from __future__ import annotations

import math
import random
from itertools import product

#: The stem features KAQG scores 1-3 that an open question has, with KAQG's weights.
FEATURES = ("stem_length", "stem_technical_term_density", "stem_cognitive_level")
WEIGHTS = (1.0, 1.0, 1.5)
#: Bloom's taxonomy as KAQG groups it into its three cognitive levels.
BLOOM = {1: "remember", 2: "understand", 3: "analyze"}
#: What each feature level asks of the question writer (KAQG's level descriptions, reworded).
DESCRIPTIONS = {
    "stem_length": ("a short question of 5 to 15 words",
                    "a question of 16 to 30 words",
                    "a long question of more than 30 words"),
    "stem_technical_term_density": ("at most 2 technical terms",
                                    "2 to 4 technical terms",
                                    "many technical terms (more than 3)"),
    "stem_cognitive_level": (
        "Bloom's remembering level: it tests recall of a stated fact",
        "Bloom's understanding level: it tests comprehension and putting facts together",
        "Bloom's higher levels (analysing, evaluating): it needs reasoning over the facts"),
}
#: KAQG's target weighted sums (difficulty 30/50/70) over its seven features, whose weights sum
#: to 7.7 (so sums run 7.7..23.1).
_KAQG_TARGETS = {"easy": 10.0, "medium": 14.0, "hard": 18.0}
_KAQG_LOW, _KAQG_HIGH = 7.7, 23.1


def target_score(level: str) -> float:
    """KAQG's target for ``level`` rescaled onto the three stem features' weighted range."""
    low, high = sum(WEIGHTS), 3 * sum(WEIGHTS)
    share = (_KAQG_TARGETS[level] - _KAQG_LOW) / (_KAQG_HIGH - _KAQG_LOW)
    return low + share * (high - low)


def feature_levels(level: str, rng: random.Random) -> dict[str, int]:
    """One combination of feature levels (1-3) whose weighted sum is within 1 of the target
    for ``level``, drawn at random (KAQG's ``_get_weighted_combination``)."""
    target = target_score(level)
    combos = list(product((1, 2, 3), repeat=len(FEATURES)))
    rng.shuffle(combos)
    for combo in combos:
        if abs(sum(x * w for x, w in zip(combo, WEIGHTS, strict=True)) - target) <= 1.0:
            return dict(zip(FEATURES, combo, strict=True))
    raise ValueError(f"no feature combination within 1 of {target:.2f}")  # pragma: no cover


def irt_difficulty(correct: int, k: int) -> float:
    """1PL item difficulty for ``correct`` right answers out of ``k`` (ability 0)."""
    return round(math.log((k - correct + 0.5) / (correct + 0.5)), 3)


#: IRT difficulty bands: b below -1 (a model mostly right) easy, above 1 hard.
def irt_level(b: float) -> str:
    return "easy" if b < -1.0 else "hard" if b > 1.0 else "medium"
