"""Cluster identity: the name, the container labels and the per-user state record.

Everything here except the small file helpers at the end is pure. Kept free
of heavy imports: the runner imports it on every clustered job.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import string
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

# Kind's own label on every node container (constants.ClusterLabelKey).
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"

# Ours, on node containers and (through the runtime shim) on their volumes.
LABEL_PREFIX = "io.kindslurm."
LABEL_CLUSTER = LABEL_PREFIX + "cluster"
LABEL_SLURM_JOB_ID = LABEL_PREFIX + "slurm-job-id"
LABEL_USER = LABEL_PREFIX + "user"
LABEL_CREATED = LABEL_PREFIX + "created"
LABEL_HOST = LABEL_PREFIX + "host"

NAME_PREFIX = "ks"
SUFFIX_LENGTH = 6
SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
# Kind warns above 50 characters; node hostnames add "-control-plane" (14)
# and must stay within the 64 of a hostname.
MAX_NAME_LENGTH = 50
_VALID_NAME = re.compile(r"^[a-z0-9.-]+$")
_INVALID_CHARS = re.compile(r"[^a-z0-9]+")


def random_suffix(length: int = SUFFIX_LENGTH) -> str:
    """A random [a-z0-9] string: 36**6 (2e9) values keep parallel jobs apart."""
    return "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(length))


def slurm_job_id(environ: Mapping[str, str]) -> str | None:
    """The id users see in squeue: `<array job>_<task>` for array tasks, else SLURM_JOB_ID."""
    array_job = environ.get("SLURM_ARRAY_JOB_ID", "").strip()
    array_task = environ.get("SLURM_ARRAY_TASK_ID", "").strip()
    if array_job and array_task:
        return f"{array_job}_{array_task}"
    job = environ.get("SLURM_JOB_ID", "").strip()
    return job or None


def sanitize_job_id(job_id: str, max_length: int) -> str:
    """Make a job id safe for a Kind name: lower case, runs of other characters -> '-'.

    `123_4` becomes `123-4`. Over max_length, the head is dropped (the tail
    of a job id is the part that differs between jobs).
    """
    cleaned = _INVALID_CHARS.sub("-", job_id.lower()).strip("-")
    if len(cleaned) > max_length:
        cleaned = cleaned[-max_length:].lstrip("-")
    return cleaned


def build_cluster_name(job_id: str | None, suffix: str) -> str:
    """`ks-<job id>-<suffix>`, or `ks-local-<suffix>` without a Slurm job.

    Always matches ^[a-z0-9.-]+$ and is at most MAX_NAME_LENGTH characters.
    """
    if not re.fullmatch(r"[a-z0-9]+", suffix):
        raise ValueError(f"cluster name suffix must be [a-z0-9]+, got {suffix!r}")
    room = MAX_NAME_LENGTH - len(NAME_PREFIX) - len(suffix) - 2
    middle = sanitize_job_id(job_id, room) if job_id else ""
    name = f"{NAME_PREFIX}-{middle or 'local'}-{suffix}"
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"cluster name suffix too long: {suffix!r}")
    return name


def is_valid_cluster_name(name: str) -> bool:
    return bool(_VALID_NAME.match(name)) and len(name) <= MAX_NAME_LENGTH


def build_node_names(cluster_name: str, roles: Iterable[str]) -> list[str]:
    """The container names kind gives the nodes, in order (kind's MakeNodeNamer).

    The first node of a role is `<cluster>-<role>`, the next ones get 2, 3, ...
    More than one control-plane adds `<cluster>-external-load-balancer`.
    """
    counts: dict[str, int] = {}
    names: list[str] = []
    for role in roles:
        counts[role] = counts.get(role, 0) + 1
        number = counts[role]
        names.append(f"{cluster_name}-{role}" + (str(number) if number > 1 else ""))
    if counts.get("control-plane", 0) > 1:
        names.append(f"{cluster_name}-external-load-balancer")
    return names


def build_labels(
    cluster_name: str, job_id: str | None, user: str, created: str, host: str
) -> dict[str, str]:
    """Our labels for node containers and volumes (kind adds its own cluster label)."""
    return {
        LABEL_CLUSTER: cluster_name,
        LABEL_SLURM_JOB_ID: job_id or "",
        LABEL_USER: user,
        LABEL_CREATED: created,
        LABEL_HOST: host,
    }


def build_node_filter(cluster_name: str) -> str:
    """The runtime `--filter` value that selects a cluster's node containers."""
    return f"label={KIND_CLUSTER_LABEL}={cluster_name}"


# ------------------------------------------------------------ state record ---


@dataclass(frozen=True)
class StateRecord:
    """What `kindslurm list/gc` needs to know about a live cluster besides its labels."""

    name: str
    slurm_job_id: str | None
    user: str
    uid: int
    host: str
    created: str
    kubeconfig: str
    tempdir: str
    runner_pid: int
    provider: str
    runtime: str
    # CONTAINER_HOST (DOCKER_HOST) the runner used; "" for the local runtime.
    # A cluster made through a service is invisible to a `kindslurm gc` that
    # asks the local runtime, and must not be taken for gone there.
    runtime_service: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StateRecord:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("state record must be a JSON object")
        return cls(**data)


def state_dir(environ: Mapping[str, str], uid: int) -> Path:
    """`${XDG_RUNTIME_DIR:-/tmp}/kindslurm-<uid>/clusters`."""
    base = environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"kindslurm-{uid}" / "clusters"


def state_record_path(environ: Mapping[str, str], uid: int, cluster_name: str) -> Path:
    return state_dir(environ, uid) / f"{cluster_name}.json"


def ensure_private_dir(path: Path, uid: int) -> None:
    """Create path (and its parent) mode 0700, refusing one another user owns.

    The parent may sit in the shared /tmp, where anyone could pre-create it.
    """
    for directory in (path.parent, path):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            raise PermissionError(f"{directory} is not a directory owned by uid {uid}")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(directory, 0o700)


def write_state_record(path: Path, record: StateRecord) -> None:
    ensure_private_dir(path.parent, record.uid)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(record.to_json())
    os.replace(tmp, path)


def read_state_records(directory: Path) -> list[StateRecord]:
    """Every readable record in directory (unreadable ones are skipped)."""
    records = []
    for path in sorted(directory.glob("*.json")):
        try:
            records.append(StateRecord.from_json(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
    return records
