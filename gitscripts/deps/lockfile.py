"""What a lock pins, read from uv's TOML: each package's name, version and source.

For people (the dependencies a script's page shows) and for the push rules: a lock someone pushed
may only take packages from where the service's package settings say (`source_problem`); uv's
own check (`locks.check`) tells whether it matches its script's block, not where it points.
"""

from __future__ import annotations

import tomllib
from typing import TypedDict

from gitscripts.config import Settings

# uv's word for a package from an index or a folder of wheels; every other kind (url, git, path,
# directory, editable, virtual) names a place of its own, like a direct reference.
REGISTRY = "registry"


class LockedSource(TypedDict):
    kind: str  # uv's word: registry, url, git, path, directory, editable, virtual
    location: str


class LockedPackage(TypedDict):
    name: str
    version: str | None
    source: LockedSource | None


def locked_packages(lock: bytes) -> list[LockedPackage]:
    """The packages a lock pins, by name; [] for a lock that is not uv's TOML."""
    try:
        document = tomllib.loads(lock.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    packages = document.get("package", [])
    found: list[LockedPackage] = []
    for package in packages if isinstance(packages, list) else []:
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            continue
        version = package.get("version")
        source = package.get("source")
        found.append(
            {
                "name": package["name"],
                "version": version if isinstance(version, str) else None,
                "source": _source(source) if isinstance(source, dict) else None,
            }
        )
    return sorted(found, key=lambda package: package["name"])


def _source(source: dict[str, object]) -> LockedSource | None:
    for kind, location in source.items():
        if isinstance(location, str):
            return {"kind": kind, "location": location}
    return None


def source_problem(settings: Settings, lock: bytes) -> str | None:
    """Why `lock` takes a package from somewhere the settings do not allow, or None.

    A registry must be PACKAGES_INDEX_URL or PACKAGES_FIND_LINKS when the settings name every
    source (an index URL, or no index at all); otherwise uv's default index or its own
    configuration is in play too, which this cannot see, and any registry passes. Any other
    source needs PACKAGES_ALLOW_DIRECT_REFERENCES.
    """
    configured: set[str] = set()
    if settings.packages_index_url or settings.packages_no_index:
        configured = {
            location.rstrip("/")
            for location in (settings.packages_index_url, settings.packages_find_links)
            if location
        }
    for package in locked_packages(lock):
        source = package["source"]
        if source is None:
            continue
        if source["kind"] != REGISTRY:
            if not settings.packages_allow_direct_references:
                return (
                    f"the lock takes {package['name']} from a {source['kind']} source "
                    f"({source['location']}); only the configured index is allowed "
                    "(PACKAGES_ALLOW_DIRECT_REFERENCES)"
                )
        elif configured and source["location"].rstrip("/") not in configured:
            return (
                f"the lock takes {package['name']} from {source['location']}, which is not the "
                "configured index (PACKAGES_INDEX_URL, PACKAGES_FIND_LINKS); lock it again "
                "with the service's index settings"
            )
    return None
