"""Word-level changes in diffs: within a changed line pair, which words differ (HTTP API)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Caller, commits
from tests.test_history import put

API = "/api/v1/scripts-manager"
OLD = "def main(data):\n    total = compute(alpha, beta)\n    return {'total': total}\n"
NEW = "def main(data):\n    total = compute(alpha, gamma)\n    return {'sum': total, 'n': 1}\n"


def changed_words(line: dict[str, object]) -> list[str]:
    content = str(line["content"])
    return [content[start:end] for start, end in line.get("changed_ranges", [])]  # type: ignore[attr-defined]


def test_a_changed_line_pair_marks_the_words_that_differ(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("calc.py", OLD.encode())
    put(alice, script["id"], content=NEW)
    diff = alice.get(f"{API}/scripts/{script['id']}/diff").json()
    [file] = diff["files"]
    [hunk] = file["hunks"]
    lines = hunk["lines"]
    # The fields every line had stay as they were; paired lines gain their changed words.
    assert [set(line) - {"changed_ranges"} for line in lines] == [
        {"kind", "old_line", "new_line", "content"}
    ] * len(lines)
    by_kind = [(line["kind"], changed_words(line)) for line in lines]
    assert by_kind == [
        ("context", []),
        ("deleted", ["beta"]),
        ("deleted", ["total"]),
        ("added", ["gamma"]),
        ("added", ["sum", ", 'n': 1"]),
    ]
    # A commit's diff marks the same words.
    detail = alice.get(f"{API}/commits/{commits(data_dir)[0]['id']}").json()
    [calc] = [f for f in detail["files"] if f["new_path"] == "calc.py"]
    assert calc["hunks"] == file["hunks"]


def test_rewritten_lines_and_unpaired_lines_mark_no_words(alice: Caller) -> None:
    script = alice.upload("calc.py", OLD.encode())
    rewritten = "def main(data):\n    import os; os.getcwd()\n    return {}\n# one more line\n"
    put(alice, script["id"], content=rewritten)
    [file] = alice.get(f"{API}/scripts/{script['id']}/diff").json()["files"]
    lines = file["hunks"][0]["lines"]
    added = [line for line in lines if line["kind"] == "added"]
    assert added[-1]["content"] == "# one more line" and "changed_ranges" not in added[-1]
    # Nothing in common but spaces and brackets: a rewrite, not an edit of words.
    assert "changed_ranges" not in added[0]
    # The next pair is an edit: only what went is marked, and nothing in what stayed.
    deleted = [line for line in lines if line["kind"] == "deleted"]
    assert changed_words(deleted[1]) == ["'total': total"]
    assert added[1]["content"] == "    return {}" and added[1]["changed_ranges"] == []
