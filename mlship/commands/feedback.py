"""`mlship feedback ingest|report|delete|purge`: outcomes in bulk, online quality, data retention."""

from __future__ import annotations

import contextlib
import csv
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mlship.config import load_config
from mlship.errors import ConfigError, EnvironmentNotReady, RefusedError
from mlship.feedback import validation
from mlship.feedback.store import WRITE_CHUNK, FeedbackStore, Joined, Outcome, Refusal
from mlship.paths import state_dir

app = typer.Typer(
    help="Outcomes of served predictions: ingest, online quality, deletion.", no_args_is_help=True
)
console = Console()

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="feedback store file (default: the local environment's, <state>/local/feedback/feedback.db)",
    ),
]


def default_db() -> Path:
    return state_dir() / "local" / "feedback" / "feedback.db"


def open_store(db: Path | None) -> FeedbackStore:
    path = db or default_db()
    if not path.is_file():
        raise EnvironmentNotReady(
            f"no feedback store at {path}: start the servers with `mlship local up` (they create it) "
            "or pass --db"
        )
    return FeedbackStore(path, retention_days=load_config().feedback.retention_days)


def read_outcomes(path: Path) -> list[Outcome]:
    """Outcomes of a CSV (header request_id,outcome[,index]) or JSONL file; a bad row names its line."""
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; pass a CSV or JSONL file of request_id and outcome")
    items: list[tuple[int, Any]] = []
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not {"request_id", "outcome"} <= set(reader.fieldnames):
            raise ConfigError(
                f"{path}: the CSV header must name request_id and outcome (and optionally index)"
            )
        for line, row in enumerate(reader, start=2):
            items.append((line, _from_csv(row)))
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        for line, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                try:
                    items.append((line, json.loads(raw)))
                except ValueError as exc:
                    raise ConfigError(
                        f"{path}:{line}: not JSON ({exc}); one outcome object per line"
                    ) from exc
    else:
        raise ConfigError(f"{path}: expected a .csv or .jsonl file")
    outcomes = []
    for line, item in items:
        found = validation.check_item(item, None)
        if not isinstance(found, Outcome):
            p = found[0]
            raise ConfigError(f"{path}:{line}: {p.field}: {p.message}; nothing was stored")
        outcomes.append(found)
    if not outcomes:
        raise ConfigError(f"{path} holds no outcomes")
    return outcomes


def _from_csv(row: dict[str, str | None]) -> dict[str, Any]:
    item: dict[str, Any] = {k: v for k, v in row.items() if k is not None}
    for key, kind in (("outcome", float), ("index", int)):
        value = item.get(key)
        if value is not None and value != "":
            # A value that does not convert stays a string: validation names the field and its type.
            with contextlib.suppress(ValueError):
                item[key] = kind(value)
        elif key == "index":
            item.pop(key, None)
    return item


@app.command("ingest")
def ingest_cmd(
    file: Annotated[Path, typer.Argument(help="CSV (request_id,outcome[,index]) or JSONL file of outcomes")],
    db: DbOption = None,
    skip_refused: Annotated[
        bool,
        typer.Option(
            "--skip-refused",
            help="store the outcomes that join and report the others (default: all or nothing)",
        ),
    ] = False,
) -> None:
    """Join a file of outcomes to the served predictions, all or nothing unless --skip-refused."""
    store = open_store(db)
    outcomes = read_outcomes(file)
    # Checked as a whole first (a read: no write lock), then written in transactions of WRITE_CHUNK
    # outcomes, so that a million-row file never holds the write lock for seconds: the servers keep
    # recording predictions and joining /feedback meanwhile (and a server starting now does not wait).
    refused = store.check_outcomes(outcomes)
    joined: list[Joined] = []
    if not refused or skip_refused:
        bad = {r.index for r in refused}
        todo = [(i, o) for i, o in enumerate(outcomes) if i not in bad]
        for start in range(0, len(todo), WRITE_CHUNK):
            chunk = todo[start : start + WRITE_CHUNK]
            done, late = store.add_outcomes([o for _, o in chunk])
            if late:  # joined by /feedback between the check and this chunk: keep the others
                taken = {r.index for r in late}
                refused += [Refusal(chunk[r.index][0], r.request_id, r.reason) for r in late]
                done, _ = store.add_outcomes([o for k, (_, o) in enumerate(chunk) if k not in taken])
            joined += done
    reasons: dict[str, int] = {}
    for r in refused:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    summary = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    if refused and not joined:
        first = refused[0]
        raise RefusedError(
            f"{len(refused)} of {len(outcomes)} outcomes refused ({summary}; first: {first.request_id}); "
            "nothing was stored. Fix the file, or pass --skip-refused to store the others"
        )
    console.print(f"stored {len(joined)} outcomes" + (f"; refused {summary}" if refused else ""))


@app.command("report")
def report_cmd(
    db: DbOption = None,
    since_hours: Annotated[
        float | None,
        typer.Option("--since-hours", min=0.0, help="only outcomes received in the last N hours"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Online RMSE and MAE per model version and role, from outcomes joined to served predictions."""
    store = open_store(db)
    since = time.time() - since_hours * 3600 if since_hours is not None else None
    rows = store.quality(since=since)
    offline = _offline_rmse({r.model_version for r in rows})
    out = [
        {
            "model_version": r.model_version,
            "role": r.role,
            "outcomes": r.n,
            "online_rmse": round(r.rmse, 4),
            "online_mae": round(r.mae, 4),
            "offline_rmse": offline.get(r.model_version),
        }
        for r in rows
    ]
    if as_json:
        print(json.dumps({"quality": out}, indent=2))
        return
    if not out:
        console.print("no outcomes joined yet: send them to POST /feedback or `mlship feedback ingest FILE`")
        return
    table = Table("model version", "role", "outcomes", "online RMSE", "online MAE", "offline RMSE")
    for r in out:
        table.add_row(
            str(r["model_version"]),
            str(r["role"]),
            str(r["outcomes"]),
            f"{r['online_rmse']:.2f}",
            f"{r['online_mae']:.2f}",
            "-" if r["offline_rmse"] is None else f"{r['offline_rmse']:.2f}",
        )
    console.print(table)


def _offline_rmse(versions: set[str]) -> dict[str, float]:
    """The held-out RMSE stored with each registered version (versions not in this store are left out)."""
    from mlship.model import registry

    found = {}
    for record in registry.list_models(load_config().model.name):
        rmse = (record.metadata.get("metrics") or {}).get("rmse")
        if record.version in versions and rmse is not None:
            found[record.version] = float(rmse)
    return found


@app.command("delete")
def delete_cmd(
    request_ids: Annotated[
        list[str], typer.Argument(help="request ids whose prediction and outcome to delete")
    ],
    db: DbOption = None,
) -> None:
    """Delete the stored predictions and outcomes of these requests (an erasure request, for example)."""
    predictions, outcomes = open_store(db).delete(request_ids)
    if predictions == 0 and outcomes == 0:
        raise RefusedError(f"no stored data for {', '.join(request_ids[:3])}; nothing was deleted")
    console.print(f"deleted {predictions} predictions and {outcomes} outcomes")


@app.command("purge")
def purge_cmd(
    db: DbOption = None,
    older_than_days: Annotated[
        float | None,
        typer.Option("--older-than-days", min=0.0, help="default: feedback.retention_days"),
    ] = None,
) -> None:
    """Delete predictions (and their outcomes) older than the retention period."""
    store = open_store(db)
    predictions, outcomes = store.purge(
        older_than_s=None if older_than_days is None else older_than_days * 86400
    )
    console.print(f"purged {predictions} predictions and {outcomes} outcomes")
