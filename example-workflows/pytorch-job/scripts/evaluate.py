"""Snakemake script of rule `evaluate`: test-set error of the model the Job trained.

Runs as a plain Slurm job (no Kind cluster), on the file the Kubernetes Job
wrote into the workflow directory through /app.
"""

import csv
import json


def main(model_path: str, test_path: str, output: str) -> None:
    with open(model_path) as handle:
        model = json.load(handle)
    weight, bias = float(model["weight"]), float(model["bias"])
    with open(test_path, newline="") as handle:
        points = [(float(row["x"]), float(row["y"])) for row in csv.DictReader(handle)]
    mse = sum((weight * x + bias - y) ** 2 for x, y in points) / len(points)
    lines = [
        f"model\t{model_path}",
        f"weight\t{weight:.6f}",
        f"bias\t{bias:.6f}",
        f"train_mse\t{float(model['train_mse']):.6f}",
        f"test_points\t{len(points)}",
        f"test_mse\t{mse:.6f}",
    ]
    with open(output, "w") as handle:
        handle.write("\n".join(lines) + "\n")


main(snakemake.input.model, snakemake.input.test, snakemake.output[0])  # type: ignore[name-defined]  # noqa: F821
