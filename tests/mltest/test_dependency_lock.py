"""Dependency changes result in notification (ML Test Score, Monitor 1): the suite fails on any change of
requirements.lock that was not reviewed, naming each package that moved."""

from __future__ import annotations

import json

import pytest

from devtools import lockfile
from mlship.errors import ConfigError


def test_requirements_lock_matches_the_reviewed_record():
    change = lockfile.compare()
    assert not change.unreviewed, (
        "requirements.lock changed without review:\n"
        f"{change.describe()}\n"
        "review the changes, then record them: python -m devtools.lockfile --accept"
    )


def test_a_version_bump_an_addition_and_a_removal_are_each_named(tmp_path):
    lock = tmp_path / "requirements.lock"
    reviewed = tmp_path / "reviewed.json"
    lock.write_text("numpy==2.4.6\npandas==3.1.1\nscipy==1.17.1\n", encoding="utf-8")
    lockfile.accept(lock, reviewed)
    assert not lockfile.compare(lock, reviewed).unreviewed
    lock.write_text("numpy==2.5.0\nscipy==1.17.1\nPyYAML==6.0.3\n", encoding="utf-8")
    change = lockfile.compare(lock, reviewed)
    assert change.changed == {"numpy": ("2.4.6", "2.5.0")}
    assert change.added == {"pyyaml": "6.0.3"} and change.removed == {"pandas": "3.1.1"}
    assert "~ numpy 2.4.6 -> 2.5.0" in change.describe()
    assert lockfile.main(["--lock", str(lock), "--reviewed", str(reviewed)]) == 1
    assert lockfile.main(["--lock", str(lock), "--reviewed", str(reviewed), "--accept"]) == 0
    assert not lockfile.compare(lock, reviewed).unreviewed


def test_a_change_of_bytes_with_the_same_pins_is_noticed(tmp_path):
    lock = tmp_path / "requirements.lock"
    reviewed = tmp_path / "reviewed.json"
    lock.write_text("numpy==2.4.6\n", encoding="utf-8")
    lockfile.accept(lock, reviewed)
    lock.write_text("--index-url https://example.invalid/simple\nnumpy==2.4.6\n", encoding="utf-8")
    change = lockfile.compare(lock, reviewed)
    assert change.unreviewed and change.hash_changed and "bytes changed" in change.describe()


def test_without_a_reviewed_record_everything_is_unreviewed(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.4.6\n", encoding="utf-8")
    assert lockfile.compare(lock, tmp_path / "missing.json").added == {"numpy": "2.4.6"}


def test_an_unpinned_line_or_a_broken_record_is_a_clear_error(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy>=2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"requirements.lock:1: 'numpy>=2' is not pinned"):
        lockfile.compare(lock, tmp_path / "r.json")
    lock.write_text("numpy==2.4.6\n", encoding="utf-8")
    broken = tmp_path / "r.json"
    broken.write_text(json.dumps({"pins": {}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="not a reviewed-lock record"):
        lockfile.compare(lock, broken)
