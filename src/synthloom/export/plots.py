"""Charts for the run report as self-contained HTML snippets.

matplotlib (extra ``synthloom[report]``) renders PNGs embedded as base64 ``<img>``; without it
the same charts are drawn as inline SVG bars, so a report is never missing its figures.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

COLORS = {"out": "#4c9a6a", "failed": "#c0504d", "dropped": "#e0a030", "bar": "#4a78b5"}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)  # no display; safe in threads and on servers
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, plt: Any, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def bars(labels: Sequence[str], series: dict[str, Sequence[float]], title: str,
         stacked: bool = True) -> str:
    """Horizontal bars, one row per label; several series are stacked."""
    if not labels:
        return ""
    plt = _pyplot()
    if plt is None:
        return _svg_bars(labels, series, title)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.2))
    left = [0.0] * len(labels)
    rows = list(range(len(labels)))[::-1]
    for name, values in series.items():
        ax.barh(rows, values, left=left if stacked else None, label=name,
                color=COLORS.get(name, COLORS["bar"]))
        if stacked:
            left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(rows, [_short(label, 60) for label in labels], fontsize=8)
    ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                  ncol=len(series), frameon=False)
    return _png(fig, plt, title)


def histograms(data: dict[str, Sequence[float]], title: str, xlabel: str,
               bins: int = 20) -> str:
    """One histogram per named series, side by side."""
    data = {k: v for k, v in list(data.items())[:6] if v}  # more would be unreadable
    if not data:
        return ""
    plt = _pyplot()
    if plt is None:
        return "".join(_svg_histogram(values, f"{title}: {name}", bins)
                       for name, values in data.items())
    fig, axes = plt.subplots(1, len(data), figsize=(3.3 * len(data) + 0.8, 2.8), squeeze=False)
    for ax, (name, values) in zip(axes[0], data.items(), strict=True):
        ax.hist(values, bins=min(bins, max(1, len(set(values)))), color=COLORS["bar"])
        ax.set_title(_short(name, 40), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig, plt, title)


def timeline(times: Sequence[float], amounts: Sequence[float], title: str, ylabel: str,
             bins: int = 30) -> str:
    """``amounts`` summed per time bucket, as a rate per second over the run's wall clock."""
    if len(times) < 2:
        return ""
    start, end = min(times), max(times)
    width = (end - start) / bins or 1.0
    sums = [0.0] * bins
    for t, a in zip(times, amounts, strict=True):
        sums[min(bins - 1, int((t - start) / width))] += a
    rates = [v / width for v in sums]
    plt = _pyplot()
    if plt is None:
        return _svg_bars([f"+{i * width:.0f}s" for i in range(bins)], {"rate": rates}, title)
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    ax.step([i * width for i in range(bins)], rates, where="post", color=COLORS["bar"])
    ax.set_xlabel("seconds since the first call", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=10)
    return _png(fig, plt, title)


# --- SVG fallback -----------------------------------------------------------------------------


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _svg_bars(labels: Sequence[str], series: dict[str, Sequence[float]], title: str) -> str:
    width, label_w, row_h = 720, 260, 18
    totals = [sum(v[i] for v in series.values()) for i in range(len(labels))]
    scale = (width - label_w - 60) / max(max(totals, default=0), 1e-9)
    height = row_h * len(labels) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{height}"><title>{html.escape(title)}</title>',
             f'<text x="0" y="14" font-size="12">{html.escape(title)}</text>']
    for i, label in enumerate(labels):
        y = 24 + i * row_h
        parts.append(f'<text x="0" y="{y + 12}" font-size="10">'
                     f"{html.escape(_short(label, 45))}</text>")
        x = float(label_w)
        for name, values in series.items():
            w = values[i] * scale
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 4}" '
                         f'fill="{COLORS.get(name, COLORS["bar"])}"><title>{html.escape(name)}: '
                         f"{values[i]:g}</title></rect>")
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 12}" font-size="10">{totals[i]:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_histogram(values: Sequence[float], title: str, bins: int) -> str:
    low, high = min(values), max(values)
    step = (high - low) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / step))] += 1
    labels = [f"{low + i * step:.3g}–{low + (i + 1) * step:.3g}" for i in range(bins)]
    keep = [i for i, c in enumerate(counts) if c] or [0]
    return _svg_bars([labels[i] for i in keep], {"count": [counts[i] for i in keep]}, title)
