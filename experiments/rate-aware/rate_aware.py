"""Rate-aware fine-tuning (`rate_weight` > 0) against the codec it started from, on real images:
for each (codec, context prior) pair, the fidelity decoder's mean PSNR and the real coded bpp
(whole files) with the context prior and with the codec's static prior, at every stage count.

Each pair is a codec and the context prior trained on its tokens (a codec fine-tuned with a
rate term changes its indices, so it needs its own prior and static prior). The first pair is
the baseline for the other pairs' BD-rate; `--anchor` adds a measured codec of the RD
benchmark (e.g. JPEG) at the same bpp and to the plot.

    python experiments/rate-aware/rate_aware.py ../shared/data/kodak \\
        --pair shipped vqcodec/weights/vqc-f8-s4.safetensors vqcodec/weights/vqc-f8-s4-prior.safetensors \\
        --pair "λ=0.016" RUN/fitted.safetensors RUN/prior.safetensors \\
        --anchor benchmarks/results/kodak/jpeg.json --out experiments/rate-aware/results
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from vqcodec import bitstream, zoo
from vqcodec.entropy.grid_coding import encode_grid
from vqcodec.entropy.prior_file import load_prior_file
from vqcodec.imaging import prepare_image, to_padded_tensor
from vqcodec.metrics import psnr
from vqcodec.train.data import list_images
from vqcodec.zoo import file_sha256, load_codec_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the RD helpers
from rd_bd import bd_rate, quality_at_rates

TARGET_SAVING = 0.20  # the context prior's target against the static prior


@torch.no_grad()
def measure(path: Path, codec, context) -> dict:
    """PSNR at every stage count and coded bytes per stage under each prior, for one image."""
    rgb = prepare_image(path).rgb
    height, width = rgb.shape[:2]
    pixels = to_padded_tensor(rgb, codec.config.stride)
    original = pixels[..., :height, :width]
    indices = codec.encode_indices(pixels)
    row = {"image": path.name, "pixels": height * width, "psnr": []}
    for n in range(1, indices.shape[1] + 1):
        decoded = codec.decode_indices(indices[:, :n])[..., :height, :width]
        row["psnr"].append(psnr((decoded * 255).round() / 255, original).item())  # as the 8-bit PNG a user gets
    grid = indices[0].numpy()
    row["bytes"] = {
        name: [len(p) for p in encode_grid(prior, grid)] for name, prior in (("static", codec.prior), ("context", context))
    }
    # The container around the payloads, as `vqcodec encode` writes it for this model and size.
    fields = dict(
        model_id=zoo.DEFAULT_MODEL,
        weights_hash=bytes(bitstream.HASH_SIZE),
        prior="context",
        prior_hash=bytes(bitstream.HASH_SIZE),
        width=width,
        height=height,
        mode="RGB",
        stride=codec.config.stride,
        codebook_size=codec.config.codebook_size,
        alpha=b"",
    )
    row["container_bytes"] = [len(bitstream.pack(**fields, stage_payloads=[b""] * n)) for n in range(1, indices.shape[1] + 1)]
    return row


def summarize(rows: list[dict]) -> dict:
    """Means over images of per-image PSNR and bpp (whole files) per stage count; savings from
    the payload totals."""
    stages = len(rows[0]["psnr"])
    out = {"psnr": [float(np.mean([r["psnr"][n] for r in rows])) for n in range(stages)]}
    for name in ("static", "context"):
        out[f"bpp_{name}"] = [
            float(np.mean([8 * (sum(r["bytes"][name][: n + 1]) + r["container_bytes"][n]) / r["pixels"] for r in rows]))
            for n in range(stages)
        ]
        out[f"payload_bits_{name}"] = [sum(8 * sum(r["bytes"][name][: n + 1]) for r in rows) for n in range(stages)]
    # Savings compare the coded indices alone, as benchmarks/prior.py does.
    out["saving_at_stages"] = [1 - c / s for c, s in zip(out["payload_bits_context"], out["payload_bits_static"])]
    return out


def compare(results: dict, anchor: dict | None) -> None:
    """Adds to each pair's summary its BD-rate (context prior) against the first pair and, with
    an anchor, the anchor's PSNR at the same bpp (PCHIP in log-rate, `None` outside its range)."""
    baseline = next(iter(results.values()))["summary"]
    for result in results.values():
        summary = result["summary"]
        summary["bd_rate_vs_first_pair"] = bd_rate(
            baseline["bpp_context"], baseline["psnr"], summary["bpp_context"], summary["psnr"]
        )
        if anchor is not None:
            summary["anchor_psnr_at_bpp"] = quality_at_rates(
                anchor["results"]["bpp"], anchor["results"]["psnr"], summary["bpp_context"]
            )


def plot(results: dict, anchor: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(results)
    for i, name in enumerate(names):
        summary = results[name]["summary"]
        line = left.plot(summary["bpp_context"], summary["psnr"], marker="o", label=f"{name}, context prior")[0]
        left.plot(
            summary["bpp_static"],
            summary["psnr"],
            marker=".",
            linestyle="--",
            color=line.get_color(),
            label=f"{name}, static prior",
        )
        stages = np.arange(1, len(summary["saving_at_stages"]) + 1)
        width = 0.8 / len(names)
        right.bar(
            stages + (i - (len(names) - 1) / 2) * width,
            [100 * s for s in summary["saving_at_stages"]],
            width=width,
            color=line.get_color(),
            label=name,
        )
    if anchor is not None:
        top = max(max(r["summary"]["bpp_static"]) for r in results.values())
        shown = [i for i, bpp in enumerate(anchor["results"]["bpp"]) if bpp <= 1.2 * top]
        left.plot(
            [anchor["results"]["bpp"][i] for i in shown],
            [anchor["results"]["psnr"][i] for i in shown],
            color="black",
            marker="s",
            linewidth=1,
            label=anchor["label"],
        )
    left.set_xlabel("bits per pixel (whole files)")
    left.set_ylabel("PSNR (dB), fidelity decoder")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.axhline(100 * TARGET_SAVING, color="gray", linestyle="--", label="target")
    right.set_xlabel("stages coded")
    right.set_ylabel("context prior's saving vs static (%)")
    right.set_xticks(stages)
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="folder of evaluation images (e.g. Kodak)")
    parser.add_argument(
        "--pair",
        nargs=3,
        action="append",
        required=True,
        metavar=("NAME", "CODEC", "PRIOR"),
        help="a codec's weights and the context prior trained on its tokens (repeatable)",
    )
    parser.add_argument(
        "--anchor", type=Path, help="a codec's results from the RD benchmark (e.g. benchmarks/results/kodak/jpeg.json)"
    )
    parser.add_argument("--out", type=Path, default=Path("experiments/rate-aware/results"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    args = parser.parse_args()
    if len({name for name, _, _ in args.pair}) < len(args.pair):
        parser.error("each --pair needs its own NAME")
    if args.anchor and args.limit:
        parser.error("the anchor was measured on every image: drop --limit to compare against it")
    torch.set_num_threads(args.threads)
    files = list_images(args.images)[: args.limit or None]
    results = {}
    for name, codec_path, prior_path in args.pair:
        codec, context = load_codec_file(codec_path), load_prior_file(prior_path)
        rows = [measure(path, codec, context) for path in files]
        results[name] = {
            "codec_sha256": file_sha256(Path(codec_path)),
            "prior_sha256": file_sha256(Path(prior_path)),
            "summary": summarize(rows),
            "images": rows,
        }
        summary = results[name]["summary"]
        print(
            name,
            "PSNR",
            [round(p, 2) for p in summary["psnr"]],
            "bpp",
            [round(b, 4) for b in summary["bpp_context"]],
            "saving vs static",
            [f"{100 * s:.1f}%" for s in summary["saving_at_stages"]],
            flush=True,
        )
    anchor = json.loads(args.anchor.read_text()) if args.anchor else None
    compare(results, anchor)
    for name, result in results.items():
        summary = result["summary"]
        at = summary.get("anchor_psnr_at_bpp") or [None] * len(summary["psnr"])
        print(
            name,
            "BD-rate vs first pair",
            summary["bd_rate_vs_first_pair"],
            "PSNR − anchor",
            [None if a is None else round(p - a, 2) for p, a in zip(summary["psnr"], at)],
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rate_aware.json").write_text(json.dumps({"anchor": anchor and anchor["label"], "pairs": results}, indent=1))
    plot(results, anchor, args.out / "rate_aware.png")


if __name__ == "__main__":
    main()
