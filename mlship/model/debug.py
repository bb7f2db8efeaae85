"""The model allows debugging (ML Test Score, Infra 5): one example's computation, step by step.

For a registered model and one input row: the validated row, the feature vector the feature code computed
(named), then the model's steps - for gradient boosting the initial value and the prediction after each
boosting stage, for a forest each tree's prediction and the running mean - and, for the first tree, the
split decisions the row went through. The last step is the prediction the server returns.

    python -m mlship.model.debug VERSION --row '{"age": 50, "sex": 1, "bmi": 27.5, ...}'
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from mlship.errors import MlshipError, RefusedError
from mlship.model import features
from mlship.model.checks.trees import trees


@dataclass(frozen=True)
class Split:
    node: int
    feature: str
    threshold: float
    value: float
    went: str  # "left" (value <= threshold) or "right"


@dataclass(frozen=True)
class Trace:
    model: str
    feature_version: str
    row: dict[str, Any]
    features: dict[str, float]
    steps: list[float]  # running prediction after each stage / tree
    step_kind: str
    first_tree_path: list[Split]
    prediction: float


def _path(tree: Any, x: np.ndarray, names: list[str]) -> list[Split]:
    structure = tree.tree_
    out = []
    for node in tree.decision_path(x).indices:
        feature = int(structure.feature[node])
        if feature < 0:
            continue
        value = float(x[0, feature])
        threshold = float(structure.threshold[node])
        went = "left" if value <= threshold else "right"
        out.append(Split(int(node), names[feature], round(threshold, 6), value, went))
    return out


def trace(estimator: Any, schema: Any, metadata: dict[str, Any], row: dict[str, Any], *, model: str) -> Trace:
    """Step-by-step computation of one prediction; invalid rows are refused as the server refuses them."""
    try:
        valid = schema.request_model().model_validate(row).model_dump()
    except ValidationError as exc:
        raise RefusedError(f"the row is not valid for {model}: {exc.errors(include_url=False)}") from None
    version = str(metadata.get("feature_version", features.LATEST))
    frame = pd.DataFrame.from_records([valid], columns=schema.names)
    x = features.transform(frame, version)
    names = features.OUTPUT_NAMES[version]
    if hasattr(estimator, "staged_predict"):
        steps = [float(p[0]) for p in estimator.staged_predict(x)]
        kind = "prediction after each boosting stage"
    elif hasattr(estimator, "estimators_"):
        per_tree = np.array([t.predict(x)[0] for t in trees(estimator)])
        steps = [float(v) for v in np.cumsum(per_tree) / np.arange(1, len(per_tree) + 1)]
        kind = "mean of the first k trees"
    else:
        steps = [float(estimator.predict(x)[0])]
        kind = "prediction"
    return Trace(
        model=model,
        feature_version=version,
        row=valid,
        features=dict(zip(names, (float(v) for v in x[0]), strict=True)),
        steps=steps,
        step_kind=kind,
        first_tree_path=_path(trees(estimator)[0], x, names) if hasattr(estimator, "estimators_") else [],
        prediction=float(estimator.predict(x)[0]),
    )


def trace_record(tag: str, row: dict[str, Any]) -> Trace:
    from mlship.model import registry

    record = registry.get(tag)
    return trace(record.load_estimator(), record.schema, record.metadata, row, model=record.tag)


def main(argv: list[str] | None = None) -> int:
    from mlship.config import load_config
    from mlship.paths import use_project_bentoml_home

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("version", help="model version or tag")
    parser.add_argument("--row", required=True, help="one input row as JSON")
    args = parser.parse_args(argv)
    try:
        row = json.loads(args.row)
    except ValueError as exc:
        parser.error(f"--row is not valid JSON ({exc}): pass one input row as a JSON object")
    try:
        use_project_bentoml_home()
        tag = args.version if ":" in args.version else f"{load_config().model.name}:{args.version}"
        print(json.dumps(asdict(trace_record(tag, row)), indent=2))
    except MlshipError as exc:
        # As the mlship CLI does: one line naming the next step, the error's own exit code.
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
