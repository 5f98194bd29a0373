"""Image normalisation: whatever the caller passes becomes 8-bit RGB plus a mode (and alpha);
decoded RGB becomes an image of the original mode again. Nothing here touches the model."""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from vqcodec import metadata
from vqcodec.bitstream import MAX_SIDE


@dataclass(frozen=True)
class PreparedImage:
    """`rgb` `[H,W,3]` uint8; `mode` is what decoding gives back: "L", "RGB", "RGBA" or "LA"."""

    rgb: np.ndarray
    mode: str
    alpha: np.ndarray | None = None  # `[H,W]` uint8, only for modes "RGBA" and "LA"
    icc_profile: bytes = b""  # kept from the source image when asked for (`prepare_image`)
    exif: bytes = b""  # TIFF-structured EXIF block, orientation reset to 1

    def to_pil(self) -> Image.Image:
        """The image as the codec sees it, in its own mode."""
        if self.mode == "L":
            return Image.fromarray(np.ascontiguousarray(self.rgb[:, :, 0]), "L")
        if self.mode == "LA":
            assert self.alpha is not None  # the modes with alpha carry it
            return Image.fromarray(np.dstack([self.rgb[:, :, 0], self.alpha]), "LA")
        if self.mode == "RGBA":
            assert self.alpha is not None
            return Image.fromarray(np.dstack([self.rgb, self.alpha]), "RGBA")
        return Image.fromarray(self.rgb, "RGB")


def _notice_16bit(what: str) -> None:
    warnings.warn(f"{what} is 16-bit; vqcodec codes 8 bits per channel, so it is converted to 8-bit", UserWarning, stacklevel=4)


def _from_array(array: np.ndarray) -> PreparedImage:
    if array.dtype == np.uint16:
        _notice_16bit("the array")
        array = np.round(array.astype(np.float64) / 257.0).astype(np.uint8)
    if array.dtype != np.uint8:
        raise ValueError(
            f"numpy images must be uint8 (or uint16), got {array.dtype}; pass floats as a torch tensor [3,H,W] in [0,1]"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return PreparedImage(np.repeat(array[:, :, None], 3, axis=2), "L")
    if array.ndim == 3 and array.shape[2] == 2:
        gray = np.repeat(array[:, :, :1], 3, axis=2)
        return PreparedImage(gray, "LA", np.ascontiguousarray(array[:, :, 1]))
    if array.ndim == 3 and array.shape[2] == 3:
        return PreparedImage(np.ascontiguousarray(array), "RGB")
    if array.ndim == 3 and array.shape[2] == 4:
        return PreparedImage(np.ascontiguousarray(array[:, :, :3]), "RGBA", np.ascontiguousarray(array[:, :, 3]))
    raise ValueError(f"numpy images must be [H,W], [H,W,2], [H,W,3] or [H,W,4], got shape {array.shape}")


def _from_tensor(tensor: torch.Tensor) -> PreparedImage:
    if not tensor.is_floating_point() or tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"tensor images must be float [3,H,W] or [1,H,W] in [0,1], got {tensor.dtype} {tuple(tensor.shape)}")
    check_size(tensor.shape[2], tensor.shape[1])  # before min/max, which fail on empty tensors
    values = tensor.detach().float().cpu()
    if not torch.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise ValueError("tensor image values must be finite and in [0, 1]")
    array = (values * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return _from_array(array[:, :, 0] if tensor.shape[0] == 1 else array)


def _from_pil(image: Image.Image, noticed_16bit: bool = False, keep_metadata: bool = False) -> PreparedImage:
    """The pixels turned upright by their EXIF orientation, with the image's ICC profile and
    EXIF when `keep_metadata` (checked first: damaged metadata to keep is an error)."""
    icc_profile, exif = metadata.from_image(image) if keep_metadata else (b"", b"")
    prepared = _pixels_from_pil(_upright(image), noticed_16bit)
    return replace(prepared, icc_profile=metadata.profile_for(icc_profile, prepared.mode), exif=exif)


PIXEL_BAND_ROWS = 256  # a band of a 12,000-pixel-wide photo is about 12 MB in Pillow


def _upright(image: Image.Image) -> Image.Image:
    """`image` turned by its EXIF orientation: a new image where it has one, else `image`
    itself (Pillow's `exif_transpose` would copy it, 4 bytes a pixel of a photo that may be
    100 MP)."""
    try:
        turned = image.getexif().get(ExifTags.Base.Orientation, 1) not in (1, None)
        return ImageOps.exif_transpose(image) if turned else image
    except (SyntaxError, ValueError, struct.error):  # Pillow's words for EXIF it cannot parse
        return image  # no orientation to apply (the metadata goes, as asked)


def _pixels_from_pil(image: Image.Image, noticed_16bit: bool) -> PreparedImage:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        if not noticed_16bit:
            _notice_16bit(f"the image (mode {mode})")
        values = np.asarray(image, dtype=np.float64)
        return _from_array(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8))
    if mode == "F":
        raise ValueError("32-bit float images (mode F) are not supported; convert to 8-bit first")
    # A tRNS colour key (PNG palette, grayscale or RGB) is alpha too: Pillow keeps it in `info`.
    keyed = "transparency" in image.info
    if mode in ("LA", "La") or (mode in ("1", "L") and keyed):
        return _from_array(np.array(image.convert("LA")))
    if mode in ("RGBA", "PA", "RGBa") or (mode in ("P", "RGB") and keyed):
        return _from_array(np.array(image.convert("RGBA")))
    if mode in ("1", "L"):
        return _from_array(np.array(image.convert("L")))
    if mode == "RGB":
        return _from_array(_rgb_in_bands(image))
    return _from_array(np.array(image.convert("RGB")))


def _rgb_in_bands(image: Image.Image) -> np.ndarray:
    """uint8 `[H,W,3]` pixels of an RGB image, taken a band of rows at a time: `np.asarray` of
    a whole image holds two more copies of its bytes at once (Pillow's `tobytes` joins a
    list of chunks), 6 bytes a pixel next to Pillow's own 4 on a photo that may be 100 MP."""
    width, height = image.size
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, PIXEL_BAND_ROWS):
        bottom = min(top + PIXEL_BAND_ROWS, height)
        pixels[top:bottom] = np.asarray(image.crop((0, top, width, bottom)))
    return pixels


# Encoding and decoding hold the image itself (about 7 bytes a pixel at the peak: the pixels
# and Pillow's copy) on top of one tile's work, so 2**27 pixels (134 MP) stay near 1.5 GB
# (docs/results.md, "Large images"), though the format allows 2**28.
MAX_CODEC_PIXELS = 1 << 27
SIZE_LIMIT = f"at most {MAX_SIDE} per side and {MAX_CODEC_PIXELS} pixels"


def check_size(width: int, height: int) -> None:
    """Raise ValueError unless the codec takes a `width`×`height` image (also for sizes that
    come without pixels: stream headers, generation)."""
    if height == 0 or width == 0:
        raise ValueError(f"image is empty ({width}×{height})")
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_CODEC_PIXELS:
        raise ValueError(f"image of {width}×{height} is too large ({SIZE_LIMIT})")


def _from_file(source, keep_metadata: bool) -> PreparedImage:
    """Open an image file, checking its declared size before decoding any pixels; every
    error names the file."""
    name = str(source) if isinstance(source, (str, Path)) else "the input"
    try:
        with _open_within_codec_limits(source, name) as opened:
            if getattr(opened, "n_frames", 1) > 1:
                warnings.warn(f"the image has {opened.n_frames} frames; only the first is coded", UserWarning, stacklevel=3)
            # Pillow reads 16-bit RGB(A) PNGs as 8-bit without saying so; the raw mode tells.
            sixteen_bit = any(";16" in str(tile.args) for tile in opened.tile)
            if sixteen_bit:
                _notice_16bit("the image")
            try:
                opened.load()
            except (OSError, SyntaxError) as error:  # Pillow's words for a cut or damaged file
                raise ValueError(f"{name} is truncated or damaged: {error}") from error
            return _from_pil(opened, noticed_16bit=sixteen_bit, keep_metadata=keep_metadata)
    except UnidentifiedImageError as error:
        raise ValueError(f"{name} is empty" if _is_empty(source) else f"{name} is not an image Pillow can read") from error


def _open_within_codec_limits(source, name: str) -> Image.Image:
    """`Image.open`, with the codec's size limit as the only one a user hears of: it is below
    Pillow's decompression-bomb limits, whose own warning and error would speak first."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(source)
    except Image.DecompressionBombError as error:
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        size = f"of {int(claimed[1])} pixels " if claimed else ""
        raise ValueError(f"{name}: image {size}is too large ({SIZE_LIMIT})") from error
    try:
        check_size(*opened.size)
    except ValueError as error:
        opened.close()
        raise ValueError(f"{name}: {error}") from error
    return opened


def _is_empty(source) -> bool:
    """Whether an input Pillow could not identify holds no bytes at all (the likely mistake)."""
    try:
        if isinstance(source, (str, Path)):
            return Path(source).stat().st_size == 0
        source.seek(0, 2)
        return source.tell() == 0
    except (OSError, AttributeError, ValueError):  # unseekable or closed streams
        return False


def prepare_image(image, keep_metadata: bool = False) -> PreparedImage:
    """Normalise a PIL image, a path or binary file object, a uint8 array `[H,W]`/`[H,W,2]`/`[H,W,3]`/`[H,W,4]` or a float
    tensor `[3,H,W]` in [0,1]. Images and files are turned upright by their EXIF orientation;
    with `keep_metadata` their ICC profile and EXIF (`vqcodec.metadata.from_image`) come along.
    Raises ValueError (or OSError for unreadable files), also for images larger than the
    codec takes (a file is checked before its pixels are decoded) and for damaged or oversized
    metadata that is to be kept."""
    if isinstance(image, (str, Path)) or hasattr(image, "read"):
        prepared = _from_file(image, keep_metadata)
    elif isinstance(image, Image.Image):
        prepared = _from_pil(image, keep_metadata=keep_metadata)
    elif isinstance(image, np.ndarray):
        prepared = _from_array(image)
    elif isinstance(image, torch.Tensor):
        prepared = _from_tensor(image)
    else:
        raise TypeError(f"unsupported image type {type(image).__name__}; pass a PIL image, a path, a numpy array or a tensor")
    check_size(prepared.rgb.shape[1], prepared.rgb.shape[0])
    return prepared


def to_padded_tensor(rgb: np.ndarray, stride: int) -> torch.Tensor:
    """`[H,W,3]` uint8 → `[1,3,H',W']` float in [0,1], H' and W' rounded up to `stride` by
    edge replication (replicated edges cost fewer bits than zeros and are cropped away)."""
    # torch cannot share read-only memory (an image read without a copy): it gets a copy.
    pixels = torch.from_numpy(rgb) if rgb.flags.writeable else torch.tensor(rgb)
    tensor = pixels.permute(2, 0, 1).unsqueeze(0).float() / 255.0  # [1, 3, H, W]
    height, width = rgb.shape[:2]
    pad_h, pad_w = -height % stride, -width % stride
    if pad_h or pad_w:
        tensor = F.pad(tensor, (0, pad_w, 0, pad_h), mode="replicate")
    return tensor


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """Decoded `[3,H,W]` float in [0,1] → `[H,W,3]` uint8."""
    return (rgb.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


def to_image(rgb: torch.Tensor, width: int, height: int, mode: str, alpha: np.ndarray | None) -> Image.Image:
    """Decoded `[3,H',W']` in [0,1] → PIL image of `mode`, cropped to `width`×`height`."""
    return image_from_uint8(to_uint8(rgb[:, :height, :width]), mode, alpha)


def image_from_uint8(array: np.ndarray, mode: str, alpha: np.ndarray | None) -> Image.Image:
    """Decoded `[H,W,3]` uint8 → PIL image of `mode` (L, LA, RGB or RGBA; `alpha` `[H,W]`
    uint8 for the modes that have it)."""
    image = Image.fromarray(np.ascontiguousarray(array), "RGB")
    if mode in ("L", "LA"):
        image = image.convert("L")
    if mode in ("RGBA", "LA"):
        assert alpha is not None
        image.putalpha(Image.fromarray(alpha, "L"))
    return image


def encode_alpha(alpha: np.ndarray) -> bytes:
    """Lossless alpha plane: deflate of the `[H,W]` uint8 bytes."""
    return zlib.compress(np.ascontiguousarray(alpha, dtype=np.uint8).tobytes(), 9)


def decode_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    """Inverse of `encode_alpha`; inflates at most width×height bytes, so a hostile stream
    cannot make it allocate more."""
    expected = width * height
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, expected)
    except zlib.error as error:
        raise ValueError(f"alpha plane is corrupt: {error}") from error
    if len(raw) != expected or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise ValueError(f"alpha plane is corrupt: expected {expected} bytes of alpha")
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width)
