"""Is this node ready for Kind? Gather facts once, then classify them with pure functions.

gather_preflight_facts() does the I/O (three version commands and one image
lookup per preloaded image name in parallel, a few /proc and /sys reads,
statvfs, one open() per preloaded archive); classify_* turn facts into
results; run_preflight() is both together and is what `kindslurm doctor` calls.

Whether the cgroup v2 and XDG_RUNTIME_DIR checks apply depends on whether the
runtime is rootless. A local Podman is rootless exactly when its user is not
root, but a regular user may also reach a rootful Podman service through
CONTAINER_HOST (the way a docker group works). So with CONTAINER_HOST set the
runtime probe is `podman info` (which tells rootless and cgroup version, and
costs a few tenths of a second more) instead of `podman version`.
"""

from __future__ import annotations

import enum
import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import process
from ..spec import ARCHIVE_SUFFIXES, RunnerSpec
from .cluster import runtime_service, service_variable

GIB = 1024**3
DISK_FAIL_BYTES = 2 * GIB
DISK_WARN_BYTES = 5 * GIB
INOTIFY_MIN_WATCHES = 524288
INOTIFY_MIN_INSTANCES = 512
REQUIRED_CONTROLLERS = ("cpu", "memory")
VERSION_TIMEOUT = 10.0
# One line `podman info` prints instead of `podman version` when it must tell
# whether the runtime is rootless (parsed by parse_runtime_info).
PODMAN_INFO_FORMAT = (
    "version {{.Version.Version}} rootless={{.Host.Security.Rootless}} "
    "cgroups={{.Host.CgroupsVersion}}"
)


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str
    fix: str = ""

    def describe(self) -> str:
        text = f"[{self.status.value}] {self.name}: {self.message}"
        if self.fix and self.status is not Status.OK:
            text += f"\n       fix: {self.fix}"
        return text


# ------------------------------------------------------------------ facts ---


@dataclass(frozen=True)
class BinaryFact:
    """One `<program> version`-like probe."""

    name: str  # what it is for: kind, kubectl, runtime
    argv: tuple[str, ...]
    path: str | None  # where PATH found the program; None: not found
    returncode: int | None = None
    output: str = ""
    error: str = ""  # why it did not run to an exit


@dataclass(frozen=True)
class DiskFact:
    name: str
    path: str
    free_bytes: int | None
    error: str = ""


@dataclass(frozen=True)
class PreloadFact:
    """One entry of preload_images: an archive file or a local image name."""

    entry: str
    archive: bool
    problem: str = ""  # archive: why it cannot be read; "" when readable
    present: bool | None = None  # image name: in local storage? None: not checked


@dataclass(frozen=True)
class PreflightFacts:
    euid: int
    provider: str
    binaries: tuple[BinaryFact, ...] = ()
    cgroup2_mountpoint: str | None = None
    own_cgroup: str | None = None  # the "0::" path from /proc/self/cgroup
    cgroup_controllers: tuple[str, ...] | None = None  # of own_cgroup
    xdg_runtime_dir: str | None = None
    xdg_runtime_dir_owner: int | None = None  # None: missing
    inotify_max_user_watches: int | None = None
    inotify_max_user_instances: int | None = None
    disks: tuple[DiskFact, ...] = ()
    node_image: str | None = None
    node_image_is_file: bool = False
    node_image_present: bool | None = None  # None: not checked
    preload: tuple[PreloadFact, ...] = ()
    runtime_bin: str = "podman"
    runtime_service: str | None = None  # CONTAINER_HOST / DOCKER_HOST when set
    runtime_rootless: bool | None = None  # what the runtime said; None: not asked

    @property
    def rootless(self) -> bool:
        return is_rootless(self.euid, self.runtime_rootless)


def is_rootless(euid: int, answer: bool | None) -> bool:
    """Does kind face a rootless runtime? The runtime's answer, else our uid
    (a local Podman is rootless exactly when its user is not root). Pure."""
    return answer if answer is not None else euid != 0


# --------------------------------------------------------------- classify ---


def classify_binary(fact: BinaryFact) -> CheckResult:
    name = f"{fact.name} binary"
    program = fact.argv[0]
    if fact.path is None:
        return CheckResult(
            name,
            Status.FAIL,
            f"{program!r} not found on PATH",
            f"install {fact.name} on this node or set the full path in the plugin settings",
        )
    command = shlex.join(fact.argv)
    if fact.returncode != 0:
        why = fact.error or f"exited with code {fact.returncode}"
        detail = fact.output.strip().splitlines()[-1:] if fact.output.strip() else []
        return CheckResult(
            name,
            Status.FAIL,
            f"`{command}` failed ({why})" + (f": {detail[0]}" if detail else ""),
            f"run `{command}` on this node and fix what it reports",
        )
    lines = [line.strip() for line in fact.output.splitlines() if line.strip()]
    versioned = [line for line in lines if "version" in line.lower()]
    summary = " ".join((versioned or lines or ["ok"])[0].split())
    return CheckResult(name, Status.OK, f"{fact.path}: {summary}")


def classify_cgroups(
    rootless: bool,
    cgroup2_mountpoint: str | None,
    own_cgroup: str | None,
    controllers: Sequence[str] | None,
) -> CheckResult:
    """Rootless kind needs the unified cgroup v2 hierarchy with cpu and memory delegated."""
    name = "cgroups"
    if not rootless:
        return CheckResult(name, Status.OK, "rootful runtime: no delegation needed")
    if cgroup2_mountpoint != "/sys/fs/cgroup":
        where = f"only at {cgroup2_mountpoint} (hybrid)" if cgroup2_mountpoint else "not mounted"
        return CheckResult(
            name,
            Status.FAIL,
            f"rootless kind needs cgroup v2 at /sys/fs/cgroup; cgroup2 is {where}",
            "boot the node with the unified hierarchy "
            "(systemd.unified_cgroup_hierarchy=1) or run kind as root",
        )
    missing = [c for c in REQUIRED_CONTROLLERS if c not in (controllers or ())]
    if missing:
        return CheckResult(
            name,
            Status.FAIL,
            f"controllers {', '.join(missing)} are not delegated to this user's cgroup "
            f"{own_cgroup or '?'} (have: {' '.join(controllers or ()) or 'none'})",
            "delegate them (systemd: user@.service Delegate=cpu cpuset io memory pids; "
            "Slurm: cgroup/v2 plugin) - see https://kind.sigs.k8s.io/docs/user/rootless/",
        )
    return CheckResult(name, Status.OK, f"cgroup v2 with {' '.join(controllers or ())}")


def classify_xdg_runtime_dir(
    rootless: bool, euid: int, path: str | None, owner: int | None
) -> CheckResult:
    """Rootless podman keeps its state under XDG_RUNTIME_DIR: set, present, ours."""
    name = "XDG_RUNTIME_DIR"
    if not rootless:
        return CheckResult(name, Status.OK, "rootful runtime: not needed")
    fix = (
        "export XDG_RUNTIME_DIR to a directory you own (mode 0700), the same for "
        "every job on this node (podman cannot remove what it started under another)"
    )
    if not path:
        return CheckResult(name, Status.FAIL, "not set (rootless podman needs it)", fix)
    if owner is None:
        return CheckResult(name, Status.FAIL, f"{path} does not exist", fix)
    if owner != euid:
        return CheckResult(name, Status.FAIL, f"{path} is owned by uid {owner}, not {euid}", fix)
    return CheckResult(name, Status.OK, path)


def classify_runtime_access(
    provider: str, euid: int, service: str | None, rootless: bool | None
) -> CheckResult:
    """How kind reaches the runtime: local (rootful as root, else rootless) or a
    service. A service that did not answer is a failure of its own, with a fix
    that names the variable, the socket and its permissions."""
    name = "container runtime access"
    engine = provider.capitalize()
    variable = service_variable(provider)
    if not service:
        how = "rootful, as root" if euid == 0 else f"rootless, as uid {euid}"
        return CheckResult(name, Status.OK, f"local {engine} ({how})")
    if rootless is None:
        return CheckResult(
            name,
            Status.FAIL,
            f"{variable}={service} is set but the {engine} service there did not answer",
            f"start the service (e.g. `{provider} system service --time=0 {service}`), make "
            f"its socket readable and writable for your group, or unset {variable} to use "
            "the local runtime",
        )
    mode = "rootless" if rootless else "rootful"
    return CheckResult(name, Status.OK, f"{engine} service at {service} ({mode})")


def classify_inotify(watches: int | None, instances: int | None) -> CheckResult:
    """Low limits make node start fail with several clusters ("could not find a log
    line that matches ... Multi-User System"): a warning, one cluster usually works."""
    name = "inotify limits"
    if watches is None or instances is None:
        return CheckResult(name, Status.WARN, "cannot read fs.inotify.* from /proc/sys")
    low = []
    if watches < INOTIFY_MIN_WATCHES:
        low.append(f"max_user_watches={watches} < {INOTIFY_MIN_WATCHES}")
    if instances < INOTIFY_MIN_INSTANCES:
        low.append(f"max_user_instances={instances} < {INOTIFY_MIN_INSTANCES}")
    if low:
        return CheckResult(
            name,
            Status.WARN,
            "; ".join(low) + " (several clusters on this node may fail to start)",
            f"sysctl -w fs.inotify.max_user_watches={INOTIFY_MIN_WATCHES} "
            f"fs.inotify.max_user_instances={INOTIFY_MIN_INSTANCES} (persist in /etc/sysctl.d)",
        )
    limits = f"max_user_watches={watches} max_user_instances={instances}"
    return CheckResult(name, Status.OK, limits)


def classify_disk(fact: DiskFact) -> CheckResult:
    name = f"free disk ({fact.name})"
    if fact.free_bytes is None:
        return CheckResult(name, Status.WARN, f"cannot check {fact.path}: {fact.error}")
    free = f"{fact.free_bytes / GIB:.1f} GiB free in {fact.path}"
    fix = f"free space in {fact.path} or point it elsewhere"
    if fact.free_bytes < DISK_FAIL_BYTES:
        return CheckResult(name, Status.FAIL, f"{free} (< {DISK_FAIL_BYTES // GIB} GiB)", fix)
    if fact.free_bytes < DISK_WARN_BYTES:
        return CheckResult(name, Status.WARN, f"{free} (< {DISK_WARN_BYTES // GIB} GiB)", fix)
    return CheckResult(name, Status.OK, free)


def classify_node_image(image: str | None, is_file: bool, present: bool | None) -> CheckResult:
    name = "node image"
    if not image:
        return CheckResult(name, Status.OK, "kind's default node image")
    if is_file:
        return CheckResult(
            name,
            Status.FAIL,
            f"{image} is a file; kind --image takes an image name",
            f"load it once per node (podman load -i {image}) and give the image name",
        )
    if present is False:
        return CheckResult(
            name,
            Status.WARN,
            f"{image} is not in the local image store; kind will try to pull it",
            f"pull or load it on this node beforehand (podman pull {image})",
        )
    if present is None:
        return CheckResult(name, Status.OK, f"{image} (not checked)")
    return CheckResult(name, Status.OK, f"{image} is present")


def is_image_archive(entry: str) -> bool:
    """A preload entry names an archive file (known suffix or absolute path). Pure."""
    return entry.endswith(ARCHIVE_SUFFIXES) or os.path.isabs(entry)


def classify_preload(fact: PreloadFact, runtime_bin: str = "podman") -> CheckResult:
    """A preloaded image must be loadable before a cluster is made for it:
    a missing archive would otherwise surface only after `kind create`."""
    where = "--kindslurm-preload-images or the rule's kind_preload_images"
    if fact.archive:
        name = "preload archive"
        if fact.problem:
            return CheckResult(
                name,
                Status.FAIL,
                f"{fact.entry} {fact.problem}",
                f"write the archive there first (e.g. `{runtime_bin} save -o {fact.entry} "
                f"IMAGE`) or correct the path in {where}",
            )
        return CheckResult(name, Status.OK, f"{fact.entry} is readable")
    name = "preload image"
    if fact.present is False:
        return CheckResult(
            name,
            Status.FAIL,
            f"{fact.entry} is not in the local image store of {runtime_bin} "
            "(kind load does not pull)",
            f"pull or load it on this node (`{runtime_bin} pull {fact.entry}` or "
            f"`{runtime_bin} load -i ARCHIVE`), or give an archive path in {where}",
        )
    if fact.present is None:
        return CheckResult(name, Status.WARN, f"{fact.entry}: could not ask {runtime_bin}")
    return CheckResult(name, Status.OK, f"{fact.entry} is present")


def classify_preflight(facts: PreflightFacts) -> list[CheckResult]:
    results = [classify_binary(b) for b in facts.binaries]
    if facts.provider == "podman":
        results.append(
            classify_runtime_access(
                facts.provider, facts.euid, facts.runtime_service, facts.runtime_rootless
            )
        )
    # A service that did not answer fails the access check; the rootless checks
    # (cgroups, XDG_RUNTIME_DIR) would then judge this host for nothing.
    unreachable = facts.runtime_service is not None and facts.runtime_rootless is None
    if facts.provider == "podman" and not unreachable:
        results.append(
            classify_cgroups(
                facts.rootless,
                facts.cgroup2_mountpoint,
                facts.own_cgroup,
                facts.cgroup_controllers,
            )
        )
        results.append(
            classify_xdg_runtime_dir(
                facts.rootless, facts.euid, facts.xdg_runtime_dir, facts.xdg_runtime_dir_owner
            )
        )
    results.append(
        classify_inotify(facts.inotify_max_user_watches, facts.inotify_max_user_instances)
    )
    results.extend(classify_disk(d) for d in facts.disks)
    results.append(
        classify_node_image(facts.node_image, facts.node_image_is_file, facts.node_image_present)
    )
    results.extend(classify_preload(p, facts.runtime_bin) for p in facts.preload)
    return results


def preflight_failed(results: Sequence[CheckResult]) -> bool:
    return any(r.status is Status.FAIL for r in results)


def format_preflight(results: Sequence[CheckResult]) -> str:
    return "\n".join(r.describe() for r in results)


# ---------------------------------------------------------------- parsers ---


def parse_cgroup2_mountpoint(mounts: str) -> str | None:
    """The mount point of the cgroup2 file system in /proc/self/mounts text."""
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return parts[1]
    return None


def parse_own_cgroup(proc_self_cgroup: str) -> str | None:
    """The cgroup v2 path ("0::/...") in /proc/self/cgroup text."""
    for line in proc_self_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def parse_runtime_info(output: str) -> bool | None:
    """rootless=true|false from the PODMAN_INFO_FORMAT line; None when absent. Pure."""
    for word in output.split():
        if word.startswith("rootless="):
            value = word.partition("=")[2].lower()
            if value in ("true", "false"):
                return value == "true"
    return None


def parse_int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


# ----------------------------------------------------------------- gather ---


def asks_rootless(provider: str, euid: int, service: str | None) -> bool:
    """Must the runtime probe say whether it is rootless? Only for a Podman
    service: a local Podman is rootless exactly when its user is not root."""
    return provider == "podman" and service is not None


def version_argvs(spec: RunnerSpec, ask_rootless: bool = False) -> list[tuple[str, list[str]]]:
    runtime = (
        [spec.runtime_bin, "info", "--format", PODMAN_INFO_FORMAT]
        if ask_rootless
        else [spec.runtime_bin, "version"]
    )
    return [
        ("kind", [spec.kind_bin, "version"]),
        ("kubectl", [spec.kubectl_bin, "version", "--client"]),
        ("runtime", runtime),
    ]


def runtime_storage_dir(provider: str, rootless: bool, environ: Mapping[str, str]) -> str:
    if provider == "docker":
        return "/var/lib/docker"
    if not rootless:
        return "/var/lib/containers/storage"
    data = environ.get("XDG_DATA_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(data, "containers", "storage")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _probe(name: str, argv: list[str], environ: Mapping[str, str]) -> BinaryFact:
    path = shutil.which(argv[0], path=environ.get("PATH"))
    if path is None:
        return BinaryFact(name, tuple(argv), None)
    try:
        result = process.run(argv, timeout=VERSION_TIMEOUT, check=False, env=environ)
    except process.CommandError as err:
        return BinaryFact(name, tuple(argv), path, None, err.output, err.reason)
    return BinaryFact(name, tuple(argv), path, result.returncode, result.output)


def _disk(name: str, path: str) -> DiskFact:
    # Storage not created yet, or not ours to read (a rootful service's, seen
    # by a user): the nearest directory we can stat is on its file system.
    probe = Path(path)
    while True:
        try:
            stats = os.statvfs(probe)
        except OSError as err:
            if probe == probe.parent:
                return DiskFact(name, path, None, str(err))
            probe = probe.parent
            continue
        return DiskFact(name, path, stats.f_bavail * stats.f_frsize)


def _rootless_answer(fact: BinaryFact) -> bool | None:
    return parse_runtime_info(fact.output) if fact.returncode == 0 else None


def _image_present(spec: RunnerSpec, environ: Mapping[str, str]) -> bool | None:
    if not spec.node_image:
        return None
    argv = [spec.runtime_bin, "image", "inspect", "--format", "{{.Id}}", spec.node_image]
    try:
        result = process.run(argv, timeout=VERSION_TIMEOUT, check=False, env=environ)
    except process.CommandError:
        return None
    return result.returncode == 0


def build_image_exists_argv(provider: str, runtime_bin: str, image: str) -> list[str]:
    """Exit 0 when image is in local storage (podman answers without output)."""
    if provider == "docker":
        return [runtime_bin, "image", "inspect", "--format", "{{.Id}}", image]
    return [runtime_bin, "image", "exists", image]


def _archive_problem(path: str) -> str:
    """Why the archive cannot be loaded ("" when it can): one open and a 1-byte read."""
    try:
        with open(path, "rb") as archive:
            first = archive.read(1)
    except FileNotFoundError:
        return "does not exist"
    except IsADirectoryError:
        return "is a directory, not an archive file"
    except PermissionError:
        return f"is not readable by uid {os.geteuid()}"
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    return "" if first else "is empty"


def _image_exists(spec: RunnerSpec, image: str, environ: Mapping[str, str]) -> bool | None:
    argv = build_image_exists_argv(spec.provider, spec.runtime_bin, image)
    try:
        result = process.run(argv, timeout=VERSION_TIMEOUT, check=False, env=environ)
    except process.CommandError:
        return None
    return result.returncode == 0


def _names_file(spec: RunnerSpec, entry: str) -> bool:
    """Archive or image name? Like the runner: by its look, or an existing file."""
    return is_image_archive(entry) or os.path.isfile(os.path.join(spec.workdir, entry))


def _archive_fact(spec: RunnerSpec, entry: str) -> PreloadFact:
    # kind load runs in the working directory: relative paths are found there
    return PreloadFact(entry, True, _archive_problem(os.path.join(spec.workdir, entry)))


def _name_fact(entry: str, lookup: Future[bool | None]) -> PreloadFact:
    return PreloadFact(entry, False, present=lookup.result())


def gather_preflight_facts(
    spec: RunnerSpec, environ: Mapping[str, str] | None = None
) -> PreflightFacts:
    """Collect everything classify_preflight needs (commands run in parallel)."""
    environ = dict(os.environ if environ is None else environ)
    euid = os.geteuid()
    service = runtime_service(spec.provider, environ)
    ask_rootless = asks_rootless(spec.provider, euid, service)
    image_is_file = bool(spec.node_image) and os.path.isfile(spec.node_image or "")
    archives = {e for e in spec.preload_images if _names_file(spec, e)}
    names = list(dict.fromkeys(e for e in spec.preload_images if e not in archives))
    with ThreadPoolExecutor(max_workers=4 + len(names)) as pool:
        probes = [pool.submit(_probe, n, a, environ) for n, a in version_argvs(spec, ask_rootless)]
        image = (
            pool.submit(_image_present, spec, environ)
            if spec.node_image and not image_is_file
            else None
        )
        lookups = {e: pool.submit(_image_exists, spec, e, environ) for e in names}
        own_cgroup = parse_own_cgroup(_read("/proc/self/cgroup") or "")
        mountpoint = parse_cgroup2_mountpoint(_read("/proc/self/mounts") or "")
        controllers: tuple[str, ...] | None = None
        if mountpoint and own_cgroup:
            text = _read(os.path.join(mountpoint, own_cgroup.lstrip("/"), "cgroup.controllers"))
            controllers = tuple(text.split()) if text is not None else None
        xdg = environ.get("XDG_RUNTIME_DIR") or None
        xdg_owner = None
        if xdg:
            try:
                xdg_owner = os.stat(xdg).st_uid
            except OSError:
                xdg_owner = None
        tmpdir = environ.get("TMPDIR") or "/tmp"
        binaries = tuple(p.result() for p in probes)
        rootless = _rootless_answer(binaries[-1]) if ask_rootless else None
        storage = runtime_storage_dir(spec.provider, is_rootless(euid, rootless), environ)
        disks = (_disk("runtime storage", storage), _disk("TMPDIR", tmpdir))
        facts = PreflightFacts(
            euid=euid,
            provider=spec.provider,
            binaries=binaries,
            cgroup2_mountpoint=mountpoint,
            own_cgroup=own_cgroup,
            cgroup_controllers=controllers,
            xdg_runtime_dir=xdg,
            xdg_runtime_dir_owner=xdg_owner,
            inotify_max_user_watches=parse_int(_read("/proc/sys/fs/inotify/max_user_watches")),
            inotify_max_user_instances=parse_int(_read("/proc/sys/fs/inotify/max_user_instances")),
            disks=disks,
            node_image=spec.node_image,
            node_image_is_file=image_is_file,
            node_image_present=image.result() if image is not None else None,
            preload=tuple(
                _archive_fact(spec, e) if e in archives else _name_fact(e, lookups[e])
                for e in spec.preload_images
            ),
            runtime_bin=spec.runtime_bin,
            runtime_service=service,
            runtime_rootless=rootless,
        )
    return facts


def run_preflight(spec: RunnerSpec, environ: Mapping[str, str] | None = None) -> list[CheckResult]:
    """All checks for this node and spec, in a stable order (for `kindslurm doctor`)."""
    return classify_preflight(gather_preflight_facts(spec, environ))
