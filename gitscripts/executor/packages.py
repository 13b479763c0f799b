"""The packages a worker process imports besides the service's: a script environment's.

A script with dependencies runs in its environment (see `gitscripts.deps.environments`): its fork
server (or fresh worker) puts the environment's folder first on `sys.path`, before the service's own
site-packages, so the versions the script's lock pins win; a run inherits that. The environment's
likely top-level modules are imported once there when they import cleanly (what fails to import is
left for the script to import, and fail, itself). Standard library only: the zygote and the worker
use it before anything else.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import site
import sys
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Packages:
    paths: list[str] = field(default_factory=list)  # first on sys.path, in this order
    preload: list[str] = field(default_factory=list)  # imported when they import cleanly

    @classmethod
    def from_json(cls, text: str) -> Packages:
        return cls(**json.loads(text)) if text else cls()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def use(self) -> None:
        sys.path[:0] = self.paths
        for path in self.paths:
            site.addsitedir(path)  # already on sys.path: only its .pth files are processed
        for name in self.preload:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
