"""The documentation is kept true by running it and checking it against the code.

- The README's quickstart is run as a reader would run it: its shell blocks in order, in one bash,
  in an empty directory, against a real `gitscripts serve`, with the real curl, git and python3;
  what each block prints is compared with the output shown under it.
- Every setting, endpoint, CLI command and error code the docs name exists; the configuration
  reference lists exactly the settings class's fields with their defaults, bounds and a valid
  example; every relative link leads to a file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import annotated_types
import httpx
import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from gitscripts.cli import main as cli
from gitscripts.config import Settings, load_settings
from tests import markdown
from tests.conftest import PASSWORD, Caller, live_server, make_settings, register

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# Names in capitals the docs may use that are neither settings nor in the package's source.
OUTSIDE_NAMES = {
    # The standard variables of AWS's libraries, and uvicorn's own for trusting a proxy.
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "FORWARDED_ALLOW_IPS",
    # The original service's settings, which DATA_DIR replaces.
    "SCRIPTS_DIR",
    "UPLOADS_DIR",
    "DATABASE_URL",
    # Git's own names, which no branch or tag may take.
    "ORIG_HEAD",
    "FETCH_HEAD",
}


def _documents() -> dict[Path, str]:
    return {path: path.read_text() for path in [README, *DOCS]}


def _where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, offset) + 1}"


# -- the front door ------------------------------------------------------------------------------
def test_the_readme_starts_with_the_two_commands_and_ci_runs_its_test_command() -> None:
    first = markdown.blocks(README.read_text())[0]
    commands = [line.split("#")[0].strip() for line in first.body.splitlines()]
    assert commands == ["uv run gitscripts serve", "uv run pytest"]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == "uv run pytest"


# -- the quickstart ------------------------------------------------------------------------------
def test_the_quickstart_runs_verbatim_from_an_empty_directory(tmp_path: Path) -> None:
    steps = [
        block
        for block in markdown.blocks(markdown.section(README.read_text(), "Quickstart"))
        if block.language == "bash"
    ]
    assert len(steps) >= 8 and all(step.output for step in steps)
    steps += _carrying_on_from_the_quickstart()
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    with live_server(tmp_path / "data", tmp_path / "server.log") as server:
        port = server.base.rsplit(":", 1)[1]
        # The reader's service listens on port 8000; this one on a free port.
        script = ["set -eo pipefail", "exec 2>&1"]
        for number, step in enumerate(steps):
            script += [f"printf '\\n@@@ {number}\\n'", step.body]
        script.append("printf '\\n@@@ end\\n'")
        completed = subprocess.run(
            ["bash", "-c", "\n".join(script).replace("localhost:8000", f"localhost:{port}")],
            cwd=work,
            env={
                "PATH": os.environ["PATH"],
                "HOME": str(home),
                "LANG": "C.UTF-8",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_TERMINAL_PROMPT": "0",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    printed = completed.stdout.replace(f"localhost:{port}", "localhost:8000")
    outputs = re.split(r"\n?@@@ (?:\d+|end)\n", printed)[1:]
    for number, step in enumerate(steps):
        got = outputs[number] if number < len(outputs) else "(the quickstart stopped before it)"
        assert step.output is None or markdown.matches(step.output, got), (
            f"the quickstart's block at line {step.line} printed:\n{got}\n"
            f"where the README shows:\n{step.output}"
        )
    assert completed.returncode == 0 and outputs[-1] == "", printed


def _carrying_on_from_the_quickstart() -> list[markdown.Block]:
    """Examples in docs/ that continue where the quickstart ends (its `$TOKEN`, `$GST`, `api`,
    scripts and files): moving the tag, and the client's program and the example program."""
    history = markdown.section((ROOT / "docs" / "history.md").read_text(), "Tags")
    client = markdown.blocks((ROOT / "docs" / "client.md").read_text())
    program = next(block for block in client if "from client import" in block.body)
    run_program = markdown.Block(
        "bash",
        f"cat > program.py <<'EOF'\n{program.body}EOF\n"
        "GITSCRIPTS_TOKEN=$GST python3 -I -S program.py\n",
        program.line,
    )
    return [
        *(block for block in markdown.blocks(history) if block.language == "bash"),
        *(
            block if block.language == "bash" else run_program
            for block in client
            if block.language == "bash" or block is program
        ),
    ]


def test_shown_output_elides_only_where_it_says_so() -> None:
    shown = 'a {"id":...,"x":1}\n...\nlast'
    assert markdown.matches(shown, 'a {"id":42,"x":1}\nmore\nlines\nlast\n')
    assert markdown.matches(shown, 'a {"id":42,"x":1}   \nlast')
    assert not markdown.matches(shown, 'a {"id":42,"x":2}\nlast')
    assert not markdown.matches(shown, 'a {"id":4\n2,"x":1}\nlast')  # `...` stays in its line


def _bash(script: str, cwd: Path, **env: str) -> str:
    completed = subprocess.run(
        ["bash", "-c", "set -eo pipefail\n" + script],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def test_backup_and_restore_as_documented(tmp_path: Path) -> None:
    """docs/operations.md's two blocks, verbatim: a backup of a running service, then a new data
    directory from it, which a service starts on with every account, id, version, tag and file."""
    text = (ROOT / "docs" / "operations.md").read_text()
    backup, restore = [
        block.body
        for block in markdown.blocks(markdown.section(text, "Backup and restore"))
        if block.language == "bash"
    ]
    data = tmp_path / "repo_data"  # the blocks' DATA_DIR, relative to where they run
    first = b"def main(data: dict) -> dict:\n    return {'version': 1}\n"
    second = b"def main(data: dict) -> dict:\n    return {'version': 2}\n"
    with live_server(data) as server, httpx.Client(base_url=server.base, timeout=60) as client:
        alice = register(client, "alice")  # type: ignore[arg-type]
        folder = alice.folder("geology")
        script = alice.upload("v.py", first, folder_id=folder["id"])
        old = alice.get(f"/api/v1/scripts-manager/scripts/{script['id']}/history").json()
        alice.upload("v.py", second, folder_id=folder["id"], replace=True)
        tag = {"name": "stable", "revision": old["versions"][0]["revision"]}
        assert alice.post("/api/v1/scripts-manager/tags", json=tag).status_code == 201
        assert alice.put("/api/v1/files/wells/a.csv", content=b"a,b\n").status_code == 200
        tree = alice.tree()
        saved = _bash(backup + '\necho "$BACKUP"', tmp_path).splitlines()[-1]
    data.rename(tmp_path / "lost")
    _bash(restore, tmp_path, DATA_DIR="repo_data", BACKUP=saved)
    with live_server(data) as server, httpx.Client(base_url=server.base, timeout=60) as client:
        reply = client.post("/api/v1/auth/login", json={"login": "alice", "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        alice = Caller(client, "alice", alice.id, reply.json()["access_token"])  # type: ignore[arg-type]
        assert alice.tree() == tree
        run = alice.post("/api/v1/scripts/geology/v.py", params={"rev": "stable"}, json={})
        assert run.json()["result"] == {"version": 1}
        assert alice.get("/api/v1/files/wells/a.csv").content == b"a,b\n"
        # The restored repository takes pushes: the service installed its hooks into it.
        token = alice.post("/api/v1/auth/tokens", json={"name": "git"}).json()["token"]
        header = f"http.extraHeader=Authorization: Bearer {token}"
        _bash(
            f"git -c '{header}' clone -q {server.base}/git/scripts.git clone && cd clone\n"
            "printf 'def main(data):\\n    return {}\\n' > geology/pushed.py\n"
            "git add -A && git -c user.name=A -c user.email=a@example.com commit -qm pushed\n"
            f"git -c '{header}' push -q",
            tmp_path,
        )
        assert "geology/pushed.py" in str(alice.tree())


# -- settings ------------------------------------------------------------------------------------
def _configuration_rows() -> dict[str, list[str]]:
    """`| `NAME` | default | allowed | example | meaning |` rows of docs/configuration.md."""
    rows = {}
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`([A-Z][A-Z0-9_]+)`", cells[0]) if len(cells) == 5 else None
        if name:
            assert name[1] not in rows, f"{name[1]} is listed twice"
            rows[name[1]] = cells[1:]
    return rows


def _allowed(name: str) -> str:
    """What the settings class accepts for `name`, in the words of the configuration table."""
    field = Settings.model_fields[name]
    kind = str(field.annotation)
    bounds = {type(rule).__name__: rule for rule in field.metadata}
    if "Literal" in kind:
        choices = re.findall(r"'([^']*)'", kind)
        return "one of " + ", ".join(f"`{choice}`" for choice in choices)
    if kind == "<class 'bool'>":
        return "`true` or `false`"
    low = bounds.get("Ge") or bounds.get("Gt")
    high = bounds.get("Le")
    if low is not None and high is not None:
        return f"{low.ge} to {high.le}"  # type: ignore[union-attr]
    if isinstance(low, annotated_types.Ge):
        return f"at least {low.ge}"
    if isinstance(low, annotated_types.Gt):
        return f"more than {low.gt}"
    return ""


def _default(name: str) -> str | None:
    """The default as the table writes it: None when it is computed (no literal to show)."""
    field = Settings.model_fields[name]
    if field.default_factory is not None or field.default is None:
        return None
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`./{value}`"
    return f"`{value}`" if value != "" else "empty"


def test_the_configuration_reference_is_the_settings_class() -> None:
    rows = _configuration_rows()
    fields = {name.upper() for name in Settings.model_fields}
    assert sorted(set(rows) - fields) == [], "documented, but not a setting"
    assert sorted(fields - set(rows)) == [], "a setting docs/configuration.md does not describe"
    for variable, (default, allowed, _example, meaning) in rows.items():
        name = variable.lower()
        expected_default = _default(name)
        if expected_default is not None:
            assert default == expected_default, variable
        else:
            assert not re.fullmatch(r"`[^`]*`", default), f"{variable}'s default is computed"
        if _allowed(name):
            assert allowed == _allowed(name), variable
        assert meaning, variable


def test_every_example_in_the_configuration_reference_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the project's
    for variable, (_default, _allowed, example, _meaning) in _configuration_rows().items():
        value = re.fullmatch(r"`([^`]+)`", example)
        assert value, f"{variable}: the example is one `value`"
        with monkeypatch.context() as env:
            env.setenv(variable, value[1])
            settings = load_settings()
        assert getattr(settings, variable.lower()) is not None, variable


def _package_names() -> set[str]:
    """Names in capitals the package's source quotes (error codes, the environment variables it
    reads or sets) or defines (the example program's arguments); not those only in its comments."""
    names: set[str] = set()
    for source in (ROOT / "gitscripts").rglob("*.py"):
        text = source.read_text()
        names |= set(re.findall(r"[\"']([A-Z][A-Z0-9_]{2,})[\"']", text))
        names |= set(re.findall(r"^([A-Z][A-Z0-9_]{2,}) *[:=]", text, re.MULTILINE))
    return names


def test_every_name_in_capitals_the_docs_use_exists() -> None:
    """A setting, an error code or an environment variable the docs name is one the code knows."""
    known = {name.upper() for name in Settings.model_fields} | _package_names() | OUTSIDE_NAMES
    unknown = []
    for path, text in _documents().items():
        for match in re.finditer(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)(?:=[^`]*)?`", text):
            if match[1] not in known:
                unknown.append(f"{_where(path, text, match.start())}: {match[1]}")
    assert unknown == []


# -- endpoints -----------------------------------------------------------------------------------
_METHOD = r"GET|POST|PUT|PATCH|DELETE"


def _documented_endpoints() -> Iterator[tuple[str, str, str]]:
    """(where, method, path) of each `METHOD /path` in prose and each curl in a shell block."""
    for path, text in _documents().items():
        for match in re.finditer(rf"\b((?:{_METHOD})(?:/(?:{_METHOD}))*) (/[^\s`|,)]*)", text):
            for method in match[1].split("/"):
                yield _where(path, text, match.start()), method, match[2]
        for block in markdown.blocks(text):
            if block.language != "bash":
                continue
            for command in block.body.replace("\\\n", " ").splitlines():
                found = re.search(r"localhost:8000(/[^\s'\"]*)", command)
                if not found or not re.match(r"\s*(curl|api) ", command):
                    continue
                explicit = re.search(rf"-X ({_METHOD})", command)
                sends = re.search(r" (-d|-F|--data\S*) ", command)
                method = explicit[1] if explicit else "POST" if sends else "GET"
                yield f"{path.relative_to(ROOT)}:{block.line}", method, found[1]


def test_every_endpoint_the_docs_name_exists(tmp_path: Path) -> None:
    """Asked without credentials, a route that exists answers anything but the 404 or 405 of a
    route that does not (and, without credentials, changes nothing)."""
    missing = []
    with TestClient(create_app(make_settings(tmp_path / "data"))) as client:
        for where, method, documented in _documented_endpoints():
            url = re.sub(r"\{[^}]*\}|\$\{?\w+\}?", "1", documented.split("?")[0])
            reply = client.request(method, url)
            absent = reply.status_code == 405 or (
                reply.status_code == 404 and reply.json()["message"].startswith("Not found: ")
            )
            if absent:
                missing.append(f"{where}: {method} {documented}")
    assert missing == []


# -- the command line ----------------------------------------------------------------------------
def _usage(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli([*args, "--help"])
    return out.getvalue()


def test_every_command_the_docs_name_exists() -> None:
    commands = set(re.search(r"\{([a-z,-]+)\}", _usage())[1].split(","))  # type: ignore[index]
    options = {command: set(re.findall(r"--[a-z-]+", _usage(command))) for command in commands}
    wrong = []
    for path, text in _documents().items():
        code = "\n".join(
            [block.body for block in markdown.blocks(text)] + re.findall(r"`([^`\n]+)`", text)
        )
        for match in re.finditer(r"(?:^|[\s(])gitscripts ([a-z][a-z-]*)([^\n#]*)", code, re.M):
            command = match[1]
            if command not in commands:
                wrong.append(f"{path.relative_to(ROOT)}: gitscripts {command}")
                continue
            for option in re.findall(r"(?<!\S)--[a-z-]+", match[2]):
                if option not in options[command]:
                    wrong.append(f"{path.relative_to(ROOT)}: gitscripts {command} {option}")
    assert wrong == []
    documented = (ROOT / "docs" / "operations.md").read_text()
    assert sorted(c for c in commands if f"gitscripts {c}" not in documented) == []


# -- links ---------------------------------------------------------------------------------------
def _anchors(markdown_text: str) -> set[str]:
    """The anchors a forge gives the headings (GitHub's and GitLab's rule)."""
    headings = re.findall(r"^#+ (.+)$", markdown_text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_relative_link_leads_to_a_file_and_heading() -> None:
    broken = []
    for path, text in _documents().items():
        prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
        for match in re.finditer(r"\]\(([^)\s#]*)(?:#([^)\s]*))?\)", prose):
            target, anchor = match[1], match[2]
            if re.match(r"[a-z]+:", target):
                continue
            resolved = (path.parent / target).resolve() if target else path
            if not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
            elif anchor and anchor not in _anchors(resolved.read_text()):
                broken.append(f"{path.relative_to(ROOT)}: {target}#{anchor}")
    assert broken == []
