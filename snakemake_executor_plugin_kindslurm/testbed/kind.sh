#!/usr/bin/env bash
# Kind/Podman half of the kindslurm test bed.
#
# Installs Podman + the real `kind` binary and builds a *stand-in* Kind node
# image from Debian packages only. WHY a stand-in: no container registry is
# reachable from the machines this project runs on, so `kindest/node` cannot
# be pulled, and no Debian/PyPI package ships kubelet/kube-apiserver. The
# stand-in node has NO Kubernetes in it; it only answers the commands the real
# `kind` binary runs inside a node, so that kind's create / kubeconfig export /
# load / export logs / delete flow runs for real: real containers, real labels,
# real bind mounts, real published ports. See standin-node/README.md.
#
# Run `kind.sh --help` for the subcommands. Needs root for `install` and for
# anything kind does here (kind refuses rootless Podman on cgroup v1).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STANDIN_DIR="${SCRIPT_DIR}/standin-node"
IMAGE_REPO="localhost/kindslurm-standin-node"
NEVER_READY_TAG="never-ready"
# The suite kind comes from: bookworm has no `kind` package; trixie has 0.27.
KIND_SUITE="${KINDSLURM_KIND_SUITE:-trixie}"
KIND_BIN_DEST="/usr/local/bin/kind"
# The shared rootful Podman service (start-podman-service): socket, pid, log.
SERVICE_DIR="${KINDSLURM_PODMAN_SERVICE_DIR:-/run/kindslurm-testbed/podman}"
SERVICE_SOCKET="${SERVICE_DIR}/podman.sock"
SERVICE_PIDFILE="${SERVICE_DIR}/service.pid"
SERVICE_LOG="/var/log/kindslurm-testbed/podman-service.log"
SERVICE_GROUP_DEFAULT="kindslurm-podman"
# busybox-static gives the stand-in node its userland; bash-static its /bin/sh
# (see build_rootfs for why busybox's own sh cannot be the node's sh).
DEBIAN_PACKAGES=(podman runc uidmap slirp4netns busybox-static bash-static)

log() { printf '[kind.sh] %s\n' "$*" >&2; }
die() { printf '[kind.sh] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<EOF
Usage: $(basename "$0") <command> [options]

Kind/Podman test bed for snakemake-executor-plugin-kindslurm.

Commands:
  install                     Install Debian packages (${DEBIAN_PACKAGES[*]}),
                              configure Podman (runc, cgroupfs, file events
                              logger, ulimits) in /etc/containers/containers.conf,
                              create /lib/modules, and install the real \`kind\`
                              binary from Debian ${KIND_SUITE} into ${KIND_BIN_DEST}
                              unless \`kind\` is already on PATH. Idempotent. Root.
  build-standin-image [TAG] [--force]
                              Build the stand-in Kind node image
                              ${IMAGE_REPO}:TAG (default TAG: latest) and its
                              variant ${IMAGE_REPO}:${NEVER_READY_TAG} whose init never
                              reports readiness (kind create must then fail).
                              An image already built from the same files is
                              kept (content hash label) unless --force.
  start-podman-service [--group G] [--user U]...
                              Start a rootful Podman API service on
                              unix://${SERVICE_SOCKET}
                              whose socket group G (default ${SERVICE_GROUP_DEFAULT})
                              may use; create G and add each U to it. Members
                              then run kind as themselves with
                              CONTAINER_HOST=unix://${SERVICE_SOCKET}
                              on a host where rootless kind cannot work (cgroup
                              v1). Like the docker group, membership is
                              root-equivalent. Idempotent. Root.
  stop-podman-service         Stop that service (its containers stay).
  service-url                 Print the CONTAINER_HOST value for the service.
  status                      Print kind and podman versions and whether the
                              stand-in images exist and are up to date; exits
                              1 when something is missing or stale.
  -h, --help                  Show this help.

The stand-in image has no kubelet or API server: it only answers the commands
the real kind binary runs inside a node. Files: ${STANDIN_DIR}
Use it with:  KIND_EXPERIMENTAL_PROVIDER=podman kind create cluster \\
                --image ${IMAGE_REPO}:latest --name NAME --kubeconfig FILE
EOF
}

need_root() {
    [[ "$(id -u)" -eq 0 ]] || die "'$1' must run as root"
}

# ---------------------------------------------------------------- install ---

install_debian_packages() {
    local missing=() p
    for p in "${DEBIAN_PACKAGES[@]}"; do
        # `dpkg-query -W -f '${Status}'` is the reliable "is it installed"
        # test (dpkg -l also lists removed-but-configured packages).
        if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "Debian packages already installed: ${DEBIAN_PACKAGES[*]}"
        return
    fi
    log "installing Debian packages: ${missing[*]}"
    # Only refresh the package lists when we actually need to install: an
    # update costs seconds and touches the network.
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Set KEY = VALUE inside [SECTION] of a TOML-ish containers.conf, keeping every
# other line (comments, other keys, other tables) as it is. An existing
# uncommented KEY in that section is replaced (a multi-line array value is
# replaced as a whole); a missing key is added at the end of the section; a
# missing section is appended. VALUE is written verbatim (already TOML-quoted).
# Written in awk because no TOML tool can be assumed on the host.
conf_set() {
    local file="$1" section="$2" key="$3" value="$4" tmp
    tmp="$(mktemp "${file}.XXXXXX")"
    awk -v section="$section" -v key="$key" -v value="$value" '
        function depth(s,   t) { t = s; gsub(/"[^"]*"/, "", t); sub(/#.*/, "", t)
                                 return gsub(/\[/, "", t) - gsub(/\]/, "", t) }
        function flush_blanks() { for (; blanks > 0; blanks--) print "" }
        # blank lines are held back so that a key added at the end of a
        # section goes right after its last setting, not after the gap
        skipping { open += depth($0); if (open <= 0) skipping = 0; next }
        /^[[:space:]]*$/ { blanks++; next }
        /^[[:space:]]*\[[^]]+\][[:space:]]*(#.*)?$/ {
            if (in_section && !done) { print key " = " value; done = 1 }
            flush_blanks()
            name = $0
            sub(/#.*/, "", name)
            gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", name)
            in_section = (name == section)
            if (in_section) seen = 1
            print
            next
        }
        {
            flush_blanks()
            if (in_section && match($0, "^[[:space:]]*" key "[[:space:]]*=")) {
                if (!done) { print key " = " value; done = 1 }
                # old value spanning several lines: drop up to its closing ]
                v = substr($0, RSTART + RLENGTH)
                open = depth(v)
                if (open > 0) skipping = 1
                next
            }
            print
        }
        END {
            if (in_section && !done) { print key " = " value; done = 1 }
            flush_blanks()
            if (!seen) { print ""; print "[" section "]"; print key " = " value }
        }
    ' "$file" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$file"
}

configure_podman() {
    # WHY: crun (Debian default) fails on this cgroup v1 "hybrid" host
    # ("cgroups in hybrid mode not supported", setrlimit errors); runc works.
    # There is no systemd as PID 1, so the cgroup manager must be cgroupfs and
    # the events logger must be a file (the journald one needs systemd).
    # The hard nofile limit of the host is 20000: the default ulimits of Podman
    # ask for more and make every container fail to start.
    local conf=/etc/containers/containers.conf
    mkdir -p /etc/containers
    if [[ ! -e "$conf" ]]; then
        printf '# Written by kindslurm testbed/kind.sh (see the comments there).\n' >"$conf"
    fi
    conf_set "$conf" containers default_ulimits '["nofile=20000:20000", "nproc=32768:32768"]'
    conf_set "$conf" engine runtime '"runc"'
    conf_set "$conf" engine cgroup_manager '"cgroupfs"'
    conf_set "$conf" engine events_logger '"file"'
    log "Podman configured in $conf"
    # kind bind-mounts /lib/modules read-only into every node; the mount fails
    # when the host directory does not exist (containers without a kernel
    # module tree, like this VM).
    mkdir -p /lib/modules
}

# The Debian mirror this machine already uses, so we fetch kind from the same
# place (and through the same proxy/snapshot setup, if any).
debian_mirror() {
    local m=""
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        # deb822: take the first URIs: of a stanza that is not the security
        # archive (security has no `trixie main` of its own).
        m="$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
            /etc/apt/sources.list.d/debian.sources)"
    fi
    if [[ -z "$m" && -r /etc/apt/sources.list ]]; then
        m="$(awk '$1 == "deb" {
                for (i = 2; i <= NF; i++) {
                    if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; continue }
                    if ($i !~ /security/) print $i
                    break
                }
            }' /etc/apt/sources.list | head -n1)"
    fi
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

install_kind_binary() {
    if command -v kind >/dev/null 2>&1; then
        log "kind already on PATH: $(command -v kind)"
        return
    fi
    local mirror work keyring apt_opts deb
    mirror="$(debian_mirror)"
    work="$(mktemp -d /tmp/kindslurm-kind-deb.XXXXXX)"
    # shellcheck disable=SC2064  # expand $work now, the local is gone later
    trap "rm -rf '$work'" RETURN
    # apt drops privileges to _apt for downloads; let it write into our
    # private state so the download stays sandboxed (no "unsandboxed" warning).
    chmod 0755 "$work"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/dl"
    if id _apt >/dev/null 2>&1; then
        chown -R _apt "$work/lists" "$work/cache" "$work/dl"
    fi
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    # Private apt state: the system's sources, lists and cache are untouched.
    # The Release file is verified with the normal Debian keyring (bookworm's
    # debian-archive-keyring already carries the trixie keys).
    if [[ -r "$keyring" ]]; then
        printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$KIND_SUITE" >"$work/sources.list"
    else
        printf 'deb %s %s main\n' "$mirror" "$KIND_SUITE" >"$work/sources.list"
    fi
    apt_opts=(
        -o "Dir::State::Lists=$work/lists"
        -o "Dir::Etc::SourceList=$work/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::Cache=$work/cache"
        # The private cache must not pick up the system's pinning of bookworm.
        -o "Dir::Etc::Preferences=/dev/null"
        -o "Dir::Etc::PreferencesParts=/dev/null"
    )
    log "fetching the kind .deb from $mirror $KIND_SUITE (private apt state in $work)"
    if ! apt-get "${apt_opts[@]}" -qq update; then
        # Last resort for hosts whose keyring predates the suite's keys: the
        # .deb is still checked against the (unverified) Packages checksums.
        log "signed update failed; retrying with APT::Get::AllowUnauthenticated"
        printf 'deb [trusted=yes] %s %s main\n' "$mirror" "$KIND_SUITE" >"$work/sources.list"
        apt_opts+=(-o "APT::Get::AllowUnauthenticated=true")
        apt-get "${apt_opts[@]}" -qq update
    fi
    (cd "$work/dl" && apt-get "${apt_opts[@]}" -qq download kind)
    deb="$(find "$work/dl" -maxdepth 1 -name 'kind_*.deb' | head -n1)"
    [[ -n "$deb" ]] || die "apt-get download kind produced no .deb"
    dpkg -x "$deb" "$work/x"
    [[ -x "$work/x/usr/bin/kind" ]] || die "no usr/bin/kind in $deb"
    install -m 0755 "$work/x/usr/bin/kind" "$KIND_BIN_DEST"
    log "installed $(basename "$deb") -> $KIND_BIN_DEST"
}

cmd_install() {
    need_root install
    install_debian_packages
    configure_podman
    install_kind_binary
    kind version
}

# ------------------------------------------------------ stand-in node image ---

# Changing anything that goes into the image changes this hash; the hash is
# stored as an image label so a stale image is rebuilt without --force.
# Bump the recipe number when the build steps below change.
STANDIN_RECIPE=2
standin_content_hash() {
    local versions
    versions="$(dpkg-query -W -f='${Package}=${Version} ' busybox-static bash-static 2>/dev/null || echo unknown)"
    {
        echo "recipe=$STANDIN_RECIPE $versions"
        (cd "$STANDIN_DIR/rootfs" && find . -printf '%p %y %l\n' | LC_ALL=C sort)
        (cd "$STANDIN_DIR/rootfs" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-16
}

image_label() { # image label -> value (empty when the image or label is missing)
    podman image inspect --format "{{ index .Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# Path of FILE as installed by Debian package PKG (empty when not installed).
package_file() { # PKG FILE-SUFFIX
    dpkg-query -L "$1" 2>/dev/null | grep -m1 -- "$2\$" || true
}

build_rootfs() { # DIR: busybox-static + bash-static + the reviewed overlay
    local dir="$1" busybox bash applet
    busybox="$(package_file busybox-static /bin/busybox)"
    bash="$(package_file bash-static /bin/bash-static)"
    [[ -n "$busybox" && -x "$busybox" ]] || die "busybox-static is not installed (run: $0 install)"
    [[ -n "$bash" && -x "$bash" ]] || die "bash-static is not installed (run: $0 install)"
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,root,proc,sys,dev,run,tmp,var/log,var/lib,lib/modules,kind}
    chmod 1777 "$dir/tmp"
    install -m 0755 "$busybox" "$dir/bin/busybox"
    # WHY /bin/sh is bash: Debian's busybox sh runs its built-in applets in
    # preference to PATH, so `sh -c 'tar --hard-dereference ...'` (what
    # `kind export logs` runs) would reach busybox tar, which rejects that GNU
    # option, and the node's /var/log would silently be missing from the
    # export. bash looks commands up in PATH, where /usr/local/bin/tar (a
    # front for busybox tar) comes first.
    install -m 0755 "$bash" "$dir/bin/bash"
    ln -s bash "$dir/bin/sh"
    # One symlink per busybox applet, except where the overlay ships its own
    # stand-in of that command (e.g. tar) so there is a single, reviewed
    # implementation on PATH, and except /bin/sh (bash, above).
    while read -r applet; do
        [[ -e "$STANDIN_DIR/rootfs/usr/local/bin/${applet##*/}" ]] && continue
        [[ -e "$dir/$applet" || -L "$dir/$applet" ]] && continue
        mkdir -p "$dir/$(dirname "$applet")"
        ln -s /bin/busybox "$dir/$applet"
    done < <("$busybox" --list-full)
    cp -R "$STANDIN_DIR/rootfs/." "$dir/"
    # Modes are set here, not taken from the checkout: an installed package
    # (wheel, sdist) or a checkout with another umask must give the same image.
    (cd "$STANDIN_DIR/rootfs" && find . -type d -print0) | (cd "$dir" && xargs -0 chmod 0755)
    (cd "$STANDIN_DIR/rootfs" && find . -type f -print0) | (cd "$dir" && xargs -0 chmod 0644)
    chmod 0755 "$dir"/usr/local/bin/*
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

import_image() { # DIR REF HASH [extra --change args...]
    local dir="$1" ref="$2" hash="$3"
    shift 3
    # tar as root:root with sorted names: the content does not depend on who
    # checked the repository out.
    tar --numeric-owner --owner=0 --group=0 --sort=name -C "$dir" -c . |
        podman import --quiet \
            --change 'ENTRYPOINT ["/usr/local/bin/standin-init"]' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'STOPSIGNAL SIGTERM' \
            --change 'LABEL io.kindslurm.standin=true' \
            --change "LABEL io.kindslurm.standin.content-hash=$hash" \
            --change 'LABEL org.opencontainers.image.title=kindslurm-standin-node' \
            --change 'LABEL org.opencontainers.image.description="STAND-IN Kind node for tests: busybox, no kubelet or API server; answers only the commands kind runs in a node"' \
            "$@" - "$ref" >/dev/null
}

cmd_build_standin_image() {
    local tag=latest force=0 arg hash work ref nr_ref built=0
    for arg in "$@"; do
        case "$arg" in
            --force) force=1 ;;
            -*) die "unknown option: $arg" ;;
            *) tag="$arg" ;;
        esac
    done
    [[ "$tag" != "$NEVER_READY_TAG" ]] || die "tag '$NEVER_READY_TAG' is reserved for the never-ready variant"
    command -v podman >/dev/null || die "podman is not installed (run: $0 install)"
    ref="$IMAGE_REPO:$tag"
    nr_ref="$IMAGE_REPO:$NEVER_READY_TAG"
    hash="$(standin_content_hash)"
    work="$(mktemp -d /tmp/kindslurm-standin-rootfs.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    build_rootfs "$work/rootfs"

    if ((force == 0)) && [[ "$(image_label "$ref" io.kindslurm.standin.content-hash)" == "$hash" ]]; then
        log "$ref is up to date (content hash $hash)"
    else
        import_image "$work/rootfs" "$ref" "$hash"
        log "built $ref (content hash $hash)"
        built=1
    fi
    # Same files; only the init is told never to print the ready line, so
    # `kind create` times out waiting for it and removes the node.
    if ((force == 0)) && [[ "$(image_label "$nr_ref" io.kindslurm.standin.content-hash)" == "$hash" ]]; then
        log "$nr_ref is up to date (content hash $hash)"
    else
        import_image "$work/rootfs" "$nr_ref" "$hash" \
            --change 'ENV STANDIN_NEVER_READY=1' \
            --change 'LABEL io.kindslurm.standin.never-ready=true'
        log "built $nr_ref (content hash $hash)"
        built=1
    fi
    if ((built)); then
        # re-tagging leaves the previous build as a dangling <none> image
        podman image prune -f --filter "label=io.kindslurm.standin=true" >/dev/null 2>&1 || true
    fi
    podman images --filter "reference=$IMAGE_REPO" >&2
}

cmd_status() {
    local ref hash have ok=0
    if command -v kind >/dev/null 2>&1; then
        echo "kind:    $(kind version)"
    else
        echo "kind:    MISSING (run: $0 install)"
        ok=1
    fi
    if command -v podman >/dev/null 2>&1; then
        echo "podman:  $(podman version --format '{{.Client.Version}}' 2>/dev/null || echo 'installed, not working')"
        echo "runtime: $(podman info --format '{{.Host.OCIRuntime.Name}} cgroup-manager={{.Host.CgroupManager}} cgroups={{.Host.CgroupsVersion}}' 2>/dev/null || echo unknown)"
    else
        echo "podman:  MISSING (run: $0 install)"
        ok=1
    fi
    hash="$(standin_content_hash 2>/dev/null || echo unknown)"
    for ref in "$IMAGE_REPO:latest" "$IMAGE_REPO:$NEVER_READY_TAG"; do
        if command -v podman >/dev/null 2>&1 && podman image exists "$ref" 2>/dev/null; then
            have="$(image_label "$ref" io.kindslurm.standin.content-hash)"
            if [[ "$have" == "$hash" ]]; then
                echo "image:   $ref present (up to date)"
            else
                echo "image:   $ref present (STALE: built from older files; run: $0 build-standin-image)"
                ok=1
            fi
        else
            echo "image:   $ref MISSING (run: $0 build-standin-image)"
            ok=1
        fi
    done
    return "$ok"
}

# ------------------------------------------------- shared Podman service ---
# WHY: rootless kind needs cgroup v2 with delegation, which hosts booted with
# cgroup v1 (this test bed's among them) cannot give. A rootful Podman service
# reached over a group-owned socket lets several regular users create kind
# clusters at once, each as themselves (own kubeconfig, own state, own labels),
# the way a docker group does on Docker hosts.

service_pid() {
    local pid
    pid="$(cat "$SERVICE_PIDFILE" 2>/dev/null)" || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

service_answers() {
    CONTAINER_HOST="unix://${SERVICE_SOCKET}" podman --remote version >/dev/null 2>&1
}

cmd_start_podman_service() {
    need_root start-podman-service
    local group="$SERVICE_GROUP_DEFAULT" users=() user pid
    while (($#)); do
        case "$1" in
            --group) group="${2:?--group needs a name}"; shift 2 ;;
            --user) users+=("${2:?--user needs a name}"); shift 2 ;;
            *) die "start-podman-service: unknown option $1" ;;
        esac
    done
    command -v podman >/dev/null 2>&1 || die "podman is not installed (run: $0 install)"
    getent group "$group" >/dev/null || groupadd --system "$group"
    for user in "${users[@]}"; do
        id "$user" >/dev/null 2>&1 || die "no such user: $user"
        usermod -aG "$group" "$user"
    done
    mkdir -p "$SERVICE_DIR" "$(dirname "$SERVICE_LOG")"
    chgrp "$group" "$SERVICE_DIR"
    chmod 0750 "$SERVICE_DIR"
    if ! service_pid >/dev/null || ! service_answers; then
        if pid="$(service_pid)"; then kill "$pid" 2>/dev/null || true; fi
        rm -f "$SERVICE_SOCKET"
        log "starting the rootful Podman service on unix://${SERVICE_SOCKET}"
        # setsid + env -i: detached from this shell's session (see slurm.sh
        # launch), with a plain environment; --time=0: never exit when idle.
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            setsid podman system service --time=0 "unix://${SERVICE_SOCKET}" \
            </dev/null >>"$SERVICE_LOG" 2>&1 &
        printf '%s\n' "$!" >"$SERVICE_PIDFILE"
        local end=$((SECONDS + 30))
        until [[ -S $SERVICE_SOCKET ]] && service_answers; do
            if ((SECONDS > end)) || ! service_pid >/dev/null; then
                tail -n 20 "$SERVICE_LOG" >&2 || true
                die "the Podman service did not come up (log: $SERVICE_LOG)"
            fi
            sleep 0.2
        done
    fi
    # podman creates the socket 0600 root:root; the group gets read/write.
    chgrp "$group" "$SERVICE_SOCKET"
    chmod 0660 "$SERVICE_SOCKET"
    log "Podman service up: CONTAINER_HOST=unix://${SERVICE_SOCKET} (group $group${users:+: ${users[*]}})"
}

cmd_stop_podman_service() {
    need_root stop-podman-service
    local pid
    if pid="$(service_pid)"; then
        kill "$pid"
        local end=$((SECONDS + 15))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        log "stopped the Podman service (pid $pid)"
    fi
    rm -f "$SERVICE_SOCKET" "$SERVICE_PIDFILE"
}

main() {
    case "${1:-}" in
        install) shift; cmd_install "$@" ;;
        start-podman-service) shift; cmd_start_podman_service "$@" ;;
        stop-podman-service) shift; cmd_stop_podman_service "$@" ;;
        service-url) echo "unix://${SERVICE_SOCKET}" ;;
        build-standin-image) shift; cmd_build_standin_image "$@" ;;
        status) shift; cmd_status "$@" ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}
main "$@"
