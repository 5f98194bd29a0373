"""Public compression API: bytes in, bytes out, plus thin file wrappers.

compress: resolve the model and options → normalise the image → `coding` (quantize, code each
stage) → pack. decompress: unpack + validate → look up the model that wrote it → `coding`
(decode the stages, reconstruct) → image. The pipeline itself lives in `vqcodec.coding`.
"""

from __future__ import annotations

import io
import math
import numbers
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch
from PIL import Image

from vqcodec import bitstream, coding, metadata, tiling, zoo
from vqcodec.bitstream import BitstreamError, Header
from vqcodec.devices import resolve_device
from vqcodec.files import check_folder, same_file, write_atomic
from vqcodec.imaging import check_size, decode_alpha, encode_alpha, image_from_uint8, prepare_image
from vqcodec.limits import DEFAULT_MAX_PIXELS, MAX_RDO, MAX_REFINE_STEPS
from vqcodec.provenance import model_for_stream

if TYPE_CHECKING:
    from vqcodec.entropy.context import ContextPrior
    from vqcodec.entropy.grid_coding import Prior

OUTPUTS = ("pil", "numpy", "torch")


def _integer(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """`value` as a Python int, within [low, high] when given: numpy and other integral types
    pass, bools and floats do not."""
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not integral or (low is not None and value < low) or (high is not None and value > high):
        bounds = f" in {low}..{high}" if low is not None and high is not None else ""
        raise ValueError(f"{name} must be an integer{bounds}, got {value!r}")
    return int(value)


def _stage_count(requested: int | None, available: int) -> int:
    return available if requested is None else _integer(requested, "stages", 1, available)


# The rdo strengths a quality setting steps through within each stage count, most bits last,
# where a model lists no quality points of its own (`zoo.ZooEntry.quality_points`). On the
# 4-stage `vqc-f8-s4-v3` each of these steps added bits and PSNR on Kodak; with 8 or 10
# stages, one stage more at the strongest gives less than the stage count before at the
# weakest (benchmarks/results/quality), which is why a model may list the points to use.
QUALITY_RDO_STRENGTHS = (2.0, 1.0, 0.5, 0.0)


def operating_points(stages: int, strengths: tuple[float, ...] = QUALITY_RDO_STRENGTHS) -> list[tuple[int, float]]:
    """Every stage count at every strength, from the strongest (fewest bits) to the weakest."""
    return [(count, strength) for count in range(1, stages + 1) for strength in strengths]


def quality_points(loaded: zoo.LoadedModel, prior_name: str) -> list[tuple[int, float]]:
    """The (stage count, rdo strength) points `quality` steps through, smallest files first:
    the model's own list where it has one, else `operating_points`; stage counts only where
    no rdo search is possible (the static prior, a prior file)."""
    stages = loaded.codec.config.stages
    if not _searchable(loaded, prior_name):
        return operating_points(stages, (0.0,))
    return list(loaded.quality_points) or operating_points(stages)


def _point_for_quality(quality: int, points: list[tuple[int, float]]) -> tuple[int, float]:
    """The points cut 0..100 into equal bins, 0 the smallest file and 100 the largest."""
    quality = _integer(quality, "quality", 0, 100)
    return points[max(0, math.ceil(quality * len(points) / 100) - 1)]


def operating_point(quality: int, model: str | Path | None = None, prior: str | None = None) -> tuple[int, float]:
    """(stage count, rdo strength) that `compress(quality=...)` codes with, for a JPEG-style
    `quality` in 0..100, `model` and `prior` as in `compress` (the shipped model with its
    context prior: 0 → 1 stage at strength 2, 100 → all stages with the nearest codewords)."""
    loaded = zoo.load(model)
    return _point_for_quality(quality, quality_points(loaded, _coding_prior(loaded, prior)[0]))


def _fit_bpp(bpp: float, sizes: list[int], pixels: int) -> int:
    """Index of the last of `sizes` (bytes of the candidate files, in order of quality) that
    fits `bpp`."""
    fitting = [index for index, size in enumerate(sizes) if size * 8 <= bpp * pixels]
    if not fitting:
        smallest = min(sizes) * 8 / pixels
        raise ValueError(f"target of {bpp} bpp is below the lowest rate this model gives this image ({smallest:.4f} bpp)")
    return fitting[-1]


def _coding_prior(loaded: zoo.LoadedModel, name: str | None) -> tuple[str, Prior, bytes]:
    """(name, prior object, hash stored in the header).

    The default is "context" when the model ships a context prior (on Kodak it codes 24-33%
    fewer bits than "static" on the default encoder's indices, benchmarks/results/prior), else
    "static".
    """
    name = name or ("static" if loaded.context_prior is None else "context")
    if name == "static":
        return name, loaded.codec.prior, bytes(bitstream.HASH_SIZE)
    if name != "context":
        raise ValueError(f"prior must be 'static' or 'context', got {name!r}")
    if loaded.context_prior is None:
        raise ValueError(f"model {loaded.name!r} ships no context prior; use prior='static' or give prior_file=")
    return name, loaded.context_prior, loaded.prior_hash


def _searchable(loaded: zoo.LoadedModel, prior_name: str) -> bool:
    """Whether the rate–distortion search runs for this model and prior: it needs the context
    prior and the model's tuned λ profile."""
    return prior_name == "context" and bool(loaded.rdo_lambdas)


def _rdo_lambdas(loaded: zoo.LoadedModel, prior_name: str, strength, stages: int) -> list[float] | None:
    """λ per coded stage for `quantize_for_rate`, or None for the nearest codeword.

    The default strength is 1 (the model's tuned λ) with the context prior and 0 otherwise:
    with the static prior's order-0 code lengths such an encoder buys nothing
    (experiments/entropy-constrained).
    """
    if strength is None:
        strength = 1.0 if _searchable(loaded, prior_name) else 0.0
    if not isinstance(strength, numbers.Real) or isinstance(strength, bool) or not 0 <= float(strength) <= MAX_RDO:
        raise ValueError(f"rdo must be a number in [0, {MAX_RDO}], got {strength!r}")
    if strength == 0:
        return None
    if prior_name != "context":
        raise ValueError("rdo needs the context prior: against the static prior it buys nothing; set rdo to 0")
    if not loaded.rdo_lambdas:
        raise ValueError(f"model {loaded.name!r} has no tuned rdo profile; set rdo to 0")
    return [float(strength) * value for value in loaded.rdo_lambdas[:stages]]


def compress(
    image,
    *,
    stages: int | None = None,
    bpp: float | None = None,
    quality: int | None = None,
    model: str | Path | None = None,
    prior: str | None = None,
    prior_file: str | Path | None = None,
    rdo: float | None = None,
    device: str | torch.device | None = "cpu",
    strip: bool = False,
    refine: int = 0,
) -> bytes:
    """Compress an image into a `.vqc` stream.

    Args:
        image: PIL image, path, numpy uint8 `[H,W]`/`[H,W,2]`/`[H,W,3]`/`[H,W,4]` (read-only
            arrays such as `np.asarray(pil_image)` too) or float tensor `[3,H,W]`/`[1,H,W]`
            in [0,1]. Any size from 1×1. Grayscale stays grayscale; alpha is kept
            losslessly. 16-bit input is converted to 8-bit with a warning. Files and PIL
            images are turned upright by their EXIF orientation, and their ICC profile and
            EXIF (orientation reset to 1) travel in the stream.
        stages: residual stages to code (1..S, default all): fewer stages, fewer bits.
        bpp: instead of `stages`, the highest quality point (as `quality` steps through them)
            whose real file fits this many bits per pixel; with `rdo` given, the largest stage
            count at that strength. It searches at each strength of the points (about 2.5 times
            the encode time with the shipped model), the encoder and `refine` running once.
        quality: instead of `stages` (and `rdo`), 0..100 mapped onto operating points,
            stage count and rdo strength, by `operating_point` (as Pillow's
            `save(quality=...)`): a higher quality never gives a smaller file on average.
        model: a zoo model name (default `vqcodec.zoo.DEFAULT_MODEL`), or the path of a
            `.safetensors` codec weights file (a `Path`, or a string ending in
            `.safetensors`); its streams record the file's name and sha256, and decode only
            with the same file.
        prior: "context" (default where the model ships one: fewer bits, about 0.3 s more
            to decode a Kodak image) or "static" (order-0 frequencies, fastest).
        prior_file: path of a context prior file (`vqcodec train-prior`) to code with instead
            of the model's own; its streams decode only with the same file.
        rdo: strength of rate–distortion-optimised quantization with the context prior
            (`vqcodec.entropy.rdo`): 0 picks the nearest codeword, 1 the model's tuned
            trade-off, larger values smaller files at lower quality (at most 16). Default: 1
            with the context prior of a model that has a tuned profile, else 0. The search
            runs the prior once more, so it slows encoding.
        device: where the networks run: "cpu" (default), "cuda", "cuda:N" or "auto" (CUDA
            when available). Streams decode alike on any device.
        strip: leave the ICC profile and EXIF out of the stream.
        refine: gradient steps on the latent against the decoded image before it is
            quantized (`vqcodec.refine`, 0..1000): more quality at about the same bits, the
            stream decodes as any other; each step costs about three decoder passes.

    Returns:
        The stream, header included.
    """
    given = [name for name, value in (("stages", stages), ("bpp", bpp), ("quality", quality)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give one of stages, bpp and quality, not both {given[0]} and {given[1]}")
    refine = _integer(refine, "refine", 0, MAX_REFINE_STEPS)
    if bpp is not None and (isinstance(bpp, bool) or not isinstance(bpp, numbers.Real) or not bpp > 0):
        raise ValueError(f"bpp must be a positive number, got {bpp!r}")
    device = resolve_device(device)
    loaded = zoo.load(model, prior_file)
    prior_name, coding_prior, prior_hash = _coding_prior(loaded, prior)
    config = loaded.codec.config
    if quality is not None:
        if rdo is not None:
            raise ValueError("give quality or rdo, not both: quality sets the rdo strength too")
        stages, rdo = _point_for_quality(quality, quality_points(loaded, prior_name))
    count = _stage_count(stages, config.stages) if bpp is None else config.stages
    # The candidate files: the one asked for or, with a bpp target, the quality points (or every
    # stage count at a given rdo strength). One encoder pass; one search per strength among
    # them, as deep as the deepest candidate at that strength, whose prefixes the others are.
    points = [(count, rdo)] if bpp is None else _bpp_candidates(loaded, prior_name, rdo, count)
    strengths: list = []
    for _, strength in points:
        if strength not in strengths:  # a list, not a set: `rdo` is anything until `_rdo_lambdas` checks it
            strengths.append(strength)
    candidates = [(stage_count, strengths.index(strength)) for stage_count, strength in points]
    depths = [max(n for n, index in candidates if index == profile) for profile in range(len(strengths))]
    profiles = [(depth, _rdo_lambdas(loaded, prior_name, strength, depth)) for strength, depth in zip(strengths, depths)]
    prepared = prepare_image(image, keep_metadata=not strip)
    height, width = prepared.rgb.shape[:2]
    tile = tiling.TILE_TOKENS
    per_profile = coding.encode_tiles_for_profiles(
        loaded.codec, prepared.rgb, count, coding_prior, profiles, device, tile, refine
    )
    tiled = len(per_profile[0][0]) > 1  # else the grid is coded whole, as a version 1 or 2 stream
    fields = dict(
        model_id=loaded.name,
        weights_hash=loaded.weights_hash,
        prior=prior_name,
        prior_hash=prior_hash,
        width=width,
        height=height,
        mode=prepared.mode,
        stride=config.stride,
        codebook_size=config.codebook_size,
        alpha=encode_alpha(prepared.alpha) if prepared.alpha is not None else b"",
        icc_profile=prepared.icc_profile,
        exif=prepared.exif,
        tile=tile if tiled else 0,
    )
    joined = [[bitstream.join_tiles(stage) if tiled else stage[0] for stage in profile] for profile in per_profile]

    def stream(candidate: int) -> bytes:
        n, profile = candidates[candidate]
        return bitstream.pack(**fields, stage_payloads=joined[profile][:n])

    if bpp is None:
        return stream(0)
    # One candidate stream at a time, its length kept: holding all of them (31 with the
    # shipped model) would take that many copies of a large image's file.
    sizes = [len(stream(candidate)) for candidate in range(len(candidates))]
    return stream(_fit_bpp(bpp, sizes, width * height))


def _bpp_candidates(loaded: zoo.LoadedModel, prior_name: str, rdo, stages: int) -> list[tuple[int, float]]:
    """The (stage count, rdo strength) points a bpp target chooses from, in order of quality:
    the quality points, or every stage count at the strength given."""
    if rdo is None:
        return quality_points(loaded, prior_name)
    return [(count, rdo) for count in range(1, stages + 1)]


def read_header(data: bytes) -> Header:
    """Parse and validate a stream's header (the payload need not be present)."""
    return bitstream.read_header(data)


def decompress(
    data: bytes,
    *,
    stages: int | None = None,
    decoder: str = "fidelity",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    output: str = "pil",
    model: str | Path | None = None,
    prior_file: str | Path | None = None,
    device: str | torch.device | None = "cpu",
):
    """Decode a `.vqc` stream to an image of the original size and mode.

    Args:
        data: the stream. A truncated prefix decodes too when `stages` asks only for the
            stages it holds (progressive decoding).
        stages: decode only the first n stages (default: all in the file).
        decoder: "fidelity" (highest PSNR) or "realism" where the model has one.
        max_pixels: refuse, from the header alone, a stream that claims a larger image
            (default `DEFAULT_MAX_PIXELS`; None: only the codec's own limit).
        output: "pil" (a PIL image, mode L, LA, RGB or RGBA, with the stream's ICC profile and
            EXIF in `info["icc_profile"]` and `info["exif"]`), "numpy" (uint8 `[H,W,C]`) or
            "torch" (float32 `[C,H,W]` in [0,1], the 8-bit values / 255), C = 1, 2, 3 or 4
            channels for L, LA, RGB, RGBA.
        model: the weights file (path) that wrote a stream of a model outside the zoo, or a
            zoo name (default: the model the stream names); checked against the stream's
            weights hash.
        prior_file: the context prior file that coded the stream, when it is not the zoo
            model's; checked against the stream's prior hash.
        device: where the decoder network and the context prior run, as in `compress`.

    Raises:
        BitstreamError: malformed, corrupt, truncated or foreign streams (also weights or a
            prior that did not write it), and claims above `max_pixels`.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    device = resolve_device(device)
    check_claim(bitstream.read_header(data), max_pixels)
    header, alpha_bytes, payloads = bitstream.unpack(data, stages)
    icc_profile, exif = bitstream.unpack_metadata(data)
    try:
        check_size(header.width, header.height)
    except ValueError as error:
        raise BitstreamError(str(error)) from error
    loaded, coding_prior = model_for_stream(header, model, prior_file)
    h, w = header.grid
    try:
        tile_payloads = [bitstream.split_tiles(header, payload, stage) for stage, payload in enumerate(payloads)]
        indices = coding.decode_tiles(coding_prior, tile_payloads, h, w, header.codebook_size, header.tile or max(h, w), device)
        alpha = decode_alpha(alpha_bytes, header.width, header.height) if header.mode in bitstream.ALPHA_MODES else None
    except ValueError as error:
        raise BitstreamError(str(error)) from error
    rgb = coding.reconstruct(loaded.codec, indices, header.height, header.width, decoder, device)  # [H, W, 3] uint8
    return _as_output(metadata.attach(image_from_uint8(rgb, header.mode, alpha), icc_profile, exif), output)


def _as_output(image: Image.Image, output: str):
    """`image` as `decompress(output=...)` gives it."""
    if output == "pil":
        return image
    array = np.array(image).reshape(image.height, image.width, -1)  # [H, W, C], writable
    return array if output == "numpy" else torch.from_numpy(array).permute(2, 0, 1).float() / 255.0  # [C, H, W]


def check_claim(header: Header, max_pixels: int | None) -> None:
    """Raise BitstreamError when `header` claims an image of more than `max_pixels` pixels
    (None: no bound beyond the codec's own)."""
    if max_pixels is None:
        return
    max_pixels = _integer(max_pixels, "max_pixels", 1)
    if header.pixels > max_pixels:
        raise BitstreamError(
            f"the stream claims a {header.width}×{header.height} image ({header.pixels:,} pixels), more than "
            f"max_pixels={max_pixels:,} allows; raise max_pixels (--max-pixels) if you trust the file"
        )


def describe_stream(data: bytes, file_bytes: int | None = None) -> dict:
    """Header fields of a stream plus its size and bits per pixel (for `vqcodec info`);
    `file_bytes` is the size of the file `data` was read from, if known. `complete` says the
    whole stream is there; `trailing_bytes` counts what follows it."""
    header = bitstream.read_header(data)
    size = len(data) if file_bytes is None else file_bytes
    return {
        "model": header.model_id,
        "weights_hash": header.weights_hash.hex(),
        "prior": header.prior,
        "width": header.width,
        "height": header.height,
        "mode": header.mode,
        "stride": header.stride,
        "codebook_size": header.codebook_size,
        "stages": header.stages,
        "version": header.version,
        "tile": header.tile,  # 0: the grid is coded whole
        "tiles": header.tiles,
        "header_bytes": header.header_size,
        "alpha_bytes": header.alpha_length,
        "icc_bytes": header.icc_length,
        "exif_bytes": header.exif_length,
        "stage_bytes": list(header.stage_lengths),
        "total_bytes": header.total_size,
        "file_bytes": size,
        "complete": size >= header.total_size,
        "trailing_bytes": max(0, size - header.total_size),
        "bpp": round(header.total_size * 8 / header.pixels, 6),
    }


def model_info(model: str | Path | None = None) -> dict:
    """Name, weights hash (hex, as streams store it), stage count, decoders, stride and
    codebook size of a zoo model or a weights file (`model` as in `compress`)."""
    loaded = zoo.load(model)
    config = loaded.codec.config
    entry = zoo.MODELS.get(loaded.name)
    return {
        "name": loaded.name,
        "weights_hash": loaded.weights_hash.hex(),
        "stages": config.stages,
        "decoders": sorted(loaded.codec.decoders),
        "stride": config.stride,
        "codebook_size": config.codebook_size,
        "description": entry.description if entry is not None else f"codec weights file {model}",
    }


def _generative_parts(model: str | None, decoder: str | None) -> tuple[zoo.LoadedModel, ContextPrior, str]:
    loaded = zoo.load_model(model)
    if loaded.context_prior is None:
        raise ValueError(f"model {loaded.name!r} ships no context prior, which generation and inpainting need")
    return loaded, loaded.context_prior, decoder or ("realism" if "realism" in loaded.codec.decoders else "fidelity")


def generate(
    width: int,
    height: int,
    *,
    seed: int,
    steps: int = 8,
    temperature: float = 1.0,
    decoder: str | None = None,
    model: str | None = None,
) -> Image.Image:
    """Sample a new `width`×`height` image from the model's context prior (MaskGIT-style).

    Deterministic for a given seed. `decoder` defaults to "realism" where the model has one.
    """
    from vqcodec.sampling import generate_image

    width, height, seed = _integer(width, "width"), _integer(height, "height"), _integer(seed, "seed")
    check_size(width, height)
    loaded, prior, decoder = _generative_parts(model, decoder)
    with torch.inference_mode():
        return generate_image(
            loaded.codec, prior, width, height, seed=seed, steps=steps, temperature=temperature, decoder=decoder
        )


def inpaint(
    image,
    mask,
    *,
    seed: int,
    steps: int = 8,
    temperature: float = 1.0,
    decoder: str | None = None,
    model: str | None = None,
) -> Image.Image:
    """Re-sample the region of `image` under the white pixels of `mask` (same size), conditioned
    on everything else; outside the mask's f×f cells the result equals the codec's own
    reconstruction from its nearest codewords (as `compress(..., rdo=0)`). Deterministic for
    a given seed."""
    from vqcodec.sampling import inpaint_image

    seed = _integer(seed, "seed")
    loaded, prior, decoder = _generative_parts(model, decoder)
    with torch.inference_mode():
        return inpaint_image(loaded.codec, prior, image, mask, seed=seed, steps=steps, temperature=temperature, decoder=decoder)


def _check_destination(src: Path, dst: Path) -> None:
    """Before any work: never over `src`, and only into a folder that exists."""
    if same_file(src, dst):
        raise ValueError(f"output {dst} is the same file as input {src}")
    check_folder(dst)


def compress_file(src: str | Path, dst: str | Path, **options) -> int:
    """Compress the image at `src` into `dst` (atomically; never over `src`); returns the bytes written.

    Raises FileNotFoundError before any work when `dst`'s folder does not exist."""
    _check_destination(Path(src), Path(dst))
    data = compress(Path(src), **options)
    write_atomic(Path(dst), data)
    return len(data)


def decompress_file(src: str | Path, dst: str | Path, **options) -> Image.Image:
    """Decode the stream at `src` and save the image at `dst` (format from its suffix; never over `src`)."""
    _check_destination(Path(src), Path(dst))
    image = decompress(Path(src).read_bytes(), **options)
    write_atomic(Path(dst), lambda handle: write_image(image, handle, Path(dst).suffix))
    return image


def encode_image(image: Image.Image, suffix: str) -> memoryview:
    """Image file bytes in the format named by `suffix`, as `write_image` writes them: a view
    of the buffer they were written to (a copy would cost a large image's file size again)."""
    buffer = io.BytesIO()
    write_image(image, buffer, suffix)
    return buffer.getbuffer()


def write_image(image: Image.Image, handle: BinaryIO, suffix: str) -> None:
    """Write `image` to the seekable binary file `handle` (from its current position, which is
    read back) in the format named by `suffix` (".png" when empty), with the image's ICC
    profile and EXIF where the format holds them (PNG, JPEG, WebP, TIFF).

    Refuses formats Pillow only reads, and formats that would silently change the image:
    another size (icons) or a lost alpha channel (JPEG, GIF, BMP, PPM, ...).

    Raises:
        ValueError: the format cannot be written or cannot hold the image.
        OSError: writing to `handle` failed.
    """
    extension = (suffix or ".png").lower()
    formats = Image.registered_extensions()
    if extension == ".vqc":  # Pillow writes it too (the plugin), but decoding to re-encode is a mistake
        raise ValueError("a .vqc output would code the image again; decode to an image format: .png, .webp, .tif, ...")
    if extension not in formats:
        raise ValueError(f"unknown output image format {extension!r}; use .png, .webp, .bmp, .tif, ...")
    if formats[extension] not in Image.SAVE:
        raise ValueError(f"cannot write {extension} images (Pillow only reads them); use .png, .webp, .tif, ...")
    start = handle.tell()
    try:
        image.save(handle, format=formats[extension], **metadata.save_options(image))
    except (OSError, KeyError, ValueError) as error:  # no writer for the mode (JPEG and alpha)
        if isinstance(error, OSError) and error.errno is not None:
            raise  # the file's error (a full disk), not the format's
        what = "the alpha channel of this image" if image.mode in bitstream.ALPHA_MODES else f"a {image.mode} image"
        raise ValueError(f"{extension} cannot hold {what} ({error}); write .png instead") from error
    if formats[extension] not in Image.OPEN:  # write-only formats (PDF): nothing to check against
        if image.mode in bitstream.ALPHA_MODES:
            raise ValueError(f"{extension} may drop the alpha channel of this image; write .png instead")
        return
    handle.seek(start)
    with warnings.catch_warnings():  # the image was just written here: no decompression bomb
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(handle) as written:  # header only: size and bands
            size, bands = written.size, written.getbands()
    if size != image.size:
        raise ValueError(
            f"{extension} would store this image at {size[0]}×{size[1]}, not {image.size[0]}×{image.size[1]}; write .png instead"
        )
    if image.mode in bitstream.ALPHA_MODES and "A" not in bands:
        raise ValueError(f"{extension} cannot hold the alpha channel of this image; write .png instead")
