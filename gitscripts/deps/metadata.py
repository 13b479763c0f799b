"""A script's inline metadata (PEP 723): what it declares it needs, read from its source.

```python
# /// script
# requires-python = ">=3.11"
# dependencies = ["numpy>=1.26", "scipy"]
# ///
```

`read(source)` finds the block with the specification's own regular expression, parses its TOML
and checks it: only the keys PEP 723 defines (`requires-python`, `dependencies`, `tool`), each
requirement valid PEP 508, a `requires-python` this service's interpreter satisfies. A script
without a block has no metadata (None) and runs in the default environment. Every problem is an
`InvalidScriptMetadata` that says what is wrong and where, so the API and a push answer alike.
"""

from __future__ import annotations

import platform
import re
import tomllib
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from gitscripts import errors

# From PEP 723 ("Reference implementation"): a block is `# /// TYPE`, comment lines, `# ///`.
_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
_KNOWN_KEYS = frozenset({"requires-python", "dependencies", "tool"})


@dataclass(frozen=True)
class ScriptMetadata:
    """A script's checked PEP 723 block."""

    requires_python: str | None
    dependencies: tuple[str, ...]
    # The top-level import names the requirements most likely provide (`scikit-learn` gives
    # `scikit_learn`, a guess that is right for most packages): what a warm worker may preload.
    import_guesses: tuple[str, ...]

    @property
    def has_dependencies(self) -> bool:
        return bool(self.dependencies)


def block(source: bytes | str) -> str | None:
    """The text of the script's `script` block(s) as written, None when it has none: two
    versions whose blocks read the same declare the same thing, and keep the same lock."""
    blocks = _script_blocks(source)
    return "".join(match.group(0) for match in blocks) if blocks else None


def read(source: bytes | str, *, allow_direct_references: bool = False) -> ScriptMetadata | None:
    """The script's metadata, None when it has no `script` block; `InvalidScriptMetadata` when
    the block is there but wrong."""
    blocks = _script_blocks(source)
    if not blocks:
        return None
    if len(blocks) > 1:
        raise errors.InvalidScriptMetadata(
            "The script has more than one '# /// script' block; PEP 723 allows one"
        )
    table = _parse_toml(blocks[0].group("content"))
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        raise errors.InvalidScriptMetadata(
            f"Unknown key(s) in the script's '# /// script' block: {', '.join(unknown)}; "
            "PEP 723 allows requires-python, dependencies and [tool]",
            keys=unknown,
        )
    requires_python = _requires_python(table.get("requires-python"))
    requirements = _requirements(table.get("dependencies", []), allow_direct_references)
    tool = table.get("tool", {})
    if not isinstance(tool, dict):
        raise errors.InvalidScriptMetadata("'tool' in the script's block must be a table")
    _check_uv_settings(tool.get("uv", {}), allow_direct_references)
    return ScriptMetadata(
        requires_python=requires_python,
        dependencies=tuple(str(requirement) for requirement in requirements),
        import_guesses=tuple(dict.fromkeys(_import_name(r.name) for r in requirements)),
    )


def _script_blocks(source: bytes | str) -> list[re.Match[str]]:
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    return [match for match in _BLOCK.finditer(text) if match.group("type") == "script"]


def _parse_toml(content: str) -> dict[str, object]:
    # Each line is "#" or "# " followed by the TOML line (the specification's own unwrapping).
    lines = [line[2:] if line.startswith("# ") else line[1:] for line in content.splitlines()]
    try:
        return tomllib.loads("\n".join(lines))
    except tomllib.TOMLDecodeError as exc:
        raise errors.InvalidScriptMetadata(
            f"The script's '# /// script' block is not valid TOML: {exc}"
        ) from None


def _requires_python(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.InvalidScriptMetadata("requires-python must be a string such as '>=3.11'")
    try:
        specifier = SpecifierSet(value)
    except InvalidSpecifier:
        raise errors.InvalidScriptMetadata(
            f"requires-python {value!r} is not a valid version specifier", requires_python=value
        ) from None
    running = platform.python_version()
    if not specifier.contains(running, prereleases=True):
        raise errors.InvalidScriptMetadata(
            f"The script requires Python {value}, and this service runs Python {running}",
            requires_python=value,
            available=running,
        )
    return value


def _requirements(value: object, allow_direct_references: bool) -> list[Requirement]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise errors.InvalidScriptMetadata(
            'dependencies must be a list of requirement strings, e.g. ["numpy>=1.26"]'
        )
    requirements = []
    for item in value:
        try:
            requirement = Requirement(item)
        except InvalidRequirement as exc:
            raise errors.InvalidScriptMetadata(
                f"Dependency {item!r} is not a valid requirement: {exc}", requirement=item
            ) from None
        if requirement.url and not allow_direct_references:
            raise errors.InvalidScriptMetadata(
                f"Dependency {item!r} names a URL, path or VCS source; only packages from the "
                "configured index are allowed (PACKAGES_ALLOW_DIRECT_REFERENCES)",
                requirement=item,
            )
        requirements.append(requirement)
    return requirements


# `[tool.uv]` keys that choose where packages come from: uv obeys them in a script's block, so
# they would bypass the service's package settings (`sources` names URLs, paths and VCS
# repositories, like a direct reference).
_UV_INDEX_KEYS = frozenset(
    {"index", "index-url", "extra-index-url", "find-links", "no-index", "index-strategy",
     "keyring-provider", "allow-insecure-host", "python-downloads"}
)  # fmt: skip


def _check_uv_settings(uv: object, allow_direct_references: bool) -> None:
    if not isinstance(uv, dict):
        raise errors.InvalidScriptMetadata("'tool.uv' in the script's block must be a table")
    refused = sorted(key for key in uv if key in _UV_INDEX_KEYS)
    if "sources" in uv and not allow_direct_references:
        refused.append("sources")
    if refused:
        raise errors.InvalidScriptMetadata(
            f"[tool.uv] {', '.join(refused)} in the script's block would take packages from "
            "elsewhere than the configured index; the service's package settings decide that "
            "(PACKAGES_INDEX_URL, PACKAGES_FIND_LINKS, PACKAGES_ALLOW_DIRECT_REFERENCES)",
            keys=refused,
        )


def _import_name(distribution: str) -> str:
    return re.sub(r"[-.]+", "_", distribution).lower()
