"""Does the expected residual of a stage depend on its context? A continuous-space probe of
the context prior's headroom at stages 2 and later.

For stage s the encoder's latent minus the codewords of stages < s is the residual the
stage quantizes. A ridge regression predicts its mean μ from context: the 3×3 window of the
partial reconstruction (the codewords of stages < s summed: all a decoder has for a stage
coded in one group) and, as an upper bound no coding schedule reaches, also the stage-s
codewords of all 8 neighbours. The stage's index is then scored as
p(k) ∝ π_k · exp(−β‖c_k − μ‖²), π the order-0 frequencies, and compared with the same score
around a constant μ (the regression's intercept alone), so the saving is what context adds
to the geometry term itself. Both β are chosen on the fit images.

This sees only a shift of the residual's mean. Information carried by which cell an index
falls in (the previous stage's index, measured by `token_context.py`) is not a mean shift:
a codeword is about the centroid of its cell, so the expected residual given it is near 0.

Regressions, frequencies and β are fitted on training images and scored on other training
images (never Kodak).

    python experiments/residual-predictability/residual_predictability.py ../shared/data/train \\
        --codec vqcodec/weights/vqc-f8-s4-v3.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from vqcodec.imaging import prepare_image, to_padded_tensor
from vqcodec.train.data import list_images
from vqcodec.zoo import file_sha256, load_codec_file

MAX_SIDE = 512  # crop larger images: the probe needs many positions, not whole photos
RIDGE = 1e-3  # only keeps the normal equations well conditioned; ~1e5 rows outweigh it
BETAS = np.logspace(-2, 3, 16)  # sharpness sweep wide enough to cover no-information (β→0) to near one-hot
TUNE_POSITIONS = 20_000  # fit positions scored per β: bounds the [n, K] distance matrix


def latents_and_indices(codec, paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image: latent `[h, w, D]` float64 and indices `[S, h, w]`."""
    out = []
    with torch.no_grad():
        for path in paths:
            pixels = to_padded_tensor(prepare_image(path).rgb, codec.config.stride)[..., :MAX_SIDE, :MAX_SIDE]
            latent = codec.encoder(pixels)
            indices = codec.quantizer.encode(latent, codec.config.stages)[0].numpy()
            out.append((latent[0].permute(1, 2, 0).double().numpy(), indices))
    return out


def _window(grid: np.ndarray) -> np.ndarray:
    """`[h, w, D]` → `[h-2, w-2, 9D]`: each inner position's 3×3 neighbourhood."""
    h, w, _ = grid.shape
    return np.concatenate([grid[dy : h - 2 + dy, dx : w - 2 + dx] for dy in range(3) for dx in range(3)], axis=-1)


def design(images, books: list[np.ndarray], stage: int, neighbours: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Context features (with a bias column), residual targets and indices of the inner positions."""
    features, residuals, targets = [], [], []
    for latent, indices in images:
        partial = sum((books[s][indices[s]] for s in range(stage)), np.zeros_like(latent))
        parts = [_window(partial)]
        if neighbours:
            same = _window(books[stage][indices[stage]])
            dim = latent.shape[-1]
            same[..., 4 * dim : 5 * dim] = 0.0  # the position's own codeword is what is predicted
            parts.append(same)
        row = np.concatenate(parts, axis=-1)
        features.append(row.reshape(-1, row.shape[-1]))
        residuals.append((latent - partial)[1:-1, 1:-1].reshape(-1, latent.shape[-1]))
        targets.append(indices[stage][1:-1, 1:-1].reshape(-1))
    x = np.concatenate(features)
    return np.concatenate([x, np.ones((len(x), 1))], axis=1), np.concatenate(residuals), np.concatenate(targets)


def _bits(log_p: np.ndarray, targets: np.ndarray) -> float:
    return float(-log_p[np.arange(len(targets)), targets].mean() / np.log(2))


def _ridge(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ y)


def _geometric_bits(mean: np.ndarray, book: np.ndarray, log_prior: np.ndarray, targets: np.ndarray, beta: float) -> float:
    """Bits per index of p(k) ∝ π_k · exp(−β‖c_k − μ‖²), one μ per position."""
    distance = (mean**2).sum(1, keepdims=True) - 2 * mean @ book.T + (book**2).sum(1)[None]
    logits = log_prior - beta * distance
    return _bits(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True), targets)


def _fitted_beta(mean: np.ndarray, book: np.ndarray, log_prior: np.ndarray, targets: np.ndarray) -> float:
    """The β of the sweep that codes the first `TUNE_POSITIONS` fit positions best."""
    mean, targets = mean[:TUNE_POSITIONS], targets[:TUNE_POSITIONS]
    return float(min(BETAS, key=lambda beta: _geometric_bits(mean, book, log_prior, targets, beta)))


def probe(fit, held_out, books: list[np.ndarray], stage: int, neighbours: bool) -> dict:
    """Held-out bits per index: order-0, the geometric score around a constant mean, and
    around the mean predicted from context."""
    book = books[stage]
    counts = np.bincount(np.concatenate([indices[stage].ravel() for _, indices in fit]), minlength=len(book)) + 1.0
    log_prior = np.log(counts / counts.sum())
    x_fit, y_fit, targets_fit = design(fit, books, stage, neighbours)
    x, y, targets = design(held_out, books, stage, neighbours)
    weights = _ridge(x_fit, y_fit)
    predicted = x @ weights
    centre = y_fit.mean(0)
    scores = {}
    for name, mean, mean_fit in (
        ("constant", np.broadcast_to(centre, y.shape), np.broadcast_to(centre, y_fit.shape)),
        ("context", predicted, x_fit @ weights),
    ):
        beta = _fitted_beta(mean_fit, book, log_prior, targets_fit)
        scores[name] = (_geometric_bits(mean, book, log_prior, targets, beta), beta)
    r2 = 1.0 - float(((y - predicted) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
    order0 = _bits(np.broadcast_to(log_prior, (len(targets), len(book))), targets)
    return {
        "stage": stage + 1,
        "neighbours": neighbours,
        "order0_bits": order0,
        "constant_mean_bits": scores["constant"][0],
        "context_mean_bits": scores["context"][0],
        "saving_percent": 100.0 * (1.0 - scores["context"][0] / scores["constant"][0]),
        "beta": scores["context"][1],
        "residual_r2": r2,
        "positions": int(len(targets)),
    }


def plot(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    stages = sorted({r["stage"] for r in rows})
    for offset, neighbours, label in (
        (-0.2, False, "partial reconstruction (3×3)"),
        (0.2, True, "+ all 8 same-stage neighbours (bound)"),
    ):
        values = [next(r["saving_percent"] for r in rows if r["stage"] == s and r["neighbours"] == neighbours) for s in stages]
        ax.bar(np.array(stages) + offset, values, width=0.4, label=label)
    ax.set_xticks(stages)
    ax.set_xlabel("stage")
    ax.set_ylabel("bits saved by the predicted mean (%)")
    ax.set_title("held-out saving of a context-predicted residual mean")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="training images (the fit and held-out sets are drawn from them)")
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--fit", type=int, default=24, help="images to fit regressions and frequencies on")
    parser.add_argument("--held-out", type=int, default=8, help="images to score on")
    parser.add_argument("--out", type=Path, default=Path("experiments/residual-predictability/results"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec_file(args.codec).eval()
    books = [stage.codebook.double().numpy() for stage in codec.quantizer.stages]
    files = list_images(args.images)
    np.random.default_rng(0).shuffle(files)
    if len(files) < args.fit + args.held_out:
        raise SystemExit(f"need {args.fit + args.held_out} images, found {len(files)}")
    fit = latents_and_indices(codec, files[: args.fit])
    held_out = latents_and_indices(codec, files[-args.held_out :])
    rows = []
    for stage in range(codec.config.stages):
        for neighbours in (False, True):
            rows.append(probe(fit, held_out, books, stage, neighbours))
            print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    document = {
        "what": __doc__.split("\n\n")[0],
        "codec_sha256": file_sha256(args.codec),
        "fit_images": args.fit,
        "held_out_images": args.held_out,
        "max_side": MAX_SIDE,
        "rows": rows,
    }
    (args.out / "residual_predictability.json").write_text(json.dumps(document, indent=1) + "\n")
    plot(rows, args.out / "residual_predictability.png")


if __name__ == "__main__":
    main()
