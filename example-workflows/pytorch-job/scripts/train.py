"""Training program of the Kubernetes Job in manifests/train-job.yaml.

Runs in the Job's container (python:3.11-slim, standard library only) with
the workflow directory mounted at /app and /app as its working directory, so
the relative paths it gets from the ConfigMap `train-params` are the same
paths Snakemake uses on the host:

    TRAIN_DATA      CSV with columns x,y        (written by rule make_dataset)
    MODEL_OUT       JSON model to write         (read by rule evaluate)
    EPOCHS          full passes of gradient descent
    LEARNING_RATE   step size

It fits y = weight * x + bias by gradient descent on the mean squared error,
the smallest model that still has a training loop, a loss and a saved
artifact. Swap in a PyTorch image and a torch loop for real work: the Job,
the /app plumbing and the rules stay the same.
"""

import csv
import json
import os
import sys
import time


def load_points(path: str) -> list[tuple[float, float]]:
    with open(path, newline="") as handle:
        return [(float(row["x"]), float(row["y"])) for row in csv.DictReader(handle)]


def mean_squared_error(points: list[tuple[float, float]], weight: float, bias: float) -> float:
    return sum((weight * x + bias - y) ** 2 for x, y in points) / len(points)


def train(
    points: list[tuple[float, float]], epochs: int, learning_rate: float
) -> tuple[float, float, list[float]]:
    """Full-batch gradient descent from (0, 0); returns weight, bias and the loss per epoch."""
    weight = bias = 0.0
    n = len(points)
    losses = []
    for _ in range(epochs):
        grad_w = sum(2 * (weight * x + bias - y) * x for x, y in points) / n
        grad_b = sum(2 * (weight * x + bias - y) for x, y in points) / n
        weight -= learning_rate * grad_w
        bias -= learning_rate * grad_b
        losses.append(mean_squared_error(points, weight, bias))
    return weight, bias, losses


def write_json_atomically(path: str, data: dict[str, object]) -> None:
    """Snakemake must never see half a model: write beside it, then rename."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(partial, path)


def main() -> int:
    train_data = os.environ["TRAIN_DATA"]
    model_out = os.environ["MODEL_OUT"]
    epochs = int(os.environ.get("EPOCHS", "300"))
    learning_rate = float(os.environ.get("LEARNING_RATE", "0.1"))

    points = load_points(train_data)
    if not points:
        print(f"{train_data}: no training data", file=sys.stderr)
        return 1
    print(f"training on {len(points)} points from {train_data}:", end=" ")
    print(f"{epochs} epochs, learning rate {learning_rate}")
    start = time.monotonic()
    weight, bias, losses = train(points, epochs, learning_rate)
    for epoch in sorted({1, epochs // 4, epochs // 2, epochs} - {0}):
        print(f"epoch {epoch:5d}  mse {losses[epoch - 1]:.6f}")
    write_json_atomically(
        model_out,
        {
            "model": "linear",
            "weight": weight,
            "bias": bias,
            "epochs": epochs,
            "learning_rate": learning_rate,
            "train_points": len(points),
            "train_mse": losses[-1],
            "seconds": round(time.monotonic() - start, 3),
        },
    )
    print(f"model written to {model_out}: weight {weight:.4f}, bias {bias:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
