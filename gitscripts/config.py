"""All configuration, in one pydantic-settings class read from the environment."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(RuntimeError):
    """The service cannot start with this configuration."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["development", "production"] = "development"
    debug: bool = False
    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    # Let clients without credentials clone and fetch over git (pushing always needs them).
    git_anonymous_read: bool = False
    # After an API commit, at most once this many seconds, `git gc --auto` packs the repository's
    # loose objects when git finds enough of them (as git does after a push).
    git_housekeeping_seconds: float = Field(default=60, ge=0)

    data_dir: Path = Path("./repo_data")

    jwt_secret_key: str | None = None
    jwt_access_token_expire_minutes: int = Field(default=30, ge=1)

    max_script_execution_time: float = Field(default=300, gt=0)
    max_file_size: int = Field(default=104_857_600, gt=0)
    # A script (or any file in the script repository) larger than this is refused by the API.
    max_script_size: int = Field(default=1_048_576, gt=0)

    # -- file store ------------------------------------------------------------------------------
    # Where /api/v1/files keeps its files: empty means DATA_DIR/files; a local path (or file://
    # URL), or s3://bucket/prefix (credentials from the standard AWS variables).
    files_url: str = ""
    # The address users reach the service at (https://scripts.example.com), for the absolute URLs
    # it hands out (download links); empty: the address each request came to.
    public_url: str = ""
    # How long a download link (`POST /api/v1/files/{key}/link`) works.
    download_link_seconds: int = Field(default=60, ge=1, le=86_400)
    # An S3-compatible service other than AWS (MinIO, Ceph, moto), e.g. http://127.0.0.1:9000.
    s3_endpoint_url: str | None = None

    # -- execution ---------------------------------------------------------------------------
    # "fork": a warm fork server forks a fresh child per run; "subprocess": a new interpreter per
    # run (the original design: slower, kept as the baseline and the fallback); "dask": every run
    # goes to the workers of the Dask cluster at DASK_SCHEDULER_ADDRESS (`gitscripts worker`).
    executor: Literal["fork", "subprocess", "dask"] = "fork"
    preload_modules: str = ""  # comma-separated, imported once by the fork server
    max_concurrent_executions: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    max_queued_executions: int = Field(default=64, ge=0)
    allow_anonymous_execution: bool = False
    execution_memory_limit_mb: int = Field(default=2048, ge=16)
    execution_cpu_limit_seconds: int | None = Field(default=None, ge=1)  # default: the timeout
    execution_max_processes: int = Field(default=64, ge=1)
    execution_max_file_size_mb: int = Field(default=1024, ge=1)
    execution_output_limit_bytes: int = Field(default=1_048_576, ge=1024)
    execution_result_limit_bytes: int = Field(default=64 * 1_048_576, ge=1024)
    # Environment variables handed through to scripts (nothing else of the server's is).
    execution_env_passthrough: str = "LANG,LC_ALL,TZ,OPENBLAS_CORETYPE,OPENBLAS_L2_SIZE"
    # Checkouts of revisions and scratch directories; default: a private folder in the system temp.
    execution_dir: Path | None = None
    # The sandbox every run is born in (see docs in the README, "Security"):
    # "strict" refuses to start unless every protection is active (the default in production),
    # "auto" applies what the kernel allows and says what it refuses (the default in development),
    # "off" runs scripts with the service's own privileges: only for a trusted single user.
    execution_sandbox: Literal["strict", "auto", "off"] | None = None
    # "none": a run has no network but a loopback; it reaches the file API through a Unix socket.
    # "loopback-service": the same, and the file API also answers on the run's own loopback at
    # the service's port. "host": runs share the machine's network (anything the service reaches).
    execution_network: Literal["none", "loopback-service", "host"] = "none"
    # As root, run slot N executes as uid and gid EXECUTION_UID_BASE + N, which own nothing.
    execution_uid_base: int = Field(default=2_000_000, ge=1000, le=4_000_000_000)
    execution_max_open_files: int = Field(default=1024, ge=16)
    # Each run's private /tmp and /dev/shm (memory-backed; counted in its memory where cgroups are).
    execution_tmp_size_mb: int = Field(default=64, ge=1)
    # Each run's scratch directory (its working directory, HOME, TMPDIR): a memory-backed tmpfs
    # of this size at most (counted in its memory where cgroups are), gone when the run ends.
    execution_scratch_size_mb: int = Field(default=1024, ge=1)
    checkout_cache_bytes: int = Field(default=1 << 30, ge=1 << 20)

    # -- a Dask cluster (EXECUTOR=dask; see the README, "Scaling out") ---------------------------
    dask_scheduler_address: str = ""  # tcp://host:8786
    # Seconds a synchronous run waits for a worker to exist before it is refused (503
    # NO_EXECUTION_CAPACITY); an asynchronous run stays queued instead.
    dask_capacity_wait: float = Field(default=10, gt=0)
    # How many times a run whose worker died is run again elsewhere. 0: never (a script may have
    # side effects: its run fails with WORKER_LOST); more only where every script is idempotent.
    dask_worker_lost_retries: int = Field(default=0, ge=0, le=10)
    # Runs handed to the scheduler beyond the workers' slots, to wait there rather than in the
    # service: an adaptive cluster (dask-jobqueue's `adapt`) scales up on the runs it sees
    # waiting. 0: runs wait in the service, and the scheduler only ever sees what runs.
    dask_scheduler_queue: int = Field(default=0, ge=0)
    # Seconds a worker slot this service holds (a Dask task of its own, see `cluster.dispatch`)
    # stays held after its last run, for the next run to start in it at once. 0: each run is its
    # own Dask task, and the scheduler sees every run as one.
    dask_slot_idle: float = Field(default=2.0, ge=0, le=600)
    # The credential `gitscripts worker` fetches checkouts with (the service's internal tree
    # endpoint answers nothing without it); both sides need the same value.
    worker_token: str | None = None
    # Where workers reach the service (http://host:8000): `gitscripts worker --service`.
    service_url: str = ""

    # -- script dependencies (PEP 723 blocks, resolved and installed with uv) -------------------
    # Where packages come from. Empty: uv's own configuration (UV_DEFAULT_INDEX, UV_INDEX,
    # uv.toml) or else PyPI. A private index: its simple-API URL.
    packages_index_url: str = ""
    # A folder (or URL) of wheels searched as well; with PACKAGES_NO_INDEX=true the only source
    # (an air-gapped site's wheelhouse).
    packages_find_links: str = ""
    packages_no_index: bool = False
    # Requirements given as a URL, a path or a VCS reference (`pkg @ https://...`) bypass the
    # index and its review; refused unless an admin allows them here.
    packages_allow_direct_references: bool = False
    # Seconds resolving one script's dependencies may take before the write is refused.
    packages_resolve_timeout: float = Field(default=120, gt=0)
    # Seconds building one environment (installing a lock's packages) may take.
    environment_build_timeout: float = Field(default=600, gt=0)
    # Environments with their own warm fork server at most (least recently used stopped first);
    # one idle this many seconds is stopped too.
    execution_max_environments: int = Field(default=4, ge=1)
    environment_idle_seconds: float = Field(default=600, gt=0)
    # Packages (import names, comma-separated) an environment's fork server imports once when a
    # script declares them, so its runs start with them loaded: "numpy,scipy,pandas". Only
    # packages the operator trusts: their import-time code runs in the fork server, outside the
    # runs' sandbox. "*" preloads whatever scripts declare (only for a curated package index).
    environment_preload: str = ""
    # `gitscripts environments gc` removes least recently used environments beyond this size.
    environments_max_bytes: int = Field(default=10 << 30, ge=0)

    # Seconds an asynchronous run (POST /api/v1/runs) may last: it holds no connection open.
    max_async_execution_time: float = Field(default=3600, gt=0)

    # Inputs one batch (POST /api/v1/runs/batch) may have.
    runs_batch_max_inputs: int = Field(default=10_000, ge=1)

    # Who may read GET /metrics: empty, clients on this machine (loopback); else whoever sends
    # this as a Bearer token.
    metrics_token: str | None = None

    # -- the run log -------------------------------------------------------------------------
    # Keep each run's input and result in the run log (false for confidential data: the log then
    # keeps the rest of the run, its output included).
    runs_store_data: bool = True
    # The stdout and stderr of a run are kept up to this many characters each (then a marker).
    runs_output_limit_chars: int = Field(default=65_536, ge=1024)
    # Ended runs are deleted once older than this many days, and beyond the newest this many.
    runs_retention_days: float = Field(default=30, gt=0)
    runs_retention_count: int = Field(default=1_000_000, ge=1)

    # Who may create an account: anyone ("open", the original's behaviour), nobody but admins
    # ("closed": `gitscripts create-user`, POST /api/v1/admin/users), or whoever holds an invite
    # code an admin made ("invite").
    registration: Literal["open", "closed", "invite"] = "open"

    # Failed logins for one login from one client address beyond this many are answered only
    # after an increasing delay.
    login_throttle_free_attempts: int = Field(default=3, ge=0)
    login_throttle_base_delay: float = Field(default=0.5, ge=0)
    login_throttle_max_delay: float = Field(default=10.0, ge=0)
    # Failed logins from one client address (any login) in 15 minutes before it is refused (429).
    login_throttle_client_max_failures: int = Field(default=50, ge=1)

    # Passwords are hashed with argon2id; these are its cost parameters.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    @model_validator(mode="after")
    def _cluster_named(self) -> Settings:
        if self.executor == "dask" and not self.dask_scheduler_address:
            raise ValueError("EXECUTOR=dask needs DASK_SCHEDULER_ADDRESS (tcp://host:8786)")
        return self

    @field_validator("preload_modules")
    @classmethod
    def _preloaded_modules_exist(cls, value: str) -> str:
        # Found now, or the fork server would fail to start with a traceback much later.
        for name in filter(None, (part.strip() for part in value.split(","))):
            if importlib.util.find_spec(name.split(".")[0]) is None:
                raise ValueError(f"no module named {name.split('.')[0]!r} is installed")
        return value

    @property
    def repo_path(self) -> Path:
        return self.data_dir / "scripts.git"

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.json"

    @property
    def runs_path(self) -> Path:
        return self.data_dir / "runs.sqlite3"

    @property
    def uv_cache_dir(self) -> Path:
        """uv's cache: beside the environments (same file system), so installs are hard links."""
        return self.data_dir / "uv-cache"

    @property
    def environments_dir(self) -> Path:
        """The scripts' environments: beside uv's cache, on the same file system."""
        return self.data_dir / "environments"

    @property
    def files_location(self) -> str:
        return self.files_url or str(self.data_dir / "files")

    @property
    def local_files_dir(self) -> Path | None:
        """The file store's directory when it is on this machine; None for a remote store."""
        location = self.files_location
        if location.startswith("file://"):
            return Path(location.removeprefix("file://"))
        return None if "://" in location else Path(location)

    @property
    def internal_url(self) -> str:
        """How processes on this machine (git hooks, running scripts) reach the service."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def sandbox_mode(self) -> Literal["strict", "auto", "off"]:
        if self.execution_sandbox is not None:
            return self.execution_sandbox
        return "strict" if self.environment == "production" else "auto"

    @property
    def execution_root(self) -> Path:
        if self.execution_dir is not None:
            return self.execution_dir
        # One per data directory and user; short, because a Unix socket lives in it.
        key = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"gitscripts-{os.getuid()}-{key}"

    @cached_property
    def secret_key(self) -> str:
        """The JWT signing key.

        Production refuses to start without one; development keeps a generated key in DATA_DIR so
        tokens survive a restart without anyone having to configure anything.
        """
        if self.jwt_secret_key:
            return self.jwt_secret_key
        if self.environment == "production":
            raise ConfigurationError(
                "JWT_SECRET_KEY must be set when ENVIRONMENT=production "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return _development_secret(self.data_dir / "jwt_secret.key")


def load_settings() -> Settings:
    """The settings from the environment (and `.env`).

    An invalid value is a ConfigurationError naming the variable, its value and the rule, one line
    per variable: a person starting the service should not have to read pydantic's traceback.
    """
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            value = str(error.get("input", ""))
            shown = value if len(value) <= 60 else value[:57] + "..."
            reason = error["msg"].removeprefix("Value error, ")  # pydantic's prefix says nothing
            lines.append(f"{name}={shown}: {reason}")
        raise ConfigurationError("invalid setting: " + "\ninvalid setting: ".join(lines)) from None


def _development_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(48)
    # Written aside, then hard-linked into place: link() fails if the key exists, so when two
    # processes start at once exactly one key wins, and nobody ever reads a half-written key.
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temp, path)
    except FileExistsError:
        secret = path.read_text().strip()
    finally:
        temp.unlink()
    return secret
