"""Codec adapters for the rate–distortion benchmark: each turns an RGB array into real bytes and back.

Every adapter encodes `[H,W,3]` uint8 RGB to the codec's complete file (header included) and
decodes it back to `[H,W,3]` uint8, single-threaded so that timings compare like for like.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, features

# Sweeps chosen on Kodak to span ~0.05–3 bpp: below and above vqcodec's range.
JPEG_QUALITIES = (2, 5, 10, 20, 35, 50, 70, 85, 95)
WEBP_QUALITIES = (0, 5, 15, 30, 50, 70, 85, 95)
AVIF_QUALITIES = (0, 10, 25, 40, 55, 70, 85, 95)
AVIF_SPEED = 6  # libavif's default; slower speeds cost 3-10x encode time for ~2-5% rate.
JPEG2000_TARGET_BPP = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0)
JPEGXL_DISTANCES = (25.0, 15.0, 10.0, 6.0, 4.0, 2.5, 1.5, 0.8, 0.4)
JPEGXL_EFFORT = 7  # libjxl's default effort.
# Pillow feature id -> the library it stands for, for the recorded descriptions.
_LIBRARIES = {"jpg": "libjpeg", "libjpeg_turbo": "libjpeg-turbo", "webp": "libwebp", "avif": "libavif", "jpg_2000": "OpenJPEG"}
CODEC_NAMES = ("vqcodec", "jpeg", "webp", "avif", "jpeg2000", "jpegxl")

Encoder = Callable[[np.ndarray, float], bytes]
Decoder = Callable[[bytes, str | None], np.ndarray]
Measurer = Callable[[np.ndarray, float], list[dict]]


class CodecUnavailable(RuntimeError):
    """The codec cannot run here (missing library or model); the message says why."""


@dataclass(frozen=True)
class Codec:
    """One codec with its rate settings.

    Attributes:
        name: short id used in file names (`jpeg`, `vqcodec`).
        label: name shown in plots and tables.
        setting_name: what a setting means (`quality`, `stages`, ...).
        settings: the rate sweep, lowest rate first where the codec allows.
        description: library, version and fixed options, recorded in the results.
        encode: `(rgb [H,W,3] uint8, setting) -> file bytes`.
        decode: `(file bytes, decoder) -> rgb [H,W,3] uint8`.
        decoders: decoder variants sharing one bitstream; `None` for a codec with one.
        measure: `(rgb, setting) -> rows` (one per decoder, with a `decoder` key) for a codec
            that measures itself; None: the benchmark's own loop measures `encode`/`decode`.
    """

    name: str
    label: str
    setting_name: str
    settings: tuple[float, ...]
    description: str
    encode: Encoder
    decode: Decoder
    decoders: tuple[str | None, ...] = (None,)
    measure: Measurer | None = None

    def curve(self, decoder: str | None) -> str:
        """Name of the rate–distortion curve for `decoder` (one curve per decoder)."""
        return self.name if decoder is None else f"{self.name}-{decoder}"

    def curve_label(self, decoder: str | None) -> str:
        return self.label if decoder is None else f"{self.label} ({decoder})"


def _pillow_decode(data: bytes, decoder: str | None = None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _pillow_codec(
    name: str,
    label: str,
    fmt: str,
    feature: str,
    setting_name: str,
    settings: tuple[float, ...],
    options: Callable[[float], dict],
    detail: str,
) -> Codec:
    if not features.check(feature):
        raise CodecUnavailable(f"Pillow was built without {feature}")
    library = "libjpeg_turbo" if feature == "jpg" and features.check("libjpeg_turbo") else feature

    def encode(rgb: np.ndarray, setting: float) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format=fmt, **options(setting))
        return buffer.getvalue()

    version = f"Pillow {Image.__version__}, {_LIBRARIES[library]} {features.version(library)}"
    return Codec(name, label, setting_name, settings, f"{version}; {detail}", encode, _pillow_decode)


def _jpeg() -> Codec:
    return _pillow_codec(
        "jpeg",
        "JPEG",
        "JPEG",
        "jpg",
        "quality",
        JPEG_QUALITIES,
        lambda q: {"quality": int(q), "optimize": True},
        "optimize=True, 4:2:0 chroma (Pillow default)",
    )


def _webp() -> Codec:
    return _pillow_codec(
        "webp", "WebP", "WEBP", "webp", "quality", WEBP_QUALITIES, lambda q: {"quality": int(q), "method": 6}, "lossy, method=6"
    )


def _avif() -> Codec:
    return _pillow_codec(
        "avif",
        "AVIF",
        "AVIF",
        "avif",
        "quality",
        AVIF_QUALITIES,
        lambda q: {"quality": int(q), "speed": AVIF_SPEED, "max_threads": 1},
        f"speed={AVIF_SPEED}, 4:2:0, max_threads=1",
    )


def _jpeg2000() -> Codec:
    # OpenJPEG takes a compression ratio against the 24 bpp of 8-bit RGB. Pillow leaves the
    # colour transform off by default (mct=0), which costs 2-5 dB on RGB photos.
    def options(bpp: float) -> dict:
        return {"quality_mode": "rates", "quality_layers": [24.0 / bpp], "irreversible": True, "mct": 1}

    return _pillow_codec(
        "jpeg2000",
        "JPEG 2000",
        "JPEG2000",
        "jpg_2000",
        "target bpp",
        JPEG2000_TARGET_BPP,
        options,
        "JP2 container, 9/7 irreversible wavelet, mct=1, rate set by compression ratio",
    )


def _jpegxl() -> Codec:
    try:
        import imagecodecs
    except ImportError as exc:
        raise CodecUnavailable("imagecodecs is not installed (pip install imagecodecs)") from exc
    if not imagecodecs.JPEGXL.available:
        raise CodecUnavailable("imagecodecs was built without JPEG XL")

    def encode(rgb: np.ndarray, distance: float) -> bytes:
        return bytes(imagecodecs.jpegxl_encode(rgb, distance=distance, effort=JPEGXL_EFFORT, numthreads=1))

    def decode(data: bytes, decoder: str | None = None) -> np.ndarray:
        return np.asarray(imagecodecs.jpegxl_decode(data, numthreads=1))

    description = f"imagecodecs {imagecodecs.__version__}, {imagecodecs.jpegxl_version()}; effort={JPEGXL_EFFORT}"
    return Codec("jpegxl", "JPEG XL", "distance", JPEGXL_DISTANCES, description, encode, decode)


def _vqcodec(model: str | None) -> Codec:
    import vqcodec
    from vqcodec.evaluate import measure_image

    try:
        info = vqcodec.model_info(model)
        # A warm-up round trip loads the model now, so it is not billed to the first image.
        probe = vqcodec.compress(Image.new("RGB", (64, 64), (128, 96, 64)), stages=1, model=model)
        vqcodec.decompress(probe, decoder=info["decoders"][0])
    except Exception as exc:  # any failure to load or run the model makes the codec unavailable; reported
        raise CodecUnavailable(f"vqcodec could not run: {type(exc).__name__}: {exc}") from exc

    def encode(rgb: np.ndarray, stages: float) -> bytes:
        return vqcodec.compress(Image.fromarray(rgb), stages=int(stages), model=model)

    def decode(data: bytes, decoder: str | None) -> np.ndarray:
        return np.asarray(vqcodec.decompress(data, decoder=decoder).convert("RGB"))

    def measure(rgb: np.ndarray, stages: float) -> list[dict]:  # the library's own measurement, as `vqcodec evaluate`
        rows = measure_image(rgb, stages=[int(stages)], decoders=info["decoders"], model=model)
        return [{key: value for key, value in row.items() if key != "stages"} for row in rows]

    description = (
        f"vqcodec model {info['name']}: {info['stages']} residual stages, "
        f"codebook {info['codebook_size']}, stride {info['stride']}, decoders {', '.join(info['decoders'])}"
    )
    return Codec(
        "vqcodec",
        "vqcodec",
        "stages",
        tuple(range(1, int(info["stages"]) + 1)),
        description,
        encode,
        decode,
        tuple(info["decoders"]),
        measure,
    )


def build_codecs(names: list[str], model: str | None = None) -> tuple[list[Codec], dict[str, str]]:
    """Build the requested codecs.

    Args:
        names: codec ids from `CODEC_NAMES`.
        model: vqcodec model name (`None`: the library default).

    Returns:
        The codecs that can run, and `{name: reason}` for those that cannot.
    """
    factories: dict[str, Callable[[], Codec]] = {
        "vqcodec": lambda: _vqcodec(model),
        "jpeg": _jpeg,
        "webp": _webp,
        "avif": _avif,
        "jpeg2000": _jpeg2000,
        "jpegxl": _jpegxl,
    }
    codecs, skipped = [], {}
    for name in names:
        try:
            codecs.append(factories[name]())
        except CodecUnavailable as exc:
            skipped[name] = str(exc)
    return codecs, skipped
