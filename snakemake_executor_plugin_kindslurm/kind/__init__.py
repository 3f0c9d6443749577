"""Kind cluster pieces of the lifecycle runner, one concern per module.

- naming: cluster name, container labels, the per-user state record
- config: the kind config (generate, validate, merge, /app mount)
- kubeconfig: the private kubeconfig and its `<cluster name>` context
- cluster: kind / runtime argv builders, the label shim, the `kind` network,
  the cleanup state machine
- preflight: is this node ready for Kind (also `kindslurm doctor`)
- lock: the optional per-node create lock

Nothing is imported here: the runner imports what it needs lazily, so a job
without a cluster never loads PyYAML.
"""
