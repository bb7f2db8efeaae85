"""The rollout's timeline (JSON lines appended at each decision) after a crash mid-append."""

from __future__ import annotations

from mlship.canary import timeline


def test_a_line_torn_by_a_crash_at_the_end_is_skipped_and_the_rest_kept(tmp_path):
    path = tmp_path / "timeline.jsonl"
    timeline.append(path, {"t": 1, "phase": "progressing"})
    timeline.append(path, {"t": 2, "phase": "progressing"})
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"t": 3, "pha')  # kill -9 in the middle of an append
    assert timeline.read(path) == [{"t": 1, "phase": "progressing"}, {"t": 2, "phase": "progressing"}]
    # the resumed runner's entries start on a line of their own and are kept
    timeline.append(path, {"t": 4, "phase": "progressing"})
    assert [entry["t"] for entry in timeline.read(path)] == [1, 2, 4]
    assert path.read_text(encoding="utf-8").count("\n\n") == 0  # whole lines are not padded
