"""Write a shipped model's golden streams for `tests/test_api.py`:

    python tests/make_golden.py MODEL

Compresses the 64×48 crop of `tests/data/kodim23.png` at box (300, 200, 364, 248) with all
stages and the nearest codewords (`rdo=0`, so both priors code the same indices), once per
prior, into `tests/data/golden-MODEL-{context,static}.vqc`, and prints the sha256 of the
indices for `GOLDEN_INDICES_SHA256`. Existing goldens are never rewritten (they are what
proves that files written by that model keep decoding): a prior that replaces a retired one
gets its golden once the retired prior's stream has moved to `tests/data/retired/`.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from PIL import Image

import vqcodec
from vqcodec import bitstream, zoo
from vqcodec.entropy.grid_coding import decode_grid

DATA = Path(__file__).parent / "data"
CROP = (300, 200, 364, 248)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=zoo.installed_models())
    model = parser.parse_args().model
    targets = {prior: DATA / f"golden-{model}-{prior}.vqc" for prior in ("context", "static")}
    if all(path.exists() for path in targets.values()):
        parser.error(f"golden streams exist already: {', '.join(str(path) for path in targets.values())}")
    with Image.open(DATA / "kodim23.png") as image:
        crop = image.convert("RGB").crop(CROP)
    loaded, digests = zoo.load_model(model), set()
    for prior, path in targets.items():
        data = vqcodec.compress(crop, model=model, prior=prior, rdo=0)
        header, _, payloads = bitstream.unpack(data)
        coding_prior = loaded.context_prior if prior == "context" else loaded.codec.prior
        indices = decode_grid(coding_prior, payloads, *header.grid, header.codebook_size)
        digests.add(hashlib.sha256(indices.astype("<i2").tobytes()).hexdigest())
        if path.exists():
            print(f"kept {path}")
        else:
            path.write_bytes(data)
            print(f"wrote {path} ({len(data)} bytes)")
    (digest,) = digests  # both priors code the same indices
    print(f'GOLDEN_INDICES_SHA256["{model}"] = "{digest}"')


if __name__ == "__main__":
    main()
