# Demo only (scripts/demo.sh, when no real Kind node image is available).
#
# The example workflows talk to the Kubernetes API (kubectl apply / wait /
# logs), which the stand-in node image does not have. This workflow exercises
# everything of the executor that does not need that API, with the example's
# profile and working directory: a Slurm job gets a Kind cluster of its own,
# sees $K8S_CLUSTER_NAME and a private KUBECONFIG whose context has that name,
# the working directory is shared with the Kind node at /app, and two rules of
# one group share one cluster. It runs the node's commands with the container
# runtime directly (config `runtime`, default podman), which a real workflow
# never needs to do.

RUNTIME = config.get("runtime", "podman")
OUT = "demo-standin"

localrules:
    all,


rule all:
    input:
        f"{OUT}/cluster.txt",
        f"{OUT}/from-node.txt",
        f"{OUT}/group-second.txt",


rule cluster:
    output:
        info=f"{OUT}/cluster.txt",
        node=f"{OUT}/from-node.txt",
    shell:
        r"""
        node="$K8S_CLUSTER_NAME-control-plane"
        view() {{ kubectl --context "$K8S_CLUSTER_NAME" config view --minify -o jsonpath="$1"; }}
        {{
            echo "K8S_CLUSTER_NAME: $K8S_CLUSTER_NAME"
            echo "KUBECONFIG: $KUBECONFIG"
            echo "kubeconfig context: $(view '{{.contexts[0].name}}')"
            echo "API server address: $(view '{{.clusters[0].cluster.server}}')"
            echo "/app/work/words as seen inside the node $node:" \
                "$({RUNTIME} exec "$node" ls /app/work/words | tr '\n' ' ')"
        }} > {output.info:q}
        {RUNTIME} exec "$node" sh -c 'echo "written inside the Kind node $(hostname) to /app/{output.node}" > /app/{output.node}'
        """


rule group_first:
    output:
        f"{OUT}/group-first.txt",
    group:
        "pair"
    shell:
        'echo "$K8S_CLUSTER_NAME" > {output:q}'


rule group_second:
    input:
        f"{OUT}/group-first.txt",
    output:
        f"{OUT}/group-second.txt",
    group:
        "pair"
    shell:
        'echo "$(cat {input:q}) $K8S_CLUSTER_NAME" > {output:q}'
