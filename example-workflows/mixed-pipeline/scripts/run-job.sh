#!/usr/bin/env bash
# Run one Kubernetes Job of this workflow in the Snakemake job's Kind cluster
# and wait for it to complete.
#
#   bash scripts/run-job.sh NAMESPACE MANIFEST LOGFILE TIMEOUT [KEY=VALUE ...]
#
# Creates NAMESPACE and in it the ConfigMap `job-params` from the KEY=VALUE
# pairs (the manifests read it with envFrom), applies MANIFEST there, waits up
# to TIMEOUT (e.g. 15m) for the Job to complete and saves its logs to LOGFILE.
# On failure it prints the Job's description and logs and exits 1.
#
# K8S_CLUSTER_NAME and KUBECONFIG are set by the kindslurm executor; the
# kubeconfig's context has the cluster's name.
set -euo pipefail
if (($# < 4)); then
    echo "usage: $0 NAMESPACE MANIFEST LOGFILE TIMEOUT [KEY=VALUE ...]" >&2
    exit 2
fi
namespace=$1 manifest=$2 logfile=$3 timeout=$4
shift 4
: "${K8S_CLUSTER_NAME:?not set: run this inside a kindslurm job with a Kind cluster}"

in_namespace() { kubectl --context "$K8S_CLUSTER_NAME" --namespace "$namespace" "$@"; }

kubectl --context "$K8S_CLUSTER_NAME" create namespace "$namespace"
literals=()
for pair in "$@"; do
    literals+=("--from-literal=$pair")
done
in_namespace create configmap job-params "${literals[@]}"
job=$(in_namespace apply -f "$manifest" -o name)
echo "$job applied in namespace $namespace of cluster $K8S_CLUSTER_NAME"
if ! in_namespace wait --for=condition=complete "$job" --timeout="$timeout"; then
    in_namespace describe "$job" >&2 || true
    in_namespace logs "$job" >&2 || true
    echo "$job in namespace $namespace did not complete within $timeout" >&2
    exit 1
fi
in_namespace logs "$job" > "$logfile"
