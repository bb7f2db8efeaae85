"""Benchmark: `mlship render` time and resource count for 1, 10 and 50 model deployments.

Run: `.venv/bin/python devtools/bench/pulumi_render.py`. Each size is rendered under Pulumi's mocks
(the full program: namespaces, gateway, monitoring, and N models with a canary each) and timed
(best of 3, so other work on the shared cores weighs less). Figures are printed as ratios against the
1-model baseline measured in the same run, with a least-squares line to check that growth is linear;
a plot and the raw figures go to .mlship/bench/.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mlship.k8s import render as renderer  # noqa: E402

SIZES = (1, 10, 50)
REPEATS = 3
OUT = REPO / ".mlship" / "bench"


def models(n: int) -> list[dict]:
    return [
        {
            "name": f"model-{i:03d}",
            "image": f"registry.example.com/mlship/model-{i:03d}",
            "stable": "1.0.0",
            "canary": {"version": "1.1.0", "weight": 10},
            "replicas": 2,
        }
        for i in range(n)
    ]


def measure(n: int) -> tuple[float, int, int]:
    best = float("inf")
    result = None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = renderer.run_program("prod", REPO / "pulumi", {"models": models(n)})
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result.resource_count, len(result.manifests)


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """slope, intercept, R^2 of the least-squares line."""
    slope, intercept = statistics.linear_regression(xs, ys)
    mean = statistics.fmean(ys)
    total = sum((y - mean) ** 2 for y in ys)
    residual = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, intercept, 1 - residual / total if total else 1.0


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    measure(1)  # warm-up: imports, schema caches
    rows = []
    for n in SIZES:
        seconds, resources, objects = measure(n)
        rows.append({"models": n, "seconds": seconds, "resources": resources, "objects": objects})
        print(f"{n:>3} models: {seconds:6.2f} s, {resources:4d} Pulumi resources, {objects:4d} objects")
    base = rows[0]
    print("\nratios against 1 model (same run):")
    for row in rows:
        print(
            f"{row['models']:>3} models: time x{row['seconds'] / base['seconds']:.2f}, "
            f"resources x{row['resources'] / base['resources']:.2f}"
        )
    xs = [float(r["models"]) for r in rows]
    t_slope, t_icpt, t_r2 = linear_fit(xs, [r["seconds"] for r in rows])
    r_slope, r_icpt, r_r2 = linear_fit(xs, [float(r["resources"]) for r in rows])
    print(f"\ntime      = {t_icpt:.2f} s + {t_slope * 1000:.0f} ms/model   (R^2 {t_r2:.4f})")
    print(f"resources = {r_icpt:.0f} + {r_slope:.1f}/model           (R^2 {r_r2:.4f})")
    summary = {"rows": rows, "time_r2": t_r2, "resources_r2": r_r2}
    (OUT / "pulumi_render.json").write_text(json.dumps(summary, indent=2))
    plot(rows, OUT / "pulumi_render.png")
    print(f"\nwritten: {OUT / 'pulumi_render.json'}, {OUT / 'pulumi_render.png'}")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    n = [r["models"] for r in rows]
    left.plot(n, [r["seconds"] for r in rows], "o-")
    left.set(xlabel="model deployments", ylabel="render time (s)", title="mlship render under Pulumi mocks")
    right.plot(n, [r["resources"] for r in rows], "o-", color="tab:orange")
    right.set(xlabel="model deployments", ylabel="Pulumi resources", title="resources declared")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
