"""The rules every script and path must pass, whichever door it comes through (REST or git push)."""

from __future__ import annotations

import ast
import re
import unicodedata

from gitscripts import errors
from gitscripts.deps import metadata
from gitscripts.repo.layout import LOCK_SUFFIX, METADATA_SUFFIX
from gitscripts.repo.layout import SCRIPT_SUFFIX as SCRIPT_SUFFIX  # the rules' callers use it

MAX_NAME_BYTES = 255


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a folder or file name in the repository, or None when it can."""
    if not name:
        return "name is empty"
    if name in (".", ".."):
        return "name cannot be '.' or '..'"
    if name.startswith("."):
        return "name cannot start with a dot"
    if "/" in name or "\\" in name:
        return "name cannot contain '/' or '\\'"
    if any(unicodedata.category(char) == "Cc" for char in name):
        return "name cannot contain NUL or control characters"
    if name != name.strip():
        return "name cannot start or end with whitespace"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"name is longer than {MAX_NAME_BYTES} bytes"
    return None


# What `?rev=` and the other revision parameters accept: a plain name, never an expression.
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")
# Any such string is a commit id (full or abbreviated), so no branch or tag may look like one.
COMMIT_ID = re.compile(r"[0-9a-fA-F]{4,40}")
# Names git itself gives meaning to in a clone: `HEAD`, `ORIG_HEAD`, ..., and `tags/v1`,
# `heads/main`, `refs/...`, `remotes/...`, which git reads as the ref under that folder.
_GIT_PREFIXES = ("refs", "heads", "tags", "remotes")


def revision_problem(revision: str) -> str | None:
    """Why `revision` is not a name a revision parameter accepts, or None when it is.

    Only plain names: no range or ancestry expressions, nothing that starts with a dash, so user
    text can never act as an option or select more than one commit.
    """
    if (
        not _REVISION.fullmatch(revision)
        or any(bad in revision for bad in ("..", "//", "/.", "@{"))
        or revision.endswith((".lock", "/", "."))
    ):
        return "use letters, digits, '.', '_', '-' and '/', starting with a letter or digit"
    return None


def ref_name_problem(name: str, kind: str) -> str | None:
    """Why `name` cannot be a new branch or tag (`kind`), judged by the name alone, or None.

    A ref must be reachable by `?rev=<name>` and mean nothing else there or in a clone: a name
    that reads as a commit id, as `HEAD`, or as a ref under git's own folders would let a push
    stand in for what another user named (see `Repository.resolve`).
    """
    if revision_problem(name):
        return (
            f"a {kind} name must use letters, digits, '.', '_', '-' and '/', start with a "
            "letter or digit, and not end with '.', '/' or '.lock'"
        )
    if COMMIT_ID.fullmatch(name):
        return f"a {kind} name cannot look like a commit id (4 to 40 hex digits)"
    if name == "HEAD" or name.endswith("_HEAD"):
        return f"a {kind} name cannot be HEAD or one of git's *_HEAD names"
    if name.split("/", 1)[0] in _GIT_PREFIXES:
        return f"a {kind} name cannot start with {', '.join(p + '/' for p in _GIT_PREFIXES)}"
    return None


def check_folder_name(name: str) -> None:
    problem = name_problem(name)
    if problem:
        raise errors.InvalidFolderName(f"Invalid folder name: {problem}", name=name)


# The metadata sidecar adds its suffix to the script's name, and that name must fit too.
MAX_SCRIPT_NAME_BYTES = MAX_NAME_BYTES - len(METADATA_SUFFIX)


def check_script_filename(filename: str) -> None:
    problem = name_problem(filename)
    if problem is None and len(filename.encode("utf-8")) > MAX_SCRIPT_NAME_BYTES:
        problem = f"a script's filename can be at most {MAX_SCRIPT_NAME_BYTES} bytes"
    if problem is None and not filename.endswith(SCRIPT_SUFFIX):
        problem = "a script's filename must end with .py"
    if problem is None and filename == SCRIPT_SUFFIX:
        problem = "a script's filename needs a name before .py"
    if problem:
        raise errors.InvalidFilename(f"Invalid filename: {problem}", filename=filename)


def check_display_name(display_name: str) -> None:
    if not display_name.strip():
        raise errors.ValidationError(
            "display_name cannot be blank", field="display_name", display_name=display_name
        )


MAX_COMMIT_MESSAGE = 10_000


def commit_message(message: str | None) -> str | None:
    """A caller's own message for a write's commit, trimmed; None when there is none (absent or
    blank: an empty field in a form keeps the message the service words). Control characters
    other than newline and tab are refused: git's tools would show them garbled."""
    if message is None or not message.strip():
        return None
    if len(message) > MAX_COMMIT_MESSAGE:
        raise errors.ValidationError(
            f"message is longer than {MAX_COMMIT_MESSAGE} characters", field="message"
        )
    if any(unicodedata.category(char) == "Cc" and char not in "\n\t" for char in message):
        raise errors.ValidationError(
            "message cannot contain control characters other than newline and tab",
            field="message",
        )
    return message.strip()


def is_helper_module(filename: str) -> bool:
    """Modules named `_*.py` are importable helpers: they need only parse, and are not run over REST."""
    return filename.startswith("_")


def check_script_content(filename: str, content: bytes, max_size: int) -> None:
    """The script parses as Python and (unless it is a helper) defines a top-level `main(data)`."""
    if len(content) > max_size:
        raise errors.PayloadTooLarge(
            f"Script is {len(content)} bytes; the limit is {max_size} bytes",
            filename=filename,
            size=len(content),
            max_size=max_size,
        )
    try:
        # The API hands content back as JSON text: anything but UTF-8 could not round-trip.
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.InvalidScriptContent(
            f"Script is not UTF-8 text (byte {exc.start} is not valid UTF-8)", filename=filename
        ) from None
    try:
        module = ast.parse(content, filename=filename)
    except SyntaxError as exc:
        raise errors.InvalidScriptContent(
            f"Script is not valid Python: {exc.msg} (line {exc.lineno})",
            filename=filename,
            line=exc.lineno,
            offset=exc.offset,
        ) from None
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise errors.InvalidScriptContent(
            f"Script is not valid Python: {exc}", filename=filename
        ) from None
    if is_helper_module(filename):
        return
    # A TypedDict is a dict when the script runs: `def main(data: Inputs)` describes its input.
    typed_dicts = {
        node.name
        for node in module.body
        if isinstance(node, ast.ClassDef)
        and any(_last_name(base) == "TypedDict" for base in node.bases)
    }
    if not any(_is_main(node, typed_dicts) for node in module.body):
        raise errors.ScriptMissingMain(
            "Script must define a top-level function main(data) taking one argument "
            "(annotated dict or unannotated)",
            filename=filename,
        )


def script_dependencies(
    filename: str, content: bytes, allow_direct_references: bool
) -> metadata.ScriptMetadata | None:
    """A script's checked PEP 723 block (`InvalidScriptMetadata` when wrong); None when it has
    none, or when it is a helper module: a helper runs in the environment of the script that
    imports it, so its own block means nothing and it never has a lock."""
    if is_helper_module(filename):
        return None
    return metadata.read(content, allow_direct_references=allow_direct_references)


def lock_file_problem(lock_name: str, beside: str | None) -> str | None:
    """Why a file `lock_name` (ending in `.py.lock`) cannot be in the repository, or None.

    `beside` says what is at the script's path next to it: "file", "folder" or None. A lock is
    only ever the lock of a runnable script beside it (`tool.py` -> `tool.py.lock`).
    """
    script = lock_name.removesuffix(LOCK_SUFFIX)
    if is_helper_module(script):
        return (
            f"{script} is a helper module: helpers run in the environment of the script that "
            "imports them and have no lock"
        )
    if beside != "file":
        return f"a lock needs its script {script} beside it; move or delete it with its script"
    return None


def lock_still_fits(locked_source: bytes | None, source: bytes) -> bool:
    """Whether the lock made for `locked_source` is `source`'s too: their blocks read the same.
    A save that leaves the block as it was keeps the lock as it was (no new resolution), so a
    script's packages never drift to newer releases because someone fixed a typo."""
    return locked_source is not None and metadata.block(locked_source) == metadata.block(source)


def is_lock_file(name: str) -> bool:
    return name.endswith(SCRIPT_SUFFIX + LOCK_SUFFIX)


def _is_main(node: ast.stmt, typed_dicts: set[str]) -> bool:
    if not isinstance(node, ast.FunctionDef) or node.name != "main":
        return False
    arguments = node.args
    positional = [*arguments.posonlyargs, *arguments.args]
    # One argument without a default; any extras are fine as long as main(data) alone is a call.
    required = len(positional) - len(arguments.defaults)
    if required != 1 or any(default is None for default in arguments.kw_defaults):
        return False
    annotation = positional[0].annotation
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        if annotation.value in typed_dicts:
            return True
    elif annotation is not None and _last_name(annotation) in typed_dicts:
        return True
    return _is_dict_annotation(annotation)


def _last_name(node: ast.expr) -> str | None:
    """`Name` or `module.Name`: the name."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def _is_dict_annotation(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return True
    if isinstance(annotation, ast.Subscript):  # dict[str, Any], Dict[str, Any]
        annotation = annotation.value
    if isinstance(annotation, ast.Attribute):  # typing.Dict
        return annotation.attr in ("dict", "Dict")
    if isinstance(annotation, ast.Name):
        return annotation.id in ("dict", "Dict")
    if isinstance(annotation, ast.Constant):  # from __future__-style string annotations
        return isinstance(annotation.value, str) and annotation.value.split("[")[0] in (
            "dict",
            "Dict",
        )
    return False
