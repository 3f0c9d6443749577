#!/usr/bin/env bash
# The first thing to run, as root on a fresh Debian 12 machine:
#
#     bash scripts/demo.sh
#
# Sets the machine up (scripts/setup.sh: packages, .venv, a single-node Slurm,
# Podman + kind, the stand-in node image), then runs the example workflow
# example-workflows/mixed-pipeline through `snakemake --executor kindslurm` on
# that Slurm, in a copy under /var/tmp (or $KINDSLURM_DEMO_DIR):
#
# - with a real Kind node image (KINDSLURM_NODE_IMAGE, or a kindest/node image
#   in the container storage): the whole example, Kubernetes Jobs included;
# - otherwise (no container registry, as on the machines this project is built
#   on): the example's plain Slurm steps for real, then the executor's cluster
#   lifecycle with the stand-in node image through scripts/demo/
#   standin-lifecycle.smk. The stand-in has no Kubernetes API, so the example's
#   kubectl steps cannot run, and the summary says so.
#
# Exits non-zero on any failure. Environment: KINDSLURM_NODE_IMAGE,
# KINDSLURM_PROVIDER (podman or docker; default podman), KINDSLURM_DEMO_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
example=mixed-pipeline
standin_image=localhost/kindslurm-standin-node:latest
provider=${KINDSLURM_PROVIDER:-podman}

say() { printf '\n[demo %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf '\n[demo] FAILED: %s\n' "$*" >&2; exit 1; }
on_error() {
    local code=$?
    printf '\n[demo] FAILED (exit %s) at line %s: %s\n' "$code" "$1" "$2" >&2
    if [ -n "${run_dir:-}" ]; then
        printf '[demo] outputs and logs so far: %s\n' "$run_dir" >&2
    fi
    exit "$code"
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR

if [ "$(id -u)" != 0 ]; then
    echo "scripts/demo.sh must run as root (it runs scripts/setup.sh, and kind needs root on cgroup v1)" >&2
    exit 2
fi

say "setting up this machine: bash scripts/setup.sh"
bash "$root/scripts/setup.sh"
py=$root/.venv/bin/python

image=${KINDSLURM_NODE_IMAGE:-}
if [ -z "$image" ]; then
    image=$("$provider" images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null \
        | grep -m1 -E '(^|/)kindest/node:v' || true)
fi

demo_base=${KINDSLURM_DEMO_DIR:-/var/tmp}
mkdir -p "$demo_base"
run_dir=$(mktemp -d "$demo_base/kindslurm-demo.XXXXXX")
cp -r "$root/example-workflows/$example" "$run_dir/"
workdir=$run_dir/$example
cd "$workdir"
say "running in a copy of example-workflows/$example: $workdir"

# Snakemake with the example's own profile; the output also goes to a log file.
snakemake() {
    local log=$1
    shift
    "$py" -m snakemake --workflow-profile profiles/kindslurm --kindslurm-provider "$provider" \
        --kindslurm-keep-successful-logs "$@" 2>&1 | tee "$run_dir/$log"
}

# The clusters named in a file, and a check that none of their nodes is left.
nodes_left() {
    local name
    for name in "$@"; do
        "$provider" ps -a --filter "label=io.x-k8s.kind.cluster=$name" --format '{{.Names}}'
    done
}

slurm_jobs() { cat "$@" | grep -c 'as Slurm job' || true; }

outputs_and_logs() {
    cat <<EOF
Where things are:
  workflow directory (outputs):  $workdir
  Snakemake's output:            $run_dir/*.log
  Slurm job logs (one per job):  $workdir/.snakemake/kindslurm_logs/
  Snakemake run logs:            $workdir/.snakemake/log/
EOF
}

if [ -n "$image" ]; then
    # ------------------------------------------------------------ real Kind ---
    say "real Kind node image $image: running the whole example"
    snakemake real-run.log --kindslurm-node-image "$image"
    [ -s results/report.md ] || die "results/report.md was not written"
    mapfile -t clusters < <(cut -f3 work/where/*.tsv | grep -v '^none$' | sort -u)
    left=$(nodes_left "${clusters[@]}")
    [ -z "$left" ] || die "Kind node containers left behind: $left"
    say "results/report.md:"
    cat results/report.md
    cat <<EOF

======================================================================
kindslurm demo: OK (real Kind node image $image, provider $provider)

Exercised end to end: $(slurm_jobs "$run_dir/real-run.log") Slurm jobs on the local Slurm; plain
steps without a cluster, Kubernetes Jobs in throw-away Kind clusters
(${#clusters[@]} clusters: ${clusters[*]}), files shared through /app, and
every cluster deleted afterwards. See "Where each step ran" in the report.

$(outputs_and_logs)
  the report:                    $workdir/results/report.md
======================================================================
EOF
    exit 0
fi

# ---------------------------------------------------------------- stand-in ---
say "no real Kind node image here (KINDSLURM_NODE_IMAGE is unset and there is no kindest/node image): using the stand-in $standin_image"
if [ "$provider" != podman ]; then
    say "the stand-in image lives in Podman's storage (scripts/setup.sh): using provider podman, not $provider"
    provider=podman
fi
"$provider" image exists "$standin_image" || die "stand-in image $standin_image is missing (scripts/setup.sh builds it)"

say "1/2: the example's plain Slurm steps (kind_cluster=0), for real: target work/samples.tsv"
snakemake plain-steps.log work/samples.tsv
for file in work/words/batch.txt work/words/cluster.txt work/samples.tsv; do
    [ -s "$file" ] || die "$file was not written"
done
# What is left of the example: its "Job stats" table of a dry run.
"$py" -m snakemake --workflow-profile profiles/kindslurm --dry-run > "$run_dir/dry-run.log" 2>&1
not_run=$(awk '/^Job stats:/ {table = 1; getline; getline; next}
               table && $1 == "total" {exit}
               table && NF == 2 && $1 != "all" {printf "%s%s", sep, $1; sep = ", "}' \
    "$run_dir/dry-run.log")

say "2/2: the executor's Kind cluster lifecycle with the stand-in node image (scripts/demo/standin-lifecycle.smk)"
snakemake standin-lifecycle.log --snakefile "$root/scripts/demo/standin-lifecycle.smk" \
    --kindslurm-node-image "$standin_image" --config runtime="$provider"
single=$(sed -n 's/^K8S_CLUSTER_NAME: //p' demo-standin/cluster.txt)
read -r group_first group_second < demo-standin/group-second.txt
[ -n "$single" ] || die "no cluster name in demo-standin/cluster.txt"
[ "$group_first" = "$group_second" ] || die "the group's rules got different clusters: $group_first, $group_second"
[ "$single" != "$group_first" ] || die "the group job reused the single job's cluster"
grep -q "^kubeconfig context: $single\$" demo-standin/cluster.txt \
    || die "the kubeconfig's context is not named like the cluster"
grep -q 'written inside the Kind node' demo-standin/from-node.txt || die "/app write from the node missing"
left=$(nodes_left "$single" "$group_first")
[ -z "$left" ] || die "Kind node containers left behind: $left"

say "what the cluster job saw (demo-standin/cluster.txt):"
cat demo-standin/cluster.txt
cat demo-standin/from-node.txt

cat <<EOF

======================================================================
kindslurm demo: OK, with the STAND-IN node image.

Kubernetes itself was NOT exercised: no real Kind node image is available on
this machine, and the stand-in node image ($standin_image)
has no API server, kubelet or container runtime. No Pod or Job ran. Not run
(they need a Kubernetes API, or its results): ${not_run:-?}.

What did run, for real:
- Slurm: $(slurm_jobs "$run_dir/plain-steps.log" "$run_dir/standin-lifecycle.log") batch jobs on the local single-node Slurm, submitted and
  followed by the kindslurm executor.
- The example's plain steps (kind_cluster=0, no cluster created):
  work/words/*.txt and work/samples.tsv.
- The Kind lifecycle, twice (one single-rule job, one group job of two rules
  sharing one cluster): the real kind binary created a cluster with Podman
  inside the Slurm job, the rules saw K8S_CLUSTER_NAME and a private
  KUBECONFIG whose context is that name, the workflow directory was mounted
  in the node at /app (the node saw the plain steps' files and wrote
  demo-standin/from-node.txt to the host), and both clusters were deleted:
  $single and $group_first, no node container left.

To run the example completely, use a machine that can pull kindest/node
images, e.g. KINDSLURM_NODE_IMAGE=kindest/node:v1.32.2 bash scripts/demo.sh
(the hosted CI runs every example so: .github/workflows/ci.yml).

$(outputs_and_logs)
======================================================================
EOF
