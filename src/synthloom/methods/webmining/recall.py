"""``webmining_recall``: MAmmoTH2's recall step (WebInstruct, arXiv 2405.03548) -- a fast
classifier scores each document or chunk for naturally occurring question-answer or
instructional content, and only those at or above ``threshold`` go on to the (slow) LLM.

The paper trained fastText on 100K seed positives and Common Crawl negatives. Here the
``logreg`` classifier is a logistic regression over hashed word 1..``ngram_max``-grams (with
``?`` and ``:`` kept as tokens: "Q:", "A:" and question marks are strong cues), trained in a
fraction of a second from a small labelled JSONL file (``labels``: ``text`` + ``label`` 1/0)
when the run starts -- a bundled file by default, your own for your domain. ``keywords``
needs no training: a cue density (question sentences, Q/A markers, steps, solutions per 100
words) squashed into 0..1. Kept records get ``recall_score``; a drop names its score.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import stable_hash
from synthloom.core.jsonio import BadJsonLine, read_jsonl
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, StepConfig

DEFAULT_LABELS = "pkg:data/docs2data/webmining/recall_labels.jsonl"
#: Words, plus "?" and ":" as tokens of their own.
TOKEN_PATTERN = r"(?u)\b\w+\b|[?:]"
_CUES = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in (
    r"\?(\s|$)",                                     # question sentences
    r"^\s*(q|a|question|answer|problem|solution|exercise|example)\s*[\d.:)]",
    r"\b(how (do|can|to|does|should)|why (does|is|do|are)|what (is|are|does|should))\b",
    r"\bstep\s*\d+\b",
    r"\b(solution|answer|troubleshooting|faq|frequently asked)\b",
)]


class RecallConfig(StepConfig):
    #: ``logreg``: a logistic regression over hashed word n-grams, fitted on ``labels`` at start;
    #: ``keywords``: a cue density squashed into 0..1, no training.
    classifier: Literal["logreg", "keywords"] = "logreg"
    #: Labelled examples for ``logreg``: JSONL lines with ``text`` and ``label`` (1/0).
    labels: str = DEFAULT_LABELS
    #: Records scoring below this are dropped (the score is in the reason).
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Column with the text scored.
    text_column: str = "text"
    #: Longest word n-gram of the ``logreg`` features.
    ngram_max: int = Field(default=2, ge=1, le=4)
    #: Hashed feature dimensions of the ``logreg`` vectoriser.
    n_features: int = Field(default=2**16, ge=2**10)
    #: Inverse regularisation strength of the logistic regression.
    C: float = Field(default=20.0, gt=0.0)


class RecallModel:
    """The fitted scorer: ``score(text) -> 0..1`` (probability of Q-A content)."""

    def __init__(self, cfg: RecallConfig, examples: list[tuple[str, int]] | None = None) -> None:
        self.cfg = cfg
        self._clf: Any = None
        self._vec: Any = None
        if cfg.classifier == "logreg":
            self._fit(examples or [])

    def _fit(self, examples: list[tuple[str, int]]) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer
        from sklearn.linear_model import LogisticRegression

        labels = {label for _, label in examples}
        if labels != {0, 1}:
            raise RecipeError("webmining_recall: the labelled file needs positive (1) and "
                              f"negative (0) examples; found labels {sorted(labels)}")
        self._vec = HashingVectorizer(ngram_range=(1, self.cfg.ngram_max),
                                      n_features=self.cfg.n_features, alternate_sign=False,
                                      token_pattern=TOKEN_PATTERN, norm="l2")
        x = self._vec.transform([t for t, _ in examples])
        # liblinear: exact and fast on a few dozen sparse examples (lbfgs spins up BLAS threads)
        self._clf = LogisticRegression(C=self.cfg.C, class_weight="balanced", max_iter=1000,
                                       solver="liblinear")
        self._clf.fit(x, [label for _, label in examples])

    def score(self, text: str) -> float:
        if self._clf is not None:
            return float(self._clf.predict_proba(self._vec.transform([text]))[0][1])
        return keyword_score(text)


def keyword_score(text: str) -> float:
    """Cue hits per 100 words, squashed: 2 hits per 100 words scores about 0.63."""
    n_words = max(len(text.split()), 1)
    hits = sum(len(cue.findall(text)) for cue in _CUES)
    return 1.0 - math.exp(-0.5 * hits * 100 / max(n_words, 50))


def read_labels(path: Path) -> list[tuple[str, int]]:
    examples = []
    try:
        rows = list(read_jsonl(path, strict=True, objects=True))
    except BadJsonLine as exc:
        raise RecipeError(f"labelled examples: {exc}") from None
    for n, row in rows:
        label = row.get("label")
        if isinstance(label, str):
            label = {"positive": 1, "pos": 1, "1": 1, "true": 1, "negative": 0, "neg": 0,
                     "0": 0, "false": 0}.get(label.strip().lower())
        if label not in (0, 1, True, False) or not isinstance(row.get("text"), str):
            raise RecipeError(f"{path}:{n}: need a 'text' string and a 'label' of 1/0")
        examples.append((row["text"], int(label)))
    return examples


@register_step
class WebminingRecall(MapStep):
    type_name = "webmining_recall"
    Config = RecallConfig
    config: RecallConfig
    _model: RecallModel | None = None
    _labels_hash: str | None = None

    def setup(self, ctx: RunContext) -> None:
        examples = None
        if self.config.classifier == "logreg":
            path = resolve_data_path(self.config.labels, ctx.recipe_dir)
            if not path.is_file():
                raise RecipeError(f"step {self.name}: labelled file not found: {path}")
            examples = read_labels(path)
            self._labels_hash = stable_hash("labels", examples)
        self._model = RecallModel(self.config, examples)

    def extra_fingerprint(self, ctx: RunContext) -> Any:
        # The labelled examples decide the scores: a new file re-scores everything.
        return {"labels": self._labels_hash}

    def reads(self) -> list[str]:
        return [self.config.text_column]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        text = record.get(cfg.text_column)
        if not isinstance(text, str) or not text.strip():
            return ItemResult.drop(f"no text in column {cfg.text_column!r} to score")
        if self._model is None:  # used without a run (unit tests): set up on first use
            self.setup(ctx.run)
        assert self._model is not None
        score = round(self._model.score(text), 4)
        if score < cfg.threshold:
            return ItemResult.drop(
                f"recall score {score:.3f} < threshold {cfg.threshold:.2f} ({cfg.classifier} "
                "classifier): no naturally occurring Q-A content found")
        return Output(columns={"recall_score": score},
                      meta={"recall_classifier": cfg.classifier})
