"""The Toolformer filter (the paper's section 2, "Filtering API Calls").

For a call c at position i of text x with result r, the weighted cross-entropy of the tokens
that follow the insertion point is

    L_i(z) = - sum_j w_(j-i) * log p(x_j | x_1..x_(i-1), z, x_i..x_(j-1))

with w_t = max(0, 1 - 0.2 t), normalized to sum to 1 (the paper's section 4.1; lucidrains's
``default_weight_fn`` leaves them unnormalized). L+ = L_i(e(c, r)), L- = min(L_i(ε),
L_i(e(c, ε))): the call is kept when L- - L+ >= τ_f (``filter_tokens_with_api_response``).

The logprobs come from the step's model as echoed prompt logprobs: one request per prefix
(``LLMRequest(prompt=..., logprobs=0, echo=True, max_tokens=1)``), the continuation's tokens
found by their character offsets in the echoed tokens.
"""

from __future__ import annotations

from typing import Any


def weights(n: int, decay: float = 0.2) -> list[float]:
    """The paper's w_t for t = 0..n-1, normalized over the tokens there are (a short
    continuation spreads the whole weight over fewer tokens)."""
    raw = [max(0.0, 1.0 - decay * t) for t in range(n)]
    total = sum(raw)
    return [w / total for w in raw] if total else raw


def window(decay: float) -> int:
    """How many tokens get a non-zero weight (5 for the paper's 0.2)."""
    return max(1, int(round(1.0 / decay))) if decay > 0 else 1_000_000


def continuation_logprobs(tokens: list[dict[str, Any]], prompt: str, start: int,
                          limit: int) -> list[float]:
    """Logprobs of the first ``limit`` prompt tokens that end after character ``start`` (the
    continuation), from the echoed tokens of ``prompt`` (the generated token(s) after it are
    left out). A tokenizer that prefixes a space or BOS text is aligned by where the prompt
    starts in the joined tokens."""
    joined = "".join(str(t.get("token") or "") for t in tokens)
    shift = 0 if joined.startswith(prompt) else max(0, joined.find(prompt[:32]))
    out: list[float] = []
    end = -shift
    for token in tokens:
        begin = end
        end += len(str(token.get("token") or ""))
        if begin >= len(prompt) or len(out) >= limit:
            break
        value = token.get("logprob")
        if end > start and value is not None:
            out.append(float(value))
    return out


def weighted_loss(logprobs: list[float], decay: float = 0.2) -> float:
    """- sum_t w_t log p_t over the continuation's logprobs (first token t = 0)."""
    if not logprobs:
        raise ValueError("no continuation tokens to score")
    return -sum(w * lp for w, lp in zip(weights(len(logprobs), decay), logprobs, strict=True))


def decide(loss_empty: float, loss_no_result: float, loss_with_result: float,
           tau: float) -> dict[str, Any]:
    """The paper's keep rule with every number it used (kept in provenance)."""
    loss_minus = min(loss_empty, loss_no_result)
    gain = loss_minus - loss_with_result
    return {"L_empty": round(loss_empty, 4), "L_call_no_result": round(loss_no_result, 4),
            "L_plus": round(loss_with_result, 4), "L_minus": round(loss_minus, 4),
            "gain": round(gain, 4), "tau_f": tau, "kept": gain >= tau}


def api_probability(top: dict[str, float] | None) -> float:
    """p(<API> | prefix): the probability mass of the alternatives that open a call ("[",
    " [", "[["...), from a token's top logprobs; 0 when none is among them."""
    import math

    return sum(math.exp(lp) for tok, lp in (top or {}).items()
               if lp is not None and str(tok).strip().startswith("["))
