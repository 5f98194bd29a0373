"""What a wider network costs at decode time, against the issue's speed bar: decoding a Kodak
image at the top rate may take at most 2× what `vqc-f8-s4-v3` takes at 4 stages (same run,
2 threads).

    VQCODEC_WEIGHTS=DIR python experiments/decoder-cost/decoder_cost.py [IMAGE] --repeats 13 \
        --out experiments/decoder-cost/results/run1

DIR holds `vqc-f8-s4-v3`'s files (retired; docs/models.md). Every candidate architecture's
decoder, randomly initialised (its cost does not depend on the values), takes the place of the
shipped model's fidelity decoder, and the shipped model's own 8-stage stream is decoded
through it: the prior, the coder and the codebook lookup stay exactly as shipped, so the
difference is the decoder network's. Every decode, and each network alone, is timed once per
round, round after round (`benchmarks/speed.py`'s `timed_rounds`), next to the reference.
A second part runs one window of the tiled path (the largest any image needs) through each
decoder and encoder and reports the growth of the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from PIL import Image

import vqcodec
from vqcodec import tiling, zoo
from vqcodec.model.config import CodecConfig
from vqcodec.model.decoder import Decoder
from vqcodec.model.encoder import Encoder

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from kernel import peak_rss_growth  # noqa: E402
from speed import DEFAULT_IMAGE, timed_rounds  # noqa: E402

REFERENCE = "vqc-f8-s4-v3"
SHIPPED = "vqc-f8-s8"
# Named widths fine/coarse, then blocks (encoder; decoder). "wide" is the GPU recipe as it
# stood (benchmarks/gpu_train.sh before this probe); the others keep its encoder and try
# cheaper decoders.
ARCHITECTURES = {
    "shipped 64/128 (1,2; 3,2)": dict(width_fine=64, width_coarse=128, encoder_blocks=(1, 2), decoder_blocks=(3, 2)),
    "wide 96/192 (2,3; 4,3)": dict(width_fine=96, width_coarse=192, encoder_blocks=(2, 3), decoder_blocks=(4, 3)),
    "96/192 (2,3; 3,2)": dict(width_fine=96, width_coarse=192, encoder_blocks=(2, 3), decoder_blocks=(3, 2)),
    "80/160 (2,3; 4,3)": dict(width_fine=80, width_coarse=160, encoder_blocks=(2, 3), decoder_blocks=(4, 3)),
    "80/160 (2,3; 3,2)": dict(width_fine=80, width_coarse=160, encoder_blocks=(2, 3), decoder_blocks=(3, 2)),
    "64/128 (2,3; 4,3)": dict(width_fine=64, width_coarse=128, encoder_blocks=(2, 3), decoder_blocks=(4, 3)),
}
SHIPPED_ARCHITECTURE = next(iter(ARCHITECTURES))


def config_of(name: str) -> CodecConfig:
    return CodecConfig(stages=8, **ARCHITECTURES[name])


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def timings(image: Image.Image, repeats: int) -> dict:
    """Median seconds of every decode and network pass, timed in the same rounds."""
    reference_stream = vqcodec.compress(image, model=REFERENCE, stages=4)
    stream = vqcodec.compress(image, model=SHIPPED)
    shipped = zoo.load(SHIPPED).codec
    shipped_decoder = shipped.decoders["fidelity"]
    decoders = {name: Decoder(config_of(name)).eval() for name in ARCHITECTURES}
    encoders = {name: Encoder(config_of(name)).eval() for name in ARCHITECTURES}
    # The shipped architecture's own trained networks, for the real stream.
    decoders[SHIPPED_ARCHITECTURE], encoders[SHIPPED_ARCHITECTURE] = shipped_decoder, shipped.encoder

    def decode_with(decoder: torch.nn.Module):
        def work():
            shipped.decoders["fidelity"] = decoder
            try:
                return vqcodec.decompress(stream)
            finally:
                shipped.decoders["fidelity"] = shipped_decoder

        return work

    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255  # [1, 3, H, W]
    latent = torch.randn(1, 32, image.height // 8, image.width // 8)
    works = {
        "reference decode, 4 stages": lambda: vqcodec.decompress(reference_stream),
        "reference encode, 4 stages": lambda: vqcodec.compress(image, model=REFERENCE, stages=4),
        "encode, 8 stages, shipped": lambda: vqcodec.compress(image, model=SHIPPED),
    }
    works |= {f"decode, 8 stages, {name} decoder": decode_with(decoder) for name, decoder in decoders.items()}
    with torch.no_grad():
        works |= {f"decoder network, {name}": (lambda d=d: d(latent)) for name, d in decoders.items()}
        works |= {f"encoder network, {name}": (lambda e=e: e(pixels)) for name, e in encoders.items()}
        seconds = [statistics.median(spent) for spent in timed_rounds(list(works.values()), repeats)]
    return dict(zip(works, seconds, strict=True))


def window_peak_mb(part: str, name: str) -> float:
    """Peak RSS growth (MB) of one window of the tiled path as it was measured here (the
    largest, a tile and 12 tokens on every side, for every architecture; the margins now
    follow each model's reach, `tiling.margin_for`) through the `part` ("encoder" or
    "decoder") of `name`."""
    side = tiling.TILE_TOKENS + 2 * 12
    config = config_of(name)
    network = (Decoder if part == "decoder" else Encoder)(config).eval()
    shape = (1, config.latent_dim, side, side) if part == "decoder" else (1, 3, side * config.stride, side * config.stride)
    data = torch.rand(shape)
    with torch.no_grad():
        growth = peak_rss_growth(lambda: network(data))
    return float("nan") if growth is None else growth / 2**20


def plot(report: dict, path: Path) -> None:
    names = list(ARCHITECTURES)[::-1]
    figure, axis = plt.subplots(figsize=(7, 3.6))
    bars = axis.barh(names, [report["decode_vs_reference"][name] for name in names], color="tab:blue")
    axis.bar_label(bars, fmt="%.2f×", fontsize=8, padding=2)
    axis.axvline(2.0, color="tab:red", ls="--", lw=1)
    axis.text(2.02, 0, "the 2× bar", color="tab:red", fontsize=8, va="center")
    axis.set_xlim(0, 2.5)
    axis.set_xlabel(f"8-stage decode time / {REFERENCE}'s at 4 stages ({report['threads']} threads, same rounds)")
    axis.set_title(f"Decoding {report['image']} with each architecture's decoder", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="folder for decoder_cost.json and .png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = Image.open(args.image).convert("RGB")
    seconds = timings(image, args.repeats)
    for work, spent in seconds.items():
        print(f"{work}: {spent:.3f} s")
    reference = seconds["reference decode, 4 stages"]
    # An encode is its encoder network plus the quantizer, the search and the coder, which do
    # not change with the architecture: the shipped encode with the other encoder's time swapped in.
    encode_rest = seconds["encode, 8 stages, shipped"] - seconds[f"encoder network, {SHIPPED_ARCHITECTURE}"]
    report = {
        "image": args.image.name,
        "threads": args.threads,
        "repeats": args.repeats,
        "architectures": {
            name: {
                **ARCHITECTURES[name],
                "parameters": {"encoder": parameters(Encoder(config_of(name))), "decoder": parameters(Decoder(config_of(name)))},
            }
            for name in ARCHITECTURES
        },
        "seconds": seconds,
        "decode_vs_reference": {name: seconds[f"decode, 8 stages, {name} decoder"] / reference for name in ARCHITECTURES},
        "decoder_network_vs_shipped": {
            name: seconds[f"decoder network, {name}"] / seconds[f"decoder network, {SHIPPED_ARCHITECTURE}"]
            for name in ARCHITECTURES
        },
        "encode_vs_reference_estimated": {
            name: (encode_rest + seconds[f"encoder network, {name}"]) / seconds["reference encode, 4 stages"]
            for name in ARCHITECTURES
        },
        "window_peak_mb": {name: {part: window_peak_mb(part, name) for part in ("encoder", "decoder")} for name in ARCHITECTURES},
    }
    for name, ratio in report["decode_vs_reference"].items():
        peaks = report["window_peak_mb"][name]
        print(
            f"{name}: decode {ratio:.2f}× the reference, encode ≈ {report['encode_vs_reference_estimated'][name]:.2f}×; "
            f"window peak encoder {peaks['encoder']:.0f} MB, decoder {peaks['decoder']:.0f} MB"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decoder_cost.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "decoder_cost.png")
    print(f"wrote {args.out / 'decoder_cost.json'} and decoder_cost.png")


if __name__ == "__main__":
    main()
