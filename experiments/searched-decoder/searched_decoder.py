"""Should the decoder learn from the indices the encoder sends? Fine-tune the shipped fidelity
decoder on the rate–distortion search's indices against a control fine-tuned alike on the
nearest codewords, and score both on Kodak's default files.

The codec is trained with nearest codewords, but `vqcodec encode` sends the search's
(`--rdo 1`): per token a cheaper codeword a little further from the latent. The decoder has
never seen their sums. Only the decoder changes here, so every file keeps its bytes and the
three decoders (shipped, control, searched) are compared at exactly the same bits.

Training pairs: every `--every`-th training photo (downscaled to at most 512 pixels a side)
and its token grids both ways at all stages. A step decodes either `CROPS` crops of
`CROP_TOKENS`² tokens of them (`--crops`), the codec's training crop, or `WHOLE` whole photos
(the default), as files are decoded; each crop or photo keeps a uniformly drawn stage count.
Both arms see the same crops or photos, stage counts and schedule; only the indices differ.
Kodak: the shipped search's indices of every image, decoded at 1..S stages; bpp is the RD
benchmark's for the same files.

    python experiments/searched-decoder/searched_decoder.py ../shared/data/train ../shared/data/kodak \\
        --every 3 --steps 1500 --out experiments/searched-decoder/results
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from plotting import save_figure  # noqa: E402
from rd_bd import bd_rate  # noqa: E402
from vqcodec import coding, zoo  # noqa: E402
from vqcodec.evaluate import score  # noqa: E402
from vqcodec.imaging import to_uint8  # noqa: E402
from vqcodec.train.data import list_images, load_rgb  # noqa: E402
from vqcodec.train.schedule import learning_rate, set_learning_rate  # noqa: E402
from vqcodec.train.token_cache import token_image  # noqa: E402

CROP_TOKENS = 16  # 128² pixels, the codec's training crop
CROPS = 16  # crops per step with --crops
WHOLE = 2  # whole photos per step otherwise: about the pixels of the crops
SCHEDULE = dict(lr=3e-5, warmup_steps=100, min_lr_ratio=0.05)  # a decoder near its optimum: a gentle peak
KINDS = ("nearest", "searched")


def training_pairs(loaded: zoo.LoadedModel, files: list[Path]) -> list[dict]:
    """Per photo: its pixels `[3, H, W]` uint8 and both token grids `[S, h, w]`."""
    codec, stages = loaded.codec, loaded.codec.config.stages
    pairs = []
    for path in tqdm(files, desc="token grids", unit="image", file=sys.stderr):
        rgb = token_image(path, 8 * CROP_TOKENS, 512)
        grids = {
            "nearest": coding.quantize(codec, rgb, stages),
            "searched": coding.quantize(codec, rgb, stages, loaded.context_prior, list(loaded.rdo_lambdas)),
        }
        pairs.append({"pixels": torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), **grids})
    return pairs


def quantized_latent(books: list[torch.Tensor], indices: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Sum of the codewords of each sample's first `counts[b]` stages: indices `[B, S, h, w]` →
    `[B, D, h, w]`."""
    total = 0
    for stage, book in enumerate(books):
        keep = (stage < counts).float()[:, None, None, None]
        total = total + F.embedding(indices[:, stage], book) * keep
    return total.permute(0, 3, 1, 2)


def _batch(pixels: list[torch.Tensor], indices: dict[str, list[np.ndarray]], counts: np.ndarray) -> tuple:
    return (
        torch.stack(pixels).float() / 255,
        {kind: torch.from_numpy(np.stack(grids)).long() for kind, grids in indices.items()},
        torch.from_numpy(counts),
    )


def step_batches(pairs: list[dict], stages: int, steps: int, seed: int, crops: bool):
    """`steps` lists of batches (pixels `[B,3,H,W]` float, {kind: indices `[B,S,h,w]`}, counts
    `[B]`): one batch of `CROPS` crops, or `WHOLE` batches of one whole photo each."""
    rng = np.random.default_rng(seed)
    side, stride = CROP_TOKENS, 8
    for _ in range(steps):
        chosen = [pairs[i] for i in rng.integers(len(pairs), size=CROPS if crops else WHOLE)]
        counts = rng.integers(1, stages + 1, size=len(chosen))
        if not crops:
            yield [_batch([p["pixels"]], {k: [p[k]] for k in KINDS}, counts[i : i + 1]) for i, p in enumerate(chosen)]
            continue
        pixels, indices = [], {kind: [] for kind in KINDS}
        for pair in chosen:
            rows, cols = pair["pixels"].shape[1] // stride, pair["pixels"].shape[2] // stride
            top, left = rng.integers(rows - side + 1), rng.integers(cols - side + 1)
            pixels.append(pair["pixels"][:, top * stride : (top + side) * stride, left * stride : (left + side) * stride])
            for kind in KINDS:
                indices[kind].append(pair[kind][:, top : top + side, left : left + side])
        yield [_batch(pixels, indices, counts)]


def fine_tune(loaded: zoo.LoadedModel, pairs: list[dict], steps: int, seed: int, crops: bool) -> tuple[dict, list[dict]]:
    """Both arms, step by step on the same batches: {kind: decoder}, and the loss log."""
    codec = loaded.codec
    books = [book.detach() for book in codec.quantizer.codebooks()]
    decoders = {kind: copy.deepcopy(codec.decoders["fidelity"]).train() for kind in KINDS}
    optimizers = {kind: torch.optim.Adam(d.parameters(), lr=SCHEDULE["lr"]) for kind, d in decoders.items()}
    schedule, log, start = SimpleNamespace(steps=steps, **SCHEDULE), [], time.perf_counter()
    batches = step_batches(pairs, codec.config.stages, steps, seed, crops)
    for step, group in enumerate(tqdm(batches, total=steps, desc="fine-tuning", file=sys.stderr)):
        losses = {}
        for kind, decoder in decoders.items():
            set_learning_rate(optimizers[kind], learning_rate(schedule, step))
            optimizers[kind].zero_grad(set_to_none=True)
            losses[kind] = 0.0
            for pixels, indices, counts in group:  # photos of different sizes: one pass each, gradients summed
                height, width = pixels.shape[2:]
                decoded = decoder(quantized_latent(books, indices[kind], counts))[:, :, :height, :width]
                loss = F.mse_loss(decoded, pixels) / len(group)
                loss.backward()
                losses[kind] += loss.item()
            optimizers[kind].step()
        if step % 100 == 0 or step == steps - 1:
            log.append({"step": step, "seconds": time.perf_counter() - start, **losses})
    return {kind: decoder.eval() for kind, decoder in decoders.items()}, log


@torch.no_grad()
def kodak_psnr(loaded: zoo.LoadedModel, decoders: dict, files: list[Path]) -> dict[str, list[float]]:
    """Mean PSNR over `files` of each decoder at 1..S stages of the default files' indices."""
    codec, stages = loaded.codec, loaded.codec.config.stages
    psnr = {name: np.zeros(stages) for name in decoders}
    for path in tqdm(files, desc="Kodak", unit="image", file=sys.stderr):
        rgb = load_rgb(path, 0)
        indices = torch.from_numpy(coding.quantize(codec, rgb, stages, loaded.context_prior, list(loaded.rdo_lambdas)))
        for count in range(1, stages + 1):
            latent = codec.quantizer.decode(indices[None, :count])
            for name, decoder in decoders.items():
                decoded = to_uint8(decoder(latent)[0, :, : rgb.shape[0], : rgb.shape[1]])
                psnr[name][count - 1] += score(rgb, decoded)["psnr"] / len(files)
    return {name: values.tolist() for name, values in psnr.items()}


def plot(result: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    curve, gain = fig.subplots(1, 2)
    bpp = result["bpp"]
    for name, values in result["psnr"].items():
        (line,) = curve.plot(bpp, values, marker="o", label=name)
        if name != "shipped":  # in the colour it has in the other panel
            gain.plot(bpp, np.subtract(values, result["psnr"]["shipped"]), marker="o", label=name, color=line.get_color())
    curve.set(xlabel="bpp (the default files)", ylabel="PSNR (dB)", title="Kodak, fidelity decoder")
    gain.axhline(0, color="grey", lw=0.8)
    gain.set(xlabel="bpp (the default files)", ylabel="dB over the shipped decoder", title="same files, other decoders")
    save_figure(fig, (curve, gain), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="training photos")
    parser.add_argument("kodak", type=Path, help="Kodak images (evaluation only)")
    parser.add_argument("--every", type=int, default=2, help="every N-th training photo")
    parser.add_argument("--steps", type=int, default=2500, help="fine-tuning steps of each arm")
    parser.add_argument("--crops", action="store_true", help="train on crops of the photos instead of whole photos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rd", type=Path, default=Path("benchmarks/results/kodak/vqcodec-fidelity.json"), help="bpp of the default files"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    loaded = zoo.load()
    started = time.perf_counter()
    pairs = training_pairs(loaded, list_images(args.train)[:: args.every])
    cache_seconds = time.perf_counter() - started
    tuned, log = fine_tune(loaded, pairs, args.steps, args.seed, args.crops)
    decoders = {"shipped": loaded.codec.decoders["fidelity"].eval(), **{f"tuned on {k}": d for k, d in tuned.items()}}
    psnr = kodak_psnr(loaded, decoders, sorted(args.kodak.glob("*.png")))
    bpp = json.loads(args.rd.read_text())["results"]["bpp"]
    result = {
        "model": loaded.name,
        "command": "python experiments/searched-decoder/searched_decoder.py " + " ".join(sys.argv[1:]),
        "training_photos": len(pairs),
        "steps": args.steps,
        "per_step": f"{CROPS} crops of {CROP_TOKENS}² tokens" if args.crops else f"{WHOLE} whole photos",
        "schedule": SCHEDULE,
        "token_grid_seconds": cache_seconds,
        "log": log,
        "bpp": bpp,
        "psnr": psnr,
        "bd_rate_vs_shipped": {n: bd_rate(bpp, psnr["shipped"], bpp, v) for n, v in psnr.items() if n != "shipped"},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "results.png")
    for name, values in psnr.items():
        print(f"{name}: " + " / ".join(f"{v:.2f}" for v in values), file=sys.stderr)
    print(f"BD-rate vs shipped: {result['bd_rate_vs_shipped']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
