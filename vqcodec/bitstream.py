"""Container format of a .vqc stream (format versions 1, 2 and 3): pack, parse and validate.

This module is the only implementation of the byte layout, validation rules and version
policy described in docs/format.md. It imports no torch, so a stream can be inspected and
validated without loading a model. Payloads are opaque here: the entropy coder owns them.
"""

from __future__ import annotations

import itertools
import numbers
import re
import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "BitstreamError",
    "Header",
    "FORMAT_VERSION",
    "VERSIONS",
    "MAGIC",
    "PRIORS",
    "MODES",
    "ALPHA_MODES",
    "STRIDES",
    "MAX_ICC_BYTES",
    "MAX_EXIF_BYTES",
    "MIN_TILE_TOKENS",
    "join_tiles",
    "pack",
    "read_header",
    "split_tiles",
    "unpack",
    "unpack_metadata",
]

# Version 2 adds two segments, the ICC profile and the EXIF. A stream without them is written
# as version 1, byte for byte as before: older readers still take it and it spends no byte.
# Version 3 codes a large image's token grid in tiles, each stage segment a table of tile
# payloads; an image that fits one tile is still written as version 1 or 2.
FORMAT_VERSION = 3
VERSIONS = (1, 2, 3)
# A non-ASCII first byte (as in PNG) so that no text file is ever taken for a stream.
MAGIC = b"\x89VQC"
PRIORS = ("static", "context")
MODES = ("L", "RGB", "RGBA", "LA")
ALPHA_MODES = ("RGBA", "LA")  # modes whose alpha plane travels losslessly in its own segment
STRIDES = (4, 8, 16)

HASH_SIZE = 8
MAX_MODEL_ID = 64
MAX_SIDE = 65535
MAX_PIXELS = 2**28
MAX_CODEBOOK = 65536
MAX_STAGES = 16
# Bounds on declared segment sizes, so that a hostile header cannot ask a reader for more
# memory than the image could ever need. An entropy coder with probabilities of at most
# 32-bit precision spends under 4 bytes per index; alpha is coded losslessly and even an
# expanding coder stays under 2 bytes per pixel. The slack covers fixed coder overhead.
STAGE_BYTES_PER_INDEX = 4
ALPHA_BYTES_PER_PIXEL = 2
SEGMENT_SLACK = 1024
# Tiles of at least 16×16 indices keep the tile tables, and the per-tile slack, to a few
# bytes per index at most, so the bounds above stay linear in the declared pixel count.
MIN_TILE_TOKENS = 16
_TILE_LENGTH = struct.Struct("<I")  # one entry of a stage's tile table
# Metadata fits what JPEG can carry, so every stream's metadata can be written back to a
# JPEG: an ICC profile in at most 255 APP2 markers of 65,519 bytes, an EXIF block in one
# APP1 marker of 65,533 bytes after its 6-byte "Exif\0\0" prefix.
MAX_ICC_BYTES = 255 * 65519
MAX_EXIF_BYTES = 65533 - 6

_MODEL_ID = re.compile(rb"[a-z0-9._-]{1,%d}" % MAX_MODEL_ID)
# magic, version, prior, mode, stride, width, height, codebook_size, stages,
# model_id length, weights_hash, prior_hash: the fixed part, 34 bytes.
_FIXED = struct.Struct("<4sBBBBHHIBB8s8s")
_SEGMENT = struct.Struct("<II")  # one segment table entry: length, CRC32
_TILE = struct.Struct("<H")  # version 3: the tile side in indices, after the segment table
_CRC = struct.Struct("<I")
_ZERO_HASH = bytes(HASH_SIZE)


class BitstreamError(ValueError):
    """A stream, or the values given to `pack`, violate the format; the message says how."""


@dataclass(frozen=True)
class Header:
    """The parsed, validated header of a stream. Constructing one validates every field.

    Attributes:
        model_id: ASCII name of the codec, 1..64 chars of [a-z0-9._-].
        weights_hash: first 8 bytes of the sha256 of the codec weights file.
        prior: one of PRIORS.
        prior_hash: 8 bytes identifying the prior table; all zero for "static".
        width: image width in pixels, 1..65535.
        height: image height in pixels, 1..65535; width * height <= 2**28.
        mode: one of MODES.
        stride: encoder downsampling factor f, one of STRIDES.
        codebook_size: entries K per residual stage, 2..65536.
        stages: residual stages coded in the stream, 1..16.
        alpha_length: bytes of the alpha segment; > 0 iff mode is in ALPHA_MODES.
        stage_lengths: bytes of each stage's payload, len == stages; 0 is allowed.
        alpha_crc: CRC32 of the alpha segment.
        stage_crcs: CRC32 of each stage's payload, len == stages.
        icc_length: bytes of the ICC profile segment, 0..MAX_ICC_BYTES; 0 in version 1.
        exif_length: bytes of the EXIF segment, 0..MAX_EXIF_BYTES; 0 in version 1.
        icc_crc, exif_crc: CRC32 of those segments.
        version: the format version, one of VERSIONS; 2 has the two metadata segments, 3
            has them too and codes the grid in tiles.
        tile: side of the square tiles of the index grid, MIN_TILE_TOKENS..65535, in
            version 3; 0 (one tile, the whole grid) in versions 1 and 2.
    """

    model_id: str
    weights_hash: bytes
    prior: str
    prior_hash: bytes
    width: int
    height: int
    mode: str
    stride: int
    codebook_size: int
    stages: int
    alpha_length: int
    stage_lengths: tuple[int, ...]
    alpha_crc: int
    stage_crcs: tuple[int, ...]
    icc_length: int = 0
    exif_length: int = 0
    icc_crc: int = 0
    exif_crc: int = 0
    version: int = 1
    tile: int = 0

    def __post_init__(self) -> None:
        _validate_identity(self)
        _validate_image(self)
        _validate_segments(self)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the index grid: (ceil(height / stride), ceil(width / stride))."""
        return -(-self.height // self.stride), -(-self.width // self.stride)

    @property
    def tiles(self) -> int:
        """Tiles of the index grid, each coded as a grid of its own: 1 in versions 1 and 2."""
        if not self.tile:
            return 1
        h, w = self.grid
        return -(-h // self.tile) * -(-w // self.tile)

    @property
    def pixels(self) -> int:
        """width × height: the size of the image the stream claims, known from the header alone."""
        return self.width * self.height

    @property
    def header_size(self) -> int:
        """Bytes of the header, its CRC included."""
        return _header_size(len(self.model_id), self.stages, self.version)

    @property
    def total_size(self) -> int:
        """Bytes of the whole stream: header, alpha and metadata segments and every stage segment."""
        return self.prefix_size(self.stages)

    def prefix_size(self, stages: int) -> int:
        """Bytes of the shortest prefix that decodes with `stages` (0..self.stages) stages."""
        if not 0 <= stages <= self.stages:
            raise BitstreamError(f"stages must be in 0..{self.stages}, got {stages}")
        return self.header_size + self.alpha_length + self.icc_length + self.exif_length + sum(self.stage_lengths[:stages])


def pack(
    *,
    model_id: str,
    weights_hash: bytes,
    prior: str,
    prior_hash: bytes,
    width: int,
    height: int,
    mode: str,
    stride: int,
    codebook_size: int,
    alpha: bytes,
    stage_payloads: list[bytes],
    icc_profile: bytes = b"",
    exif: bytes = b"",
    tile: int = 0,
) -> bytes:
    """Build a stream from header fields, the alpha and metadata segments and the stage payloads.

    Lengths and CRC32s are computed here; the field rules are those of `Header`. The stream
    is version 3 when its grid is coded in tiles, else version 2 when it holds an ICC profile
    or EXIF, else version 1.

    Args:
        model_id, weights_hash, prior, prior_hash, width, height, mode, stride,
            codebook_size: as the `Header` attributes of the same name.
        alpha: coded alpha plane; non-empty iff mode is in ALPHA_MODES, otherwise b"".
        stage_payloads: 1..16 coded stages in residual order; each may be empty.
        icc_profile: an ICC profile, up to MAX_ICC_BYTES, or b"".
        exif: an EXIF block (TIFF structure, no "Exif\0\0" prefix), up to MAX_EXIF_BYTES, or b"".
        tile: the tile side of a grid coded in tiles (each stage payload then made by
            `join_tiles` from its tiles' payloads), or 0 for a grid coded whole.

    Returns:
        The stream, `Header.total_size` bytes.

    Raises:
        BitstreamError: a field value or a segment size is out of bounds.
        TypeError: alpha or a payload is not bytes-like.
    """
    alpha, icc_profile, exif = (bytes(_as_view(segment)) for segment in (alpha, icc_profile, exif))
    payloads = [bytes(_as_view(payload)) for payload in stage_payloads]
    header = Header(
        model_id=model_id,
        weights_hash=weights_hash,
        prior=prior,
        prior_hash=prior_hash,
        width=width,
        height=height,
        mode=mode,
        stride=stride,
        codebook_size=codebook_size,
        stages=len(payloads),
        alpha_length=len(alpha),
        stage_lengths=tuple(len(payload) for payload in payloads),
        alpha_crc=zlib.crc32(alpha),
        stage_crcs=tuple(zlib.crc32(p) for p in payloads),
        icc_length=len(icc_profile),
        exif_length=len(exif),
        icc_crc=zlib.crc32(icc_profile),
        exif_crc=zlib.crc32(exif),
        version=3 if tile else 2 if icc_profile or exif else 1,
        tile=tile,
    )
    for stage, payload in enumerate(payloads):
        split_tiles(header, payload, stage)  # a table that does not fit its segment is refused here
    metadata = [icc_profile, exif] if header.version >= 2 else []
    return b"".join([_encode_header(header), alpha, *metadata, *payloads])


def join_tiles(payloads: list[bytes]) -> bytes:
    """The stage segment of a tiled (version 3) stream: its tiles' lengths, then their payloads."""
    return b"".join([*(_TILE_LENGTH.pack(len(payload)) for payload in payloads), *payloads])


def split_tiles(header: Header, segment: bytes, stage: int) -> list[bytes]:
    """The tile payloads of stage `stage`'s (0-based) segment, in row-major tile order: the
    segment itself for a stream coded whole.

    Raises:
        BitstreamError: the tile table does not fit the segment.
    """
    if not header.tile:
        return [segment]
    count, table = header.tiles, _TILE_LENGTH.size * header.tiles
    lengths = [length for (length,) in _TILE_LENGTH.iter_unpack(segment[:table])] if len(segment) >= table else []
    if len(lengths) != count or table + sum(lengths) != len(segment):
        raise BitstreamError(
            f"tile table of stage {stage + 1} of {header.stages} does not fit its segment "
            f"({count} tiles in {len(segment)} bytes): the file is corrupt"
        )
    offsets = list(itertools.accumulate(lengths, initial=table))
    return [segment[start:stop] for start, stop in zip(offsets, offsets[1:])]


def read_header(data: bytes | bytearray | memoryview) -> Header:
    """Parse and validate the header at the start of `data`; the payload need not be present.

    Raises:
        BitstreamError: bad magic, unsupported version, truncated header, header checksum
            mismatch or an invalid field value.
        TypeError: data is not bytes-like.
    """
    view = _as_view(data)
    _check_magic_and_version(view)
    if len(view) < _FIXED.size:
        raise BitstreamError(f"file is truncated: the header needs at least {_FIXED.size} bytes, only {len(view)} are present")
    fields = _FIXED.unpack_from(view)
    version, stages, id_length = fields[1], fields[8], fields[9]
    # These two decide the header size, so they are bounded before anything is read by them.
    _check_range("model_id length", id_length, 1, MAX_MODEL_ID)
    _check_range("stages", stages, 1, MAX_STAGES)
    size = _header_size(id_length, stages, version)
    if len(view) < size:
        raise BitstreamError(f"file is truncated: the header needs {size} bytes, only {len(view)} are present")
    (stored,) = _CRC.unpack_from(view, size - _CRC.size)
    computed = zlib.crc32(view[: size - _CRC.size])
    if stored != computed:
        raise BitstreamError(
            f"header checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the header is corrupted"
        )
    return _decode_header(view, fields)


def unpack(data: bytes | bytearray | memoryview, stages: int | None = None) -> tuple[Header, bytes, list[bytes]]:
    """Split a stream into its header, alpha segment and stage payloads, checking every CRC.

    Args:
        data: the stream. With stages=None it must be complete; with stages=n a prefix of at
            least `header.prefix_size(n)` bytes is enough (progressive decoding).
        stages: how many stages to return, 1..header.stages, or None for all of them.

    Returns:
        (header, alpha, payloads) with len(payloads) == stages or header.stages.

    Raises:
        BitstreamError: any `read_header` error, a bad `stages` request, truncation,
            a payload checksum mismatch, a tile table that does not fit its segment or
            trailing data after the stream.
        TypeError: data is not bytes-like.
    """
    view = _as_view(data)
    header = read_header(view)
    if stages is None:
        wanted = header.stages
    elif isinstance(stages, bool) or not isinstance(stages, numbers.Integral) or not 1 <= stages <= header.stages:
        raise BitstreamError(f"stages must be in 1..{header.stages} for this file, got {stages!r}")
    else:
        wanted = int(stages)
    if len(view) > header.total_size:
        raise BitstreamError(
            f"trailing data: {len(view) - header.total_size} bytes after the "
            f"end of the stream (expected {header.total_size} bytes, got "
            f"{len(view)})"
        )
    needed = header.total_size if stages is None else header.prefix_size(wanted)
    if len(view) < needed:
        raise _truncation_error(header, len(view), needed)
    segments = _read_segments(view, header, wanted)
    payloads = segments[len(segments) - wanted :]
    for stage, payload in enumerate(payloads):
        split_tiles(header, payload, stage)
    return header, segments[0], payloads


def unpack_metadata(data: bytes | bytearray | memoryview) -> tuple[bytes, bytes]:
    """The ICC profile and the EXIF block of a stream (b"" where it has none), with the CRCs of
    every segment before the stages checked; any prefix that holds those segments will do.

    Raises:
        BitstreamError: any `read_header` error, truncation or a checksum mismatch.
        TypeError: data is not bytes-like.
    """
    view = _as_view(data)
    header = read_header(view)
    if len(view) < header.prefix_size(0):
        raise _truncation_error(header, len(view), header.prefix_size(0))
    segments = _read_segments(view, header, 0)
    return (segments[1], segments[2]) if header.version >= 2 else (b"", b"")


def _as_view(data: object) -> memoryview:
    # bytes(5) would silently make five zero bytes, so only real buffers are accepted.
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes-like data, got {type(data).__name__}")
    return memoryview(data).cast("B")


def _leading_segments(version: int) -> int:
    """Segments before the stages: alpha, then (version 2) the ICC profile and the EXIF."""
    return 3 if version >= 2 else 1


def _header_size(id_length: int, stages: int, version: int) -> int:
    tile = _TILE.size if version >= 3 else 0
    return _FIXED.size + id_length + _SEGMENT.size * (_leading_segments(version) + stages) + tile + _CRC.size


# The longest header any valid stream can have: readers fetch this much before trusting sizes.
MAX_HEADER_SIZE = _header_size(MAX_MODEL_ID, MAX_STAGES, FORMAT_VERSION)


def _check_magic_and_version(view: memoryview) -> None:
    head = bytes(view[: len(MAGIC)])
    if not head:
        raise BitstreamError("not a vqcodec file: the input is empty")
    if not MAGIC.startswith(head):
        raise BitstreamError(f"not a vqcodec file (magic {head!r}, expected {MAGIC!r})")
    if len(view) <= len(MAGIC):
        raise BitstreamError(f"file is truncated: the header needs at least {_FIXED.size} bytes, only {len(view)} are present")
    version = view[len(MAGIC)]
    if version not in VERSIONS:
        raise BitstreamError(
            f"unsupported vqcodec format version {version}; this build reads versions {', '.join(map(str, VERSIONS))}"
        )


def _decode_header(view: memoryview, fields: tuple) -> Header:
    _, version, prior, mode, stride, width, height, codebook_size, stages, id_length, weights_hash, prior_hash = fields
    raw_id = bytes(view[_FIXED.size : _FIXED.size + id_length])
    if not _MODEL_ID.fullmatch(raw_id):
        raise BitstreamError(f"invalid header field model_id: {raw_id!r} (must be 1..{MAX_MODEL_ID} chars of [a-z0-9._-])")
    leading = _leading_segments(version)
    table = [_SEGMENT.unpack_from(view, _FIXED.size + id_length + _SEGMENT.size * i) for i in range(leading + stages)]
    lengths, crcs = zip(*table)
    metadata = dict(icc_length=lengths[1], exif_length=lengths[2], icc_crc=crcs[1], exif_crc=crcs[2]) if version >= 2 else {}
    if version >= 3:
        (metadata["tile"],) = _TILE.unpack_from(view, _FIXED.size + id_length + _SEGMENT.size * (leading + stages))
    return Header(
        model_id=raw_id.decode("ascii"),
        weights_hash=weights_hash,
        prior=_name_of("prior", PRIORS, prior),
        prior_hash=prior_hash,
        width=width,
        height=height,
        mode=_name_of("mode", MODES, mode),
        stride=stride,
        codebook_size=codebook_size,
        stages=stages,
        alpha_length=lengths[0],
        stage_lengths=lengths[leading:],
        alpha_crc=crcs[0],
        stage_crcs=crcs[leading:],
        version=version,
        **metadata,
    )


def _encode_header(header: Header) -> bytes:
    fixed = _FIXED.pack(
        MAGIC,
        header.version,
        PRIORS.index(header.prior),
        MODES.index(header.mode),
        header.stride,
        header.width,
        header.height,
        header.codebook_size,
        header.stages,
        len(header.model_id),
        header.weights_hash,
        header.prior_hash,
    )
    table = b"".join(_SEGMENT.pack(length, crc) for _, length, crc in _segments(header, header.stages))
    tile = _TILE.pack(header.tile) if header.version >= 3 else b""
    body = fixed + header.model_id.encode("ascii") + table + tile
    return body + _CRC.pack(zlib.crc32(body))


def _segments(header: Header, stages: int) -> list[tuple[str, int, int]]:
    """(name, length, CRC32) of the segments up to the end of stage `stages`, in stream order."""
    leading = [("alpha segment", header.alpha_length, header.alpha_crc)]
    if header.version >= 2:
        leading += [
            ("ICC profile segment", header.icc_length, header.icc_crc),
            ("EXIF segment", header.exif_length, header.exif_crc),
        ]
    return leading + [(f"stage {i + 1} of {header.stages}", header.stage_lengths[i], header.stage_crcs[i]) for i in range(stages)]


def _read_segments(view: memoryview, header: Header, stages: int) -> list[bytes]:
    segments, offset = [], header.header_size
    for name, length, crc in _segments(header, stages):
        segment = bytes(view[offset : offset + length])
        if zlib.crc32(segment) != crc:
            raise BitstreamError(f"payload checksum mismatch in {name}: the file is corrupted")
        segments.append(segment)
        offset += length
    return segments


def _truncation_error(header: Header, present: int, needed: int) -> BitstreamError:
    complete = sum(header.prefix_size(n) <= present for n in range(1, header.stages + 1))
    if present < header.prefix_size(0):
        where = "the alpha segment is incomplete" if header.version == 1 else "the alpha or metadata segments are incomplete"
    else:
        where = f"stage {complete + 1} of {header.stages} is incomplete"
    if complete:
        where += f"; it can still be decoded with stages<={complete}"
    return BitstreamError(f"file is truncated: expected {needed} bytes, got {present}; {where}")


def _name_of(field: str, names: tuple[str, ...], index: int) -> str:
    if index >= len(names):
        raise BitstreamError(f"invalid header field {field}: code {index} (must be 0..{len(names) - 1} for {', '.join(names)})")
    return names[index]


def _check_range(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BitstreamError(f"invalid header field {field}: {value!r} (must be an integer in {low}..{high})")


def _check(ok: bool, field: str, value: object, rule: str) -> None:
    if not ok:
        raise BitstreamError(f"invalid header field {field}: {value!r} ({rule})")


def _validate_identity(header: Header) -> None:
    model_id = header.model_id
    _check(
        isinstance(model_id, str) and model_id.isascii() and _MODEL_ID.fullmatch(model_id.encode("ascii")) is not None,
        "model_id",
        model_id,
        f"must be 1..{MAX_MODEL_ID} chars of [a-z0-9._-]",
    )
    for field in ("weights_hash", "prior_hash"):
        value = getattr(header, field)
        _check(isinstance(value, bytes) and len(value) == HASH_SIZE, field, value, f"must be {HASH_SIZE} bytes")
    _check(header.prior in PRIORS, "prior", header.prior, f"must be one of {PRIORS}")
    _check(
        header.prior != "static" or header.prior_hash == _ZERO_HASH,
        "prior_hash",
        header.prior_hash,
        'must be all zero for the "static" prior',
    )


def _validate_image(header: Header) -> None:
    _check_range("width", header.width, 1, MAX_SIDE)
    _check_range("height", header.height, 1, MAX_SIDE)
    _check(header.pixels <= MAX_PIXELS, "width*height", header.pixels, f"must be at most 2**28 = {MAX_PIXELS}")
    _check(header.mode in MODES, "mode", header.mode, f"must be one of {MODES}")
    stride = header.stride
    _check(
        isinstance(stride, int) and not isinstance(stride, bool) and stride in STRIDES,
        "stride",
        stride,
        f"must be one of {STRIDES}",
    )
    _check_range("codebook_size", header.codebook_size, 2, MAX_CODEBOOK)
    _check_range("stages", header.stages, 1, MAX_STAGES)


def _validate_segments(header: Header) -> None:
    _check(header.version in VERSIONS, "version", header.version, f"must be one of {VERSIONS}")
    _check(
        header.version >= 2 or header.icc_length == header.exif_length == 0,
        "version",
        header.version,
        "version 1 has no ICC profile or EXIF segment",
    )
    _check_range("icc_length", header.icc_length, 0, MAX_ICC_BYTES)
    _check_range("exif_length", header.exif_length, 0, MAX_EXIF_BYTES)
    for field in ("stage_lengths", "stage_crcs"):
        value = getattr(header, field)
        _check(
            isinstance(value, tuple) and len(value) == header.stages,
            field,
            value,
            f"must be a tuple of {header.stages} integers, one per stage",
        )
    if header.mode in ALPHA_MODES:
        alpha_max = ALPHA_BYTES_PER_PIXEL * header.pixels + SEGMENT_SLACK
        _check_range("alpha_length", header.alpha_length, 1, alpha_max)
    else:
        _check(
            header.alpha_length == 0,
            "alpha_length",
            header.alpha_length,
            f'must be 0 for mode "{header.mode}"; only {" and ".join(ALPHA_MODES)} carry alpha',
        )
    if header.version >= 3:
        _check_range("tile", header.tile, MIN_TILE_TOKENS, 65535)
    else:
        _check(header.tile == 0, "tile", header.tile, "versions 1 and 2 code the grid whole")
    grid_h, grid_w = header.grid
    # Each tile is a grid of its own, with its own coder overhead and an entry in the table.
    stage_max = STAGE_BYTES_PER_INDEX * grid_h * grid_w + (SEGMENT_SLACK + _TILE_LENGTH.size * bool(header.tile)) * header.tiles
    for i, length in enumerate(header.stage_lengths):
        _check_range(f"stage_lengths[{i}]", length, 0, stage_max)
    for i, crc in enumerate((header.alpha_crc, *header.stage_crcs)):
        _check_range("alpha_crc" if i == 0 else f"stage_crcs[{i - 1}]", crc, 0, 2**32 - 1)
    for field in ("icc_crc", "exif_crc"):
        _check_range(field, getattr(header, field), 0, 2**32 - 1)
