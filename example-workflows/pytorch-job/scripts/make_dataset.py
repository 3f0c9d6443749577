"""Snakemake script of rule `make_dataset`: a noisy line y = slope*x + intercept as CSV.

Runs as a plain Slurm job (no Kind cluster). Deterministic for a given seed.
"""

import csv
import random


def write_points(path: str, points: list[tuple[float, float]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y"])
        writer.writerows((f"{x:.6f}", f"{y:.6f}") for x, y in points)


def main(params, train_path: str, test_path: str) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(int(params.seed))
    slope, intercept, noise = float(params.slope), float(params.intercept), float(params.noise)

    def point() -> tuple[float, float]:
        x = rng.uniform(-1.0, 1.0)
        return x, slope * x + intercept + rng.gauss(0.0, noise)

    write_points(train_path, [point() for _ in range(int(params.train_size))])
    write_points(test_path, [point() for _ in range(int(params.test_size))])


main(snakemake.params, snakemake.output.train, snakemake.output.test)  # type: ignore[name-defined]  # noqa: F821
