"""Does a deeper search of the shipped codebooks close on WebP? Beam search and one-stage
lookahead against the greedy encoders, on the same latents.

Every encoder of the codec is greedy over stages: stage s takes its codeword (the nearest,
or the rate–distortion search's choice) knowing only the stages before it. Residual VQ
leaves error on the table that way, and a beam over whole paths recovers part of it. This
probe measures, per stage count, bpp (the context prior's real payloads) and PSNR (the
fidelity decoder) of:

- nearest: the nearest codeword at every stage (`--rdo 0`);
- rdo: the shipped search at the model's tuned λ (`--rdo 1`, the default);
- beam B: the path of codewords, over all the stages coded, nearest the latent, keeping the
  B best paths after each stage (no rate term);
- lookahead λ: the shipped search with each candidate's distortion taken as the error left
  after the best codeword of the next stage (the last stage as in rdo), among the 16
  nearest candidates, at relative λ.

    python experiments/search-depth/search_depth.py ../shared/data/kodak --images 8 \
        --out experiments/search-depth/results
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from plotting import save_figure  # noqa: E402
from rd_bd import bd_rate  # noqa: E402
from vqcodec import coding, zoo  # noqa: E402
from vqcodec.entropy import rdo  # noqa: E402
from vqcodec.entropy.free_tail import limit_free_tails  # noqa: E402
from vqcodec.evaluate import score  # noqa: E402
from vqcodec.train.data import evenly_spaced  # noqa: E402

BEAM_WIDTHS = (4, 16)
LOOKAHEAD_LAMBDAS = (0.04, 0.08)
LOOKAHEAD_CANDIDATES = 16  # the lookahead scores these nearest codewords; the rest never win


@torch.no_grad()
def beam_indices(latent: torch.Tensor, books: list[torch.Tensor], width: int) -> np.ndarray:
    """Indices `[S, h, w]` of the path nearest `latent` `[D, h, w]` found keeping `width` paths."""
    dim, h, w = latent.shape
    residual = latent.permute(1, 2, 0).reshape(-1, 1, dim).float()  # [n, paths, D]
    paths = torch.zeros((residual.shape[0], 1, 0), dtype=torch.int64)
    for book in books:
        size = book.shape[0]
        error = residual.square().sum(-1, keepdim=True) - 2 * residual @ book.T + book.square().sum(-1)  # [n, paths, K]
        best = error.flatten(1).topk(min(width, error[0].numel()), dim=1, largest=False).indices
        parent, code = best // size, best % size
        residual = torch.gather(residual, 1, parent[..., None].expand(-1, -1, dim)) - book[code]
        paths = torch.cat([torch.gather(paths, 1, parent[..., None].expand(-1, -1, paths.shape[2])), code[..., None]], 2)
    return paths[:, 0].T.reshape(len(books), h, w).numpy()  # topk sorts: path 0 is the best


def lookahead_errors(residual: torch.Tensor, book: torch.Tensor, following: torch.Tensor | None) -> torch.Tensor:
    """`[n, K]` squared error left by each codeword of `book`, or, with `following`, left after
    the best codeword of that next stage (infinite beyond the nearest candidates)."""
    errors = torch.addmm(book.square().sum(1), residual, book.T, alpha=-2.0) + residual.square().sum(1, keepdim=True)
    if following is None:
        return errors
    nearest = errors.topk(LOOKAHEAD_CANDIDATES, dim=1, largest=False).indices
    after = residual[:, None, :] - book[nearest]  # [n, candidates, D]
    left = after.square().sum(-1) + (following.square().sum(1) - 2 * after @ following.T).min(-1).values
    return torch.full_like(errors, math.inf).scatter_(1, nearest, left)


@torch.no_grad()
def lookahead_indices(latent: torch.Tensor, books: list[torch.Tensor], prior, relative: float) -> np.ndarray:
    """`rdo.quantize_for_rate` with `lookahead_errors` as the distortion."""
    dim, h, w = latent.shape
    residual = latent.permute(1, 2, 0).reshape(-1, dim).float().clone()
    tokens = np.zeros((len(books), h, w), dtype=np.int64)
    known = np.zeros(tokens.shape, dtype=bool)
    order = prior.groups(len(books), h, w)
    for stage, book in enumerate(books):
        errors = lookahead_errors(residual, book.float(), books[stage + 1].float() if stage + 1 < len(books) else None)
        least, nearest = errors.min(1)
        groups = [mask for s, mask in order if s == stage]
        rdo.search_stage(
            prior,
            tokens,
            known,
            stage,
            groups,
            lambda block, errors=errors: errors[torch.from_numpy(block)],
            nearest.numpy(),
            relative * float(least.mean()),
        )
        residual -= book.float()[torch.from_numpy(tokens[stage].reshape(-1))]
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kodak_dir", type=Path)
    parser.add_argument("--images", type=int, default=8, help="every (24 / N)-th image of the folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    loaded = zoo.load()
    codec, prior, tuned = loaded.codec, loaded.context_prior, loaded.rdo_lambdas
    encoders = {
        "nearest": lambda latent, books: codec.quantizer.encode(latent[None], len(books))[0].numpy(),
        "rdo": lambda latent, books: rdo.quantize_for_rate(latent, books, prior, tuned[: len(books)]),
        **{f"beam {b}": lambda latent, books, b=b: beam_indices(latent, books, b) for b in BEAM_WIDTHS},
        **{f"lookahead λ {v}": lambda latent, books, v=v: lookahead_indices(latent, books, prior, v) for v in LOOKAHEAD_LAMBDAS},
    }
    files = sorted(args.kodak_dir.glob("*.png"))
    files = evenly_spaced(files, args.images)
    stage_counts = range(1, codec.config.stages + 1)
    measured = {name: {count: [] for count in stage_counts} for name in encoders}
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        latent = coding.latent_of(codec, rgb)
        for count in stage_counts:
            books = codec.quantizer.codebooks(count)
            for name, encode in encoders.items():
                started = time.perf_counter()
                indices = limit_free_tails(encode(latent, books), latent, books, prior)
                seconds = time.perf_counter() - started
                bits = 8 * sum(len(payload) for payload in coding.encode_stages(prior, indices))
                decoded = coding.reconstruct(codec, indices, *rgb.shape[:2])
                measured[name][count].append((bits / (rgb.shape[0] * rgb.shape[1]), score(rgb, decoded)["psnr"], seconds))
        print(path.name, flush=True)
    keys = ("bpp", "psnr", "search_seconds")
    curves = {
        name: {key: [float(np.mean([value[i] for value in per[count]])) for count in stage_counts] for i, key in enumerate(keys)}
        for name, per in measured.items()
    }
    for curve in curves.values():
        curve["bd_rate_vs_rdo_percent"] = bd_rate(curves["rdo"]["bpp"], curves["rdo"]["psnr"], curve["bpp"], curve["psnr"])
    result = {"model": loaded.name, "images": [path.name for path in files], "threads": torch.get_num_threads(), "curves": curves}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search_depth.json").write_text(json.dumps(result, indent=1) + "\n")
    for name, curve in curves.items():
        points = " ".join(f"{b:.3f}/{q:.2f}" for b, q in zip(curve["bpp"], curve["psnr"], strict=True))
        print(f"{name:>16}: BD-rate vs rdo {curve['bd_rate_vs_rdo_percent']:+.1f} %;", points)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for name, curve in curves.items():
        axis.plot(curve["bpp"], curve["psnr"], "o-", ms=3, label=f"{name} ({curve['bd_rate_vs_rdo_percent']:+.1f} %)")
    axis.set(xlabel="bpp", ylabel="PSNR (dB)", title=f"search depth, {loaded.name}, {len(files)} Kodak images")
    save_figure(figure, (axis,), args.out / "search_depth.png", dpi=110)


if __name__ == "__main__":
    main()
