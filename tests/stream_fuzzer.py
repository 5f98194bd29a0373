"""Fuzzing the stream readers: seeds, CRC-consistent mutations and one input's checks.

Used by tests/test_fuzz.py (a short hypothesis-driven run) and benchmarks/fuzz.py (the long
run). Mutations work on a parsed stream (`Parts`) and write it back with every length and
CRC recomputed, so that most inputs pass the checksums and reach the semantic checks behind
them (field rules, claims, payload decoding); a few raw byte edits on top keep the CRC and
truncation checks exercised too.

The contract under test: `read_header`, `unpack` and `decompress` return or raise
`BitstreamError`, never anything else; no input runs longer than a time limit; none
allocates more than a bound linear in the image size its header claims.
"""

from __future__ import annotations

import random
import re
import resource
import signal
import struct
import time
import tracemalloc
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

import vqcodec
from vqcodec import BitstreamError, bitstream, tiling

# The layout of docs/format.md, stated independently of the module under test.
FIXED = struct.Struct("<4sBBBBHHIBB8s8s")
SEGMENT = struct.Struct("<II")
TILE = struct.Struct("<H")  # version 3: after the segment table
TILE_LENGTH = struct.Struct("<I")  # version 3: one entry of a stage segment's tile table

# decompress runs under this claim bound, so an input decodes at most a 256×256 image: fast
# enough for thousands of inputs, large enough for multi-block grids.
FUZZ_MAX_PIXELS = 1 << 16
# Per input: Python-visible allocations (tracemalloc) and growth of the process's peak RSS
# may not exceed this much plus this many bytes per claimed (and accepted) pixel.
ALLOCATION_BASE = 64 << 20
ALLOCATION_PER_PIXEL = 1024


class Hang(Exception):
    """An input ran past the per-input time limit."""


class Unexpected(Exception):
    """An input made a reader raise something other than BitstreamError."""


@dataclass
class Parts:
    """A stream taken apart: raw header fields (codes, not names) and its segments in stream
    order (alpha, then from version 2 the ICC profile and EXIF, then the stages); the
    layout written follows the version field, whatever the segments. `table` overrides
    segment-table entries (index → (length, crc)) to make the header
    lie about its segments; `fix_crcs` False keeps `header_crc` as given."""

    fields: dict
    segments: list[bytes]
    table: dict = field(default_factory=dict)
    header_crc: int | None = None

    @classmethod
    def parse(cls, stream: bytes) -> Parts:
        header, alpha, payloads = bitstream.unpack(stream)
        metadata = list(bitstream.unpack_metadata(stream)) if header.version >= 2 else []
        fields = dict(
            magic=bitstream.MAGIC,
            version=header.version,
            tile=header.tile,
            prior=bitstream.PRIORS.index(header.prior),
            mode=bitstream.MODES.index(header.mode),
            stride=header.stride,
            width=header.width,
            height=header.height,
            codebook_size=header.codebook_size,
            stages=header.stages,
            model_id=header.model_id.encode("ascii"),
            weights_hash=header.weights_hash,
            prior_hash=header.prior_hash,
        )
        return cls(fields, [alpha, *metadata, *payloads])

    def build(self) -> bytes:
        f = self.fields
        stages, version = f["stages"] & 0xFF, f["version"] & 0xFF
        leading = 3 if version >= 2 else 1
        segments = (self.segments + [b""] * (leading + stages))[: leading + stages]
        table = [self.table.get(i, (len(s), zlib.crc32(s))) for i, s in enumerate(segments)]
        body = FIXED.pack(
            f["magic"],
            f["version"] & 0xFF,
            f["prior"] & 0xFF,
            f["mode"] & 0xFF,
            f["stride"] & 0xFF,
            f["width"] & 0xFFFF,
            f["height"] & 0xFFFF,
            f["codebook_size"] & 0xFFFFFFFF,
            stages,
            len(f["model_id"]) & 0xFF,
            f["weights_hash"],
            f["prior_hash"],
        )
        body += f["model_id"] + b"".join(SEGMENT.pack(length & 0xFFFFFFFF, crc & 0xFFFFFFFF) for length, crc in table)
        if version >= 3:
            body += TILE.pack(f["tile"] & 0xFFFF)
        crc = zlib.crc32(body) if self.header_crc is None else self.header_crc
        return body + struct.pack("<I", crc) + b"".join(segments)


def seed_streams() -> dict[str, bytes]:
    """Real streams by name: the default model's, with both priors, every mode, 1 and all
    stages, a 1×1 and a multi-block grid, metadata (version 2) and a grid coded in the
    smallest tiles (version 3); plus the committed golden streams (those under
    tests/data/retired/ name models or priors this installation may lack)."""
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 96 * 128 * 3).reshape(96, 128, 3)
    photo = np.clip(gradient + rng.normal(0, 20, gradient.shape), 0, 255).astype(np.uint8)
    images = {
        "rgb": photo,
        "gray": photo[:40, :56, 0],
        "rgba": np.dstack([photo[:24, :32], photo[:24, :32, 0]]),
        "la": np.dstack([photo[:16, :8, 1], photo[:16, :8, 2]]),
        "1x1": photo[:1, :1],
    }
    seeds = {}
    for prior in ("static", "context"):
        for name, image in images.items():
            seeds[f"{name}-{prior}"] = vqcodec.compress(image, prior=prior)
        seeds[f"rgb-{prior}-1-stage"] = vqcodec.compress(photo, prior=prior, stages=1)
        seeds[f"metadata-{prior}"] = vqcodec.compress(_with_metadata(photo[:32, :48]), prior=prior, stages=2)
        seeds[f"tiled-{prior}"] = _tiled(np.tile(photo, (2, 2, 1))[:, :232], prior=prior)  # a 24×29 grid
    data = Path(__file__).parent / "data"
    seeds.update((str(path.relative_to(data)), path.read_bytes()) for path in sorted(data.rglob("*.vqc")))
    return seeds


def _with_metadata(rgb: np.ndarray) -> Image.Image:
    image = Image.fromarray(rgb)
    image.info["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return image


def _tiled(rgb: np.ndarray, **options) -> bytes:
    """A stream coded in tiles of the smallest side the format allows: 2×2 tiles here."""
    shipped = tiling.TILE_TOKENS
    tiling.TILE_TOKENS = bitstream.MIN_TILE_TOKENS
    try:
        return vqcodec.compress(rgb, **options)
    finally:
        tiling.TILE_TOKENS = shipped


INTERESTING = {
    "version": [0, 1, 2, 3, 4, 255],
    "tile": [0, 1, 15, 16, 17, 29, 256, 65535],
    "prior": [0, 1, 2, 255],
    "mode": [0, 1, 2, 3, 4, 255],
    "stride": [0, 1, 4, 8, 16, 12, 255],
    "width": [0, 1, 2, 7, 8, 9, 255, 256, 1024, 8192, 65535],
    "height": [0, 1, 2, 7, 8, 9, 255, 256, 1024, 8192, 65535],
    "codebook_size": [0, 1, 2, 1023, 1024, 1025, 65536, 65537, 2**32 - 1],
    "stages": [0, 1, 2, 3, 4, 5, 16, 17, 255],
}


def _mutate_field(rng: random.Random, parts: Parts, seeds: list[Parts]) -> None:
    name = rng.choice([*INTERESTING, "model_id", "weights_hash", "prior_hash"])
    if name == "model_id":
        parts.fields[name] = rng.choice(
            [
                b"",
                b"x",
                b"A",
                b"vqc-f8-s10",
                b"vqc-f8-s8",
                b"vqc-f8-s4-v3",
                b"vqc-f8-s4",
                b"vqc-f8-s4-v2",
                b"a" * 64,
                b"a" * 65,
                bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))),
            ]
        )
    elif name.endswith("hash"):
        parts.fields[name] = rng.choice(
            [bytes(8), b"\xff" * 8, rng.choice(seeds).fields[name], bytes(rng.randrange(256) for _ in range(8))]
        )
    else:
        old = parts.fields[name]
        parts.fields[name] = rng.choice(INTERESTING[name] + [old + 1, max(old - 1, 0), rng.randrange(1 << 16)])


def _mutate_segment(rng: random.Random, parts: Parts, seeds: list[Parts]) -> None:
    index = rng.randrange(len(parts.segments))
    data = bytearray(parts.segments[index])
    kind = rng.randrange(7)
    if kind == 0 and data:  # flip a bit
        position = rng.randrange(len(data) * 8)
        data[position // 8] ^= 1 << (position % 8)
    elif kind == 1:  # cut to a random length (whole words or not)
        del data[rng.randrange(len(data) + 1) :]
    elif kind == 2:  # extend with random words
        data += bytes(rng.randrange(256) for _ in range(4 * rng.randrange(1, 5)))
    elif kind == 3:
        data = bytearray()
    elif kind == 4:  # the same segment of another stream
        other = rng.choice(seeds).segments
        data = bytearray(other[min(index, len(other) - 1)])
    elif kind == 5 and data:  # a run of zero or 0xff words
        start = rng.randrange(len(data))
        data[start : start + 8] = (b"\x00" if rng.random() < 0.5 else b"\xff") * len(data[start : start + 8])
    elif kind == 6:  # swap two segments
        other = rng.randrange(len(parts.segments))
        parts.segments[index], parts.segments[other] = parts.segments[other], parts.segments[index]
        return
    parts.segments[index] = bytes(data)


def _mutate_claim(rng: random.Random, parts: Parts, seeds: list[Parts]) -> None:
    """Another size for the same payloads: the header claims more (or less) than they hold."""
    scale = rng.choice([0.5, 2, 3, 8, 64])
    parts.fields["width"] = max(1, min(65535, int(parts.fields["width"] * scale) + rng.randrange(-3, 4)))
    parts.fields["height"] = max(1, min(65535, int(parts.fields["height"] * scale) + rng.randrange(-3, 4)))


def _mutate_table(rng: random.Random, parts: Parts, seeds: list[Parts]) -> None:
    """A segment-table entry that lies (length or CRC), the header CRC still recomputed."""
    index = rng.randrange(1 + (parts.fields["stages"] & 0xFF))
    length = rng.choice([0, 1, 3, 4, 1 << 20, 2**31, 2**32 - 1, rng.randrange(1 << 12)])
    crc = zlib.crc32(parts.segments[index]) if index < len(parts.segments) and rng.random() < 0.5 else rng.randrange(1 << 32)
    parts.table[index] = (length, crc)


def _mutate_tile_table(rng: random.Random, parts: Parts, seeds: list[Parts]) -> None:
    """A tile table (version 3) that lies about one tile's length, or a table put in front of
    a stage segment; the segment's CRC is recomputed, so the table itself is judged."""
    leading = 3 if parts.fields["version"] >= 2 else 1
    index = rng.randrange(leading, max(leading + 1, len(parts.segments)))
    data = bytearray(parts.segments[index] if index < len(parts.segments) else b"")
    entries = len(data) // TILE_LENGTH.size
    if entries == 0 or rng.random() < 0.2:  # a table on a segment that had none
        data[:0] = TILE_LENGTH.pack(rng.choice([0, 1, 4, len(data), 2**32 - 1]))
    else:
        entry = rng.randrange(min(entries, 64))
        length = rng.choice([0, 1, 4, 2**31, 2**32 - 1, rng.randrange(1 << 10)])
        TILE_LENGTH.pack_into(data, TILE_LENGTH.size * entry, length)
    parts.segments[index : index + 1] = [bytes(data)]


STRUCTURED = [_mutate_field, _mutate_segment, _mutate_segment, _mutate_claim, _mutate_table, _mutate_tile_table]


def _raw_edit(rng: random.Random, data: bytes) -> bytes:
    """Byte-level damage that leaves the CRCs stale (or the stream cut short)."""
    data = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0 and data:
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(data) * 8)
            data[position // 8] ^= 1 << (position % 8)
    elif kind == 1:
        del data[rng.randrange(len(data) + 1) :]
    elif kind == 2:
        data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    else:
        start = rng.randrange(len(data) + 1)
        data[start:start] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    return bytes(data)


def mutate(rng: random.Random, corpus: list[Parts]) -> tuple[bytes, Parts]:
    """One input from the corpus: 1-3 structured mutations, sometimes raw damage on top, now
    and then plain random bytes. Returns the input and its parts (what the corpus keeps)."""
    base = rng.choice(corpus)
    parts = replace(base, fields=dict(base.fields), segments=list(base.segments), table=dict(base.table))
    if rng.random() < 0.03:
        head = bitstream.MAGIC + bytes([1]) if rng.random() < 0.7 else b""
        return head + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))), parts
    for _ in range(rng.randint(1, 3)):
        rng.choice(STRUCTURED)(rng, parts, corpus)
    if rng.random() < 0.05:
        parts.header_crc = rng.randrange(1 << 32)
    data = parts.build()
    return (_raw_edit(rng, data) if rng.random() < 0.2 else data), parts


def normalise(message: str) -> str:
    """A message with its numbers and byte strings blanked: one entry per distinct check."""
    message = re.sub(r"b'[^']*'|b\"[^\"]*\"|'[^']*'", "S", message)
    message = re.sub(r"0x[0-9a-f]+|\b[0-9a-f]{16}\b", "H", message)
    return re.sub(r"\d[\d,]*", "N", message)[:160]


def claimed_pixels(data: bytes) -> int:
    """Pixels the header claims, counted only up to the bound decompress runs under."""
    try:
        return min(vqcodec.read_header(data).pixels, FUZZ_MAX_PIXELS)
    except BitstreamError:
        return 0


def allocation_bound(data: bytes) -> int:
    return ALLOCATION_BASE + ALLOCATION_PER_PIXEL * claimed_pixels(data)


TARGETS = {
    "read_header": vqcodec.read_header,
    "unpack": bitstream.unpack,
    "unpack_prefix": lambda data: bitstream.unpack(data, stages=1),
    "decompress": lambda data: vqcodec.decompress(data, max_pixels=FUZZ_MAX_PIXELS),
}


def _on_alarm(signum, frame):
    raise Hang()


@dataclass
class Result:
    outcomes: dict[str, str]  # target → "ok" or the normalised BitstreamError message
    seconds: float
    traced_peak: int  # bytes, tracemalloc's peak (0 when tracemalloc is off)
    rss_growth: int  # bytes the process's peak RSS grew by


def warm_up(corpus: list[Parts], time_limit: float) -> None:
    """Decode every seed once, so that loading the models they name (a fixed cost, not one
    an input's claim decides) is behind the process's peak RSS before inputs are measured."""
    for parts in corpus:
        check(parts.build(), time_limit)


def check(data: bytes, time_limit: float) -> Result:
    """Run every target on `data`. Raises Unexpected or Hang (the contract broken)."""
    outcomes = {}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    start = time.perf_counter()
    try:
        for name, target in TARGETS.items():
            try:
                target(data)
                outcomes[name] = "ok"
            except BitstreamError as error:
                outcomes[name] = normalise(str(error))
            except Hang:
                raise
            except Exception as error:  # noqa: BLE001 - exactly what the fuzzer hunts
                raise Unexpected(f"{name}: {type(error).__name__}: {error}") from error
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024  # KiB on Linux
    return Result(outcomes, seconds, traced, rss_growth)
