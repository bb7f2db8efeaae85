"""Report after a rollout: weight, error rate, latency and prediction difference over time (PNG, HTML)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mlship.canary import timeline
from mlship.canary.state import RolloutState

COLORS = {"stable": "#1f77b4", "canary": "#d62728"}
OUTCOME_COLORS = {
    "advanced": "#2ca02c",
    "promoted": "#2ca02c",
    "rolled_back": "#d62728",
    "expired": "#7f7f7f",
}
STYLE = "body{font-family:sans-serif;margin:2em} td,th{border-bottom:1px solid #ddd;padding:4px}"


def _series(points: list[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for p in points:
        value = p.get(key)
        if value is not None:
            xs.append(p["t"])
            ys.append(float(value))
    return xs, ys


def render_png(state: RolloutState, points: list[dict]) -> bytes:
    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    ax_w, ax_e, ax_l, ax_p = axes
    xs, ys = _series(points, "weight")
    ax_w.step(xs, ys, where="post", color=COLORS["canary"])
    ax_w.set_ylabel("canary weight %")
    ax_w.set_ylim(-5, 105)
    for role in ("stable", "canary"):
        ex, ey = _series(points, f"{role}_error_rate")
        ax_e.plot(ex, [100 * v for v in ey], label=role, color=COLORS[role])
        lx, ly = _series(points, f"{role}_latency_s")
        ax_l.plot(lx, [1000 * v for v in ly], label=role, color=COLORS[role])
    ax_e.set_ylabel("error rate %")
    ax_l.set_ylabel("latency quantile ms")
    px, py = _series(points, "prediction_psi")
    ax_p.plot(px, py, color="#9467bd", label="PSI canary vs stable")
    ax_p.set_ylabel("prediction PSI")
    ax_p.set_xlabel("seconds since the rollout began")
    for ax in (ax_e, ax_l, ax_p):
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    for step in state.history:
        if step.ended_at is None:
            continue
        t = step.ended_at - state.started_at
        color = OUTCOME_COLORS.get(step.outcome, "grey")
        for ax in axes:
            ax.axvline(t, color=color, linestyle="--", alpha=0.6)
        ax_w.annotate(step.outcome, (t, 102), fontsize=7, color=color, rotation=90, va="top")
    fig.suptitle(f"canary {state.canary_version} vs stable {state.stable_version}: {state.phase}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def write_report(state: RolloutState) -> tuple[Path, Path]:
    """Write report.png and report.html for the rollout; returns their paths."""
    folder = timeline.rollout_dir(state.rollout_id)
    folder.mkdir(parents=True, exist_ok=True)
    points = timeline.read(folder / "timeline.jsonl")
    png = render_png(state, points)
    png_path = folder / "report.png"
    png_path.write_bytes(png)
    decisions = [d for d in timeline.read(timeline.decision_log()) if d.get("rollout_id") == state.rollout_id]
    rows = []
    for d in decisions:
        what = d.get("event") or d.get("decision")
        if what == "wait":
            continue
        t = d.get("at", 0) - state.started_at
        rows.append(
            f"<tr><td>{t:.1f}</td><td>{html.escape(str(what))}</td>"
            f"<td>{html.escape(str(d.get('reason', '')))}</td></tr>"
        )
    title = f"mlship rollout {html.escape(state.rollout_id)}"
    image = base64.b64encode(png).decode()
    page = "\n".join(
        [
            f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>',
            f"<style>{STYLE}</style></head><body><h1>{title}: {state.phase}</h1>",
            f"<p>canary {state.canary_version} vs stable {state.stable_version}; steps {state.steps}; "
            f"{html.escape(state.reason)}</p>",
            f'<img alt="rollout timeline" src="data:image/png;base64,{image}">',
            "<h2>Decisions</h2><table><tr><th>t (s)</th><th>decision</th><th>reason</th></tr>",
            *rows,
            "</table></body></html>",
        ]
    )
    html_path = folder / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return png_path, html_path
