"""An image's ICC profile and EXIF: taken from the source image at encode, checked, the EXIF
orientation reset (imaging turns the pixels upright), and attached to the decoded image so
that Pillow writes them back into PNG, JPEG, WebP and TIFF files. No torch here."""

from __future__ import annotations

import struct
import warnings

from PIL import Image

from vqcodec.bitstream import MAX_EXIF_BYTES, MAX_ICC_BYTES

# Pillow holds EXIF in `info["exif"]` as a JPEG APP1 body: this prefix, then the TIFF
# structure. Streams store the TIFF structure alone.
EXIF_PREFIX = b"Exif\x00\x00"
_TIFF_HEADERS = {b"II*\x00": "<", b"MM\x00*": ">"}
_ORIENTATION = 0x0112
_SHORT = 3  # TIFF field type of the orientation tag
# ICC data colour space (header bytes 16..20) that fits each coded mode.
_COLOUR_SPACES = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}
_STRIP_HINT = "code the image without its metadata with strip=True (--strip)"


def from_image(image: Image.Image) -> tuple[bytes, bytes]:
    """(ICC profile, EXIF TIFF block with orientation 1) of `image` as Pillow opened it, b""
    for either it lacks.

    Raises:
        ValueError: a profile or EXIF block that is damaged or larger than a stream holds.
    """
    icc = image.info.get("icc_profile") or b""
    if icc:
        _check_icc(icc)
    exif = image.info.get("exif") or b""
    if isinstance(exif, Image.Exif):
        exif = exif.tobytes()
    if exif:
        exif = _upright(exif.removeprefix(EXIF_PREFIX))
        if len(exif) > MAX_EXIF_BYTES:
            raise ValueError(
                f"the EXIF block is {len(exif):,} bytes, more than the {MAX_EXIF_BYTES:,} a stream holds; " + _STRIP_HINT
            )
    return icc, exif


def profile_for(icc: bytes, mode: str) -> bytes:
    """`icc` if it describes pixels coded in `mode`, else b"" with a warning: the profile of
    another colour space (a CMYK image's, whose pixels are coded as RGB) would mislabel them."""
    if icc and icc[16:20] != _COLOUR_SPACES[mode]:
        warnings.warn(
            f"the ICC profile describes {icc[16:20].decode('latin-1').strip()} data, not the "
            f"{mode} pixels vqcodec codes; it is not kept",
            UserWarning,
            stacklevel=5,
        )
        return b""
    return icc


def attach(image: Image.Image, icc_profile: bytes, exif: bytes) -> Image.Image:
    """`image` with the ICC profile and the EXIF block (as `from_image` gives them) in its
    `info`, where Pillow looks for them; empty ones are left out."""
    if icc_profile:
        image.info["icc_profile"] = icc_profile
    if exif:
        image.info["exif"] = EXIF_PREFIX + exif
    return image


def save_options(image: Image.Image) -> dict[str, bytes]:
    """`Image.save` keywords that write `image`'s ICC profile and EXIF (some writers take
    them only as keywords, not from `info`)."""
    return {key: image.info[key] for key in ("icc_profile", "exif") if image.info.get(key)}


def _check_icc(icc: bytes) -> None:
    if len(icc) > MAX_ICC_BYTES:
        raise ValueError(f"the ICC profile is {len(icc):,} bytes, more than the {MAX_ICC_BYTES:,} a stream holds; " + _STRIP_HINT)
    if len(icc) < 128 or icc[36:40] != b"acsp" or int.from_bytes(icc[:4], "big") != len(icc):
        raise ValueError(f"the ICC profile is damaged (no ICC header of its {len(icc)} bytes); " + _STRIP_HINT)


def _upright(tiff: bytes) -> bytes:
    """`tiff` with the orientation tag of its first IFD set to 1 (the pixels are upright),
    every other byte as it was (rewriting the block with Pillow would drop a thumbnail)."""
    order = _TIFF_HEADERS.get(tiff[:4])
    if order is None:
        raise ValueError("the EXIF block is damaged (no TIFF header); " + _STRIP_HINT)
    try:
        (offset,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, offset)
        for entry in range(offset + 2, offset + 2 + 12 * count, 12):
            tag, kind, number = struct.unpack_from(order + "HHI", tiff, entry)
            if tag == _ORIENTATION and kind == _SHORT and number == 1:
                patched = bytearray(tiff)
                struct.pack_into(order + "H", patched, entry + 8, 1)
                return bytes(patched)
    except struct.error as error:
        raise ValueError("the EXIF block is damaged (its first IFD runs past its end); " + _STRIP_HINT) from error
    return tiff
