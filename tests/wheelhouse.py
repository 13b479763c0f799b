"""Small wheels built by the tests themselves, so dependency tests never reach the internet.

`build_wheelhouse(folder)` writes a local package index (a flat folder of wheels, what uv and pip
read with `--find-links`) holding:
- `gsfixture` 1.0 and 2.0: `import gsfixture; gsfixture.VERSION` says which one ran;
- `gsfixture-plus` 1.0, which depends on `gsfixture>=2` (a transitive dependency);
- `gsfixture-broken` 1.0, whose only dependency exists nowhere (it resolves to nothing).
Each wheel is a real, valid wheel (METADATA, WHEEL, RECORD with hashes), pure Python, any platform.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FixturePackage:
    name: str  # the distribution name, as in a requirement ("gsfixture-plus")
    version: str
    modules: dict[str, str]  # path inside the wheel -> source
    requires: list[str] = field(default_factory=list)

    @property
    def normalized(self) -> str:
        return self.name.replace("-", "_")


FIXTURE_PACKAGES = [
    FixturePackage("gsfixture", "1.0", {"gsfixture/__init__.py": 'VERSION = "1.0"\n'}),
    FixturePackage("gsfixture", "2.0", {"gsfixture/__init__.py": 'VERSION = "2.0"\n'}),
    FixturePackage(
        "gsfixture-plus",
        "1.0",
        {
            "gsfixture_plus/__init__.py": (
                "import gsfixture\n\n"
                "def describe():\n"
                '    return f"plus on gsfixture {gsfixture.VERSION}"\n'
            )
        },
        requires=["gsfixture>=2"],
    ),
    FixturePackage(
        "gsfixture-broken",
        "1.0",
        {"gsfixture_broken/__init__.py": ""},
        requires=["gsfixture-nowhere-to-be-found>=1"],
    ),
]


def _record_line(path: str, content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(content)}"


def build_wheel(folder: Path, package: FixturePackage) -> Path:
    """Write one wheel of `package` into `folder` and return its path."""
    dist_info = f"{package.normalized}-{package.version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {package.name}",
        f"Version: {package.version}",
        "Summary: a package built by the gitscripts tests",
    ]
    metadata += [f"Requires-Dist: {requirement}" for requirement in package.requires]
    files: dict[str, bytes] = {path: source.encode() for path, source in package.modules.items()}
    files[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: gitscripts-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    record = [_record_line(path, content) for path, content in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{package.normalized}-{package.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files.items():
            archive.writestr(path, content)
    return wheel


def build_wheelhouse(folder: Path) -> Path:
    """Fill `folder` with every fixture package's wheel; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for package in FIXTURE_PACKAGES:
        build_wheel(folder, package)
    return folder
