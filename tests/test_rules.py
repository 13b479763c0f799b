"""The content and naming rules (`gitscripts.repo.rules`), one table per rule.

Both doors (REST and git push) ask these; here each case is checked alone, so a failure names the
input and the rule, not an endpoint.
"""

from __future__ import annotations

import pytest

from gitscripts import errors
from gitscripts.repo import layout, rules


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("geology", None),
        ("analysis.py", None),
        ("with space", None),
        ("ünïcödé", None),
        ("x" * 255, None),
        ("", "name is empty"),
        (".", "name cannot be '.' or '..'"),
        ("..", "name cannot be '.' or '..'"),
        (".hidden", "name cannot start with a dot"),
        ("a/b", "name cannot contain '/' or '\\'"),
        ("a\\b", "name cannot contain '/' or '\\'"),
        ("a\x00b", "name cannot contain NUL or control characters"),
        ("a\nb", "name cannot contain NUL or control characters"),
        (" padded", "name cannot start or end with whitespace"),
        ("padded ", "name cannot start or end with whitespace"),
        ("x" * 256, "name is longer than 255 bytes"),
        ("é" * 128, "name is longer than 255 bytes"),  # 256 bytes in UTF-8
    ],
)
def test_name_problem(name: str, problem: str | None) -> None:
    assert rules.name_problem(name) == problem


REVISION_PROBLEM = "use letters, digits, '.', '_', '-' and '/', starting with a letter or digit"


@pytest.mark.parametrize(
    ("revision", "valid"),
    [
        ("main", True),
        ("HEAD", True),
        ("v1.2.3", True),
        ("alice/feature_x", True),
        ("0123abcd", True),
        ("a" * 255, True),
        ("a" * 256, False),
        ("", False),
        ("-all", False),  # never an option
        (".hidden", False),
        ("main~1", False),  # no ancestry expressions
        ("HEAD^", False),
        ("a..b", False),  # no ranges
        ("a@{1}", False),
        ("a//b", False),
        ("a/.b", False),
        ("branch.lock", False),
        ("trailing/", False),
        ("trailing.", False),
        ("with space", False),
    ],
)
def test_revision_problem(revision: str, valid: bool) -> None:
    assert rules.revision_problem(revision) == (None if valid else REVISION_PROBLEM)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("v1", None),
        ("alice/feature", None),
        ("release-2024.1", None),
        ("deadbeef", "a tag name cannot look like a commit id (4 to 40 hex digits)"),
        ("DEAD", "a tag name cannot look like a commit id (4 to 40 hex digits)"),
        ("abc", None),  # three hex digits are no commit id
        ("HEAD", "a tag name cannot be HEAD or one of git's *_HEAD names"),
        ("ORIG_HEAD", "a tag name cannot be HEAD or one of git's *_HEAD names"),
        ("tags/v1", "a tag name cannot start with refs/, heads/, tags/, remotes/"),
        ("refs/x", "a tag name cannot start with refs/, heads/, tags/, remotes/"),
        ("heads/main", "a tag name cannot start with refs/, heads/, tags/, remotes/"),
        ("remotes/origin", "a tag name cannot start with refs/, heads/, tags/, remotes/"),
        (
            "bad..name",
            "a tag name must use letters, digits, '.', '_', '-' and '/', start with a letter or "
            "digit, and not end with '.', '/' or '.lock'",
        ),
    ],
)
def test_ref_name_problem(name: str, problem: str | None) -> None:
    assert rules.ref_name_problem(name, "tag") == problem


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("analysis.py", None),
        ("_helper.py", None),
        ("a.py", None),
        (".py", "name cannot start with a dot"),
        ("analysis.txt", "a script's filename must end with .py"),
        ("analysis", "a script's filename must end with .py"),
        ("a/b.py", "name cannot contain '/' or '\\'"),
        ("x" * 243 + ".py", "a script's filename can be at most 245 bytes"),
        ("x" * 242 + ".py", None),
    ],
)
def test_check_script_filename(filename: str, problem: str | None) -> None:
    if problem is None:
        rules.check_script_filename(filename)
        return
    with pytest.raises(errors.InvalidFilename) as refused:
        rules.check_script_filename(filename)
    assert refused.value.message == f"Invalid filename: {problem}"
    assert refused.value.details == {"filename": filename}


@pytest.mark.parametrize(
    ("filename", "source", "error"),
    [
        ("a.py", b"def main(data):\n    return data\n", None),
        ("a.py", b"def main(data: dict) -> dict:\n    return data\n", None),
        ("a.py", b"def main(data: dict[str, Any]):\n    return data\n", None),
        ("a.py", b"def main(data: 'dict'):\n    return data\n", None),
        ("a.py", b"def main(data: typing.Dict):\n    return data\n", None),
        ("a.py", b"def main(data, extra=1, *, flag=False):\n    return data\n", None),
        ("_helper.py", b"X = 1\n", None),  # helpers need only parse
        ("a.py", b"X = 1\n", errors.ScriptMissingMain),
        ("a.py", b"def main():\n    return {}\n", errors.ScriptMissingMain),
        ("a.py", b"def main(a, b):\n    return {}\n", errors.ScriptMissingMain),
        ("a.py", b"def main(data: list):\n    return data\n", errors.ScriptMissingMain),
        ("a.py", b"def main(data, *, flag):\n    return data\n", errors.ScriptMissingMain),
        ("a.py", b"async def main(data):\n    return data\n", errors.ScriptMissingMain),
        ("a.py", b"if True:\n    def main(data):\n        return data\n", errors.ScriptMissingMain),
        ("a.py", b"def main(data):\n  return (\n", errors.InvalidScriptContent),
        ("a.py", b"\xff\xfe", errors.InvalidScriptContent),
        ("a.py", b"x = 1\x00\n", errors.InvalidScriptContent),
        ("a.py", b"# big\n" + b"x" * 100, errors.PayloadTooLarge),
    ],
)
def test_check_script_content(filename: str, source: bytes, error: type[Exception] | None) -> None:
    if error is None:
        rules.check_script_content(filename, source, max_size=100)
        return
    with pytest.raises(error):
        rules.check_script_content(filename, source, max_size=100)


@pytest.mark.parametrize(
    ("path", "is_script"),
    [
        ("a.py", True),
        ("geo/deep/a.py", True),
        ("a.py.meta.json", False),
        ("notes.txt", False),
        (".hidden/a.py", False),
        ("geo/.a.py", False),
    ],
)
def test_is_script_path(path: str, is_script: bool) -> None:
    assert layout.is_script_path(path) is is_script


def test_the_script_suffix_is_one_rule() -> None:
    """The rules read the layout's suffix: a script's name and its place in the tree agree."""
    assert rules.SCRIPT_SUFFIX is layout.SCRIPT_SUFFIX == ".py"
