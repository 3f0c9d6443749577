# Shared helpers of the kindslurm STAND-IN Kind node (sourced by busybox sh).
#
# This node has no kubelet, no API server and no containerd. Its commands only
# answer what the real `kind` binary runs inside a node, so that kind's
# create / kubeconfig export / load / export logs / delete flow can run here.

# shellcheck disable=SC2034  # used by the scripts that source this file
STANDIN_LOG_DIR=/var/log/standin
STANDIN_IMAGE_DIR=/var/lib/standin-images
STANDIN_IMAGE_INDEX=$STANDIN_IMAGE_DIR/index.tsv
STANDIN_MANIFEST_DIR=/var/lib/standin/manifests

# Every stand-in command records its argv: the log shows which calls kind
# made (and `kind export logs` collects /var/log, so it ends up there too).
standin_log_call() {
    mkdir -p "$STANDIN_LOG_DIR" 2>/dev/null || return 0
    printf '%s %s' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(basename "$0")" >>"$STANDIN_LOG_DIR/calls.log" 2>/dev/null || return 0
    for a in "$@"; do printf ' %s' "'$a'"; done >>"$STANDIN_LOG_DIR/calls.log" 2>/dev/null
    printf '\n' >>"$STANDIN_LOG_DIR/calls.log" 2>/dev/null
    return 0
}

standin_node_name() {
    hostname 2>/dev/null || cat /etc/hostname
}

standin_kube_version() {
    cat /kind/version 2>/dev/null || echo v0.0.0-standin
}

# Value of a top-level-ish `key: value` line in /kind/kubeadm.conf (written by
# kind before `kubeadm init`), without quotes. Empty when absent.
standin_kubeadm_conf_value() {
    [ -r /kind/kubeadm.conf ] || return 0
    sed -n "s/^[[:space:]]*$1:[[:space:]]*//p" /kind/kubeadm.conf | head -n1 | tr -d "\"'"
}

# Normalize an image reference the way containerd/CRI names images:
# no registry -> docker.io, no namespace on docker.io -> library/, no tag -> :latest.
standin_normalize_ref() {
    ref=$1
    case "$ref" in *@sha256:*) printf '%s\n' "$ref"; return 0 ;; esac
    first=${ref%%/*}
    if [ "$first" = "$ref" ]; then
        ref="docker.io/library/$ref"
    else
        case "$first" in
            *.*|*:*|localhost) ;;
            *) ref="docker.io/$ref" ;;
        esac
    fi
    last=${ref##*/}
    case "$last" in *:*) ;; *) ref="$ref:latest" ;; esac
    printf '%s\n' "$ref"
}

# Look up an image in the index of archives loaded with `ctr images import`;
# prints "ref<TAB>id<TAB>archive<TAB>size" and succeeds when found.
standin_find_image() {
    [ -r "$STANDIN_IMAGE_INDEX" ] || return 1
    want=$(standin_normalize_ref "$1")
    awk -F '\t' -v want="$want" -v raw="$1" '
        $1 == want || $1 == raw || $2 == raw || $2 == "sha256:" raw { line = $0 }
        END { if (line == "") exit 1; print line }
    ' "$STANDIN_IMAGE_INDEX"
}
