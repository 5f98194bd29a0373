"""Tests of the .vqc container format (vqcodec.bitstream): round trips, the golden layout,
every header error, truncation at every byte and single-bit corruption at every bit."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from vqcodec.bitstream import (
    ALPHA_MODES,
    FORMAT_VERSION,
    MAGIC,
    MAX_EXIF_BYTES,
    MAX_ICC_BYTES,
    MIN_TILE_TOKENS,
    MODES,
    BitstreamError,
    Header,
    join_tiles,
    pack,
    read_header,
    split_tiles,
    unpack,
    unpack_metadata,
)

# An independent statement of the v1 layout (docs/format.md), so that a change to the
# module's own structs cannot silently change the format under these tests.
FIXED = struct.Struct("<4sBBBBHHIBB8s8s")

BASE = dict(
    model_id="vq-f8",
    weights_hash=bytes(range(8)),
    prior="static",
    prior_hash=bytes(8),
    width=20,
    height=13,
    mode="RGBA",
    stride=8,
    codebook_size=256,
)
ALPHA = b"AL"
PAYLOADS = [b"s0", b"", b"s2x"]
# pack(**BASE, alpha=ALPHA, stage_payloads=PAYLOADS), written out byte by byte.
GOLDEN = bytes.fromhex(
    "89565143"
    "01"
    "00"
    "02"
    "08"
    "1400"
    "0d00"
    "00010000"
    "03"
    "05"  # magic .. id length
    "0001020304050607"
    "0000000000000000"  # weights, prior hash
    "76712d6638"  # "vq-f8"
    "02000000"
    "0061d1d7"  # alpha length, CRC
    "02000000"
    "66081263"
    "00000000"
    "00000000"
    "03000000"
    "64a2581a"  # stages 1..3
    "375cd5f3"  # header CRC
    "414c"
    "7330"
    "733278"  # alpha, stage payloads
)


def small_file() -> bytes:
    return pack(**BASE, alpha=ALPHA, stage_payloads=PAYLOADS)


def raw_header(**changes: object) -> bytes:
    """Header bytes built straight from the documented layout, with a valid header CRC.

    Keyword changes override: the BASE fields (given as raw codes for prior and mode),
    version, stages, id_length, segments (list of (length, crc), alpha first) and magic.
    """
    fields = dict(
        magic=MAGIC,
        version=1,
        prior=0,
        mode=1,
        stride=8,
        width=20,
        height=13,
        codebook_size=256,
        stages=1,
        model_id=b"vq-f8",
        weights_hash=bytes(range(8)),
        prior_hash=bytes(8),
        segments=[(0, 0), (4, 0)],
    )
    fields.update(changes)
    id_length = fields.pop("id_length", len(fields["model_id"]))
    body = FIXED.pack(
        fields["magic"],
        fields["version"],
        fields["prior"],
        fields["mode"],
        fields["stride"],
        fields["width"],
        fields["height"],
        fields["codebook_size"],
        fields["stages"],
        id_length,
        fields["weights_hash"],
        fields["prior_hash"],
    )
    body += fields["model_id"] + b"".join(struct.pack("<II", *s) for s in fields["segments"])
    return body + struct.pack("<I", zlib.crc32(body))


def test_golden_bytes():
    assert small_file() == GOLDEN


def test_golden_header_fields():
    header = read_header(GOLDEN)
    assert header == Header(
        **BASE,
        stages=3,
        alpha_length=2,
        stage_lengths=(2, 0, 3),
        alpha_crc=zlib.crc32(ALPHA),
        stage_crcs=tuple(zlib.crc32(p) for p in PAYLOADS),
    )
    assert header.grid == (2, 3)
    assert header.header_size == 75
    assert header.total_size == len(GOLDEN) == 82
    assert [header.prefix_size(n) for n in range(4)] == [77, 79, 79, 82]


@pytest.mark.parametrize("stages", range(1, 17))
@pytest.mark.parametrize("mode", MODES)
def test_round_trip(stages: int, mode: str):
    alpha = b"\x00\xff" * 7 if mode in ALPHA_MODES else b""
    # Every third stage is empty: a zero-length payload is legal.
    payloads = [bytes([i]) * (0 if i % 3 == 2 else i + 1) for i in range(stages)]
    fields = dict(BASE, mode=mode, prior="context", prior_hash=b"\xaa" * 8)
    data = pack(**fields, alpha=alpha, stage_payloads=payloads)
    header, got_alpha, got_payloads = unpack(data)
    assert (got_alpha, got_payloads) == (alpha, payloads)
    assert header.stages == stages and header.mode == mode and header.prior == "context"
    assert header.stage_lengths == tuple(len(p) for p in payloads)
    assert len(data) == header.total_size
    for n in range(1, stages + 1):
        assert unpack(data[: header.prefix_size(n)], stages=n)[2] == payloads[:n]


def test_round_trip_random_fields():
    rng = random.Random(1234)
    for _ in range(200):
        width, height = rng.randint(1, 65535), rng.randint(1, 4096)
        mode = rng.choice(MODES)
        fields = dict(
            model_id="".join(rng.choices("abz09._-", k=rng.randint(1, 64))),
            weights_hash=rng.randbytes(8),
            prior="context",
            prior_hash=rng.randbytes(8),
            width=width,
            height=height,
            mode=mode,
            stride=rng.choice((4, 8, 16)),
            codebook_size=rng.randint(2, 65536),
        )
        alpha = rng.randbytes(rng.randint(1, 40)) if mode in ALPHA_MODES else b""
        payloads = [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(1, 16))]
        header, got_alpha, got_payloads = unpack(pack(**fields, alpha=alpha, stage_payloads=payloads))
        assert (got_alpha, got_payloads) == (alpha, payloads)
        assert {k: getattr(header, k) for k in fields} == fields


def test_read_header_needs_no_payload():
    header = read_header(GOLDEN[:75])
    assert header.total_size == 82
    with pytest.raises(BitstreamError, match="header needs 75 bytes, only 74"):
        read_header(GOLDEN[:74])


def test_accepts_bytearray_and_memoryview():
    assert unpack(bytearray(GOLDEN))[2] == PAYLOADS
    assert unpack(memoryview(GOLDEN))[2] == PAYLOADS


def test_rejects_non_bytes():
    with pytest.raises(TypeError):
        unpack(GOLDEN.hex())
    with pytest.raises(TypeError):
        pack(**BASE, alpha=ALPHA, stage_payloads=["text"])


@pytest.mark.parametrize("data", [b"", b"hello world, this is a text file" * 4, b"\x89PNG\r\n", b"\x89VQD" + GOLDEN[4:]])
def test_bad_magic(data: bytes):
    with pytest.raises(BitstreamError, match="not a vqcodec file"):
        read_header(data)


@pytest.mark.parametrize("version", [0, 4, 255])
def test_unsupported_version(version: int):
    data = GOLDEN[:4] + bytes([version]) + GOLDEN[5:]
    with pytest.raises(BitstreamError, match=f"version {version}; this build reads versions 1, 2, 3"):
        unpack(data)
    # The version is judged before the rest, so a short future-version file says so too.
    with pytest.raises(BitstreamError, match="unsupported vqcodec format version"):
        read_header(data[:5])


def test_header_checksum_mismatch():
    data = bytearray(GOLDEN)
    data[8] ^= 1  # width 20 -> 21
    with pytest.raises(BitstreamError, match="header checksum mismatch"):
        read_header(bytes(data))


def test_raw_header_matches_pack():
    # The helper below must itself speak the format, or the invalid-field tests prove nothing.
    data = pack(**dict(BASE, mode="RGB"), alpha=b"", stage_payloads=[b"abcd"])
    assert raw_header(segments=[(0, 0), (4, zlib.crc32(b"abcd"))]) + b"abcd" == data


BAD_FIELDS = [
    (dict(prior=2), "prior: code 2"),
    (dict(mode=4), "mode: code 4"),
    (dict(stride=12), "stride: 12"),
    (dict(stride=0), "stride: 0"),
    (dict(width=0), "width: 0"),
    (dict(height=0), "height: 0"),
    (dict(width=65535, height=65535), "width\\*height"),
    (dict(codebook_size=1), "codebook_size: 1"),
    (dict(codebook_size=65537), "codebook_size: 65537"),
    (dict(stages=0, segments=[(0, 0)]), "stages: 0"),
    (dict(stages=17, segments=[(0, 0)] * 18), "stages: 17"),
    (dict(model_id=b"", id_length=0), "model_id length: 0"),
    (dict(model_id=b"a" * 65), "model_id length: 65"),
    (dict(model_id=b"VQ-F8"), "model_id"),
    (dict(model_id=b"vq f8"), "model_id"),
    (dict(model_id=b"vq\xe9f8"), "model_id"),
    (dict(prior_hash=b"\x01" + bytes(7)), 'prior_hash.*all zero for the "static" prior'),
    (dict(segments=[(3, 0), (4, 0)]), 'alpha_length: 3 .*must be 0 for mode "RGB"'),
    (dict(mode=2, segments=[(0, 0), (4, 0)]), "alpha_length: 0"),
    (dict(mode=2, segments=[(2 * 20 * 13 + 1025, 0), (4, 0)]), "alpha_length: 1545"),
    (dict(segments=[(0, 0), (4 * 2 * 3 + 1025, 0)]), "stage_lengths\\[0\\]: 1049"),
    (dict(segments=[(0, 0), (2**31, 0)]), "stage_lengths\\[0\\]: 2147483648"),
    (dict(segments=[(0, 0), (2**32 - 1, 0)]), "stage_lengths\\[0\\]"),
]


@pytest.mark.parametrize("changes,message", BAD_FIELDS)
def test_invalid_header_field(changes: dict, message: str):
    with pytest.raises(BitstreamError, match=f"invalid header field {message}"):
        read_header(raw_header(**changes))


def test_largest_valid_header():
    data = raw_header(
        model_id=b"z" * 64,
        stages=16,
        width=65535,
        height=4096,
        stride=4,
        codebook_size=65536,
        mode=2,
        prior=1,
        prior_hash=b"\xff" * 8,
        segments=[(2 * 65535 * 4096 + 1024, 0)] + [(0, 0)] * 16,
    )
    header = read_header(data)
    assert header.header_size == len(data) == 34 + 64 + 8 * 17 + 4
    assert header.grid == (1024, 16384)


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(model_id="Model"), "model_id"),
        (dict(model_id="a" * 65), "model_id"),
        (dict(model_id="caf\u00e9"), "model_id"),
        (dict(weights_hash=bytes(7)), "weights_hash"),
        (dict(prior="learned"), "prior"),
        (dict(prior_hash=b"\x01" * 8), "prior_hash"),
        (dict(width=65536), "width"),
        (dict(height=-1), "height"),
        (dict(width=20.0), "width"),
        (dict(mode="CMYK"), "mode"),
        (dict(stride=32), "stride"),
        (dict(stride=8.0), "stride"),
        (dict(codebook_size=70000), "codebook_size"),
        (dict(mode="RGB"), "alpha_length"),
        (dict(mode="RGBA", width=1, height=1), "alpha_length"),
    ],
)
def test_pack_rejects_invalid_fields(changes: dict, message: str):
    alpha = b"\x00" * 1100
    with pytest.raises(BitstreamError, match=f"invalid header field {message}"):
        pack(**dict(BASE, **changes), alpha=alpha, stage_payloads=[b"x"])


def test_pack_rejects_bad_stage_counts_and_sizes():
    for payloads in ([], [b"x"] * 17):
        with pytest.raises(BitstreamError, match="stages"):
            pack(**BASE, alpha=ALPHA, stage_payloads=payloads)
    with pytest.raises(BitstreamError, match="alpha_length: 0"):
        pack(**BASE, alpha=b"", stage_payloads=[b"x"])
    # 20x13 at stride 8 is a 2x3 grid: at most 4 * 6 + 1024 bytes per stage.
    pack(**BASE, alpha=ALPHA, stage_payloads=[bytes(1048)])
    with pytest.raises(BitstreamError, match="stage_lengths\\[1\\]: 1049"):
        pack(**BASE, alpha=ALPHA, stage_payloads=[b"", bytes(1049)])


def test_bad_stages_request():
    for stages in (0, 4, -1, True, 2.0, "2"):
        with pytest.raises(BitstreamError, match="stages must be in 1..3"):
            unpack(GOLDEN, stages=stages)


def test_truncation_at_every_offset():
    header = read_header(GOLDEN)
    for cut in range(len(GOLDEN)):
        prefix = GOLDEN[:cut]
        with pytest.raises(BitstreamError):
            unpack(prefix)
        whole = [n for n in range(1, 4) if header.prefix_size(n) <= cut]
        for n in range(1, 4):
            if n in whole:
                assert unpack(prefix, stages=n)[2] == PAYLOADS[:n]
            else:
                with pytest.raises(BitstreamError):
                    unpack(prefix, stages=n)


def test_truncation_messages():
    with pytest.raises(BitstreamError, match="header needs at least 34 bytes, only 20"):
        unpack(GOLDEN[:20])
    with pytest.raises(BitstreamError, match="expected 82 bytes, got 76; the alpha segment is incomplete$"):
        unpack(GOLDEN[:76])
    with pytest.raises(
        BitstreamError, match="expected 82 bytes, got 81; stage 3 of 3 is incomplete; it can still be decoded with stages<=2$"
    ):
        unpack(GOLDEN[:81])
    with pytest.raises(BitstreamError, match="expected 79 bytes, got 78; stage 1 of 3 is incomplete$"):
        unpack(GOLDEN[:78], stages=1)


def test_every_single_bit_flip_is_detected():
    for bit in range(len(GOLDEN) * 8):
        data = bytearray(GOLDEN)
        data[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            unpack(bytes(data))


def test_payload_checksum_names_the_segment():
    for offset, name in ((75, "alpha segment"), (77, "stage 1 of 3"), (81, "stage 3 of 3")):
        data = bytearray(GOLDEN)
        data[offset] ^= 0x40
        with pytest.raises(BitstreamError, match=f"payload checksum mismatch in {name}"):
            unpack(bytes(data))
    # A corrupted later stage does not stop a decode that stops before it.
    data = bytearray(GOLDEN)
    data[81] ^= 0x40
    assert unpack(bytes(data[:79]), stages=2)[2] == PAYLOADS[:2]


@pytest.mark.parametrize("stages", [None, 1, 3])
def test_trailing_data(stages: int | None):
    with pytest.raises(BitstreamError, match="trailing data: 1 bytes after the end"):
        unpack(GOLDEN + b"\x00", stages=stages)


# Version 2: the ICC profile and EXIF segments, between alpha and the stages.
ICC, EXIF = b"icc-bytes", b"II*\x00exif"


def metadata_file() -> bytes:
    return pack(**BASE, alpha=ALPHA, stage_payloads=PAYLOADS, icc_profile=ICC, exif=EXIF)


def test_metadata_makes_a_version_2_stream_and_comes_back():
    data = metadata_file()
    header = read_header(data)
    assert data[4] == 2 and header.version == 2
    assert (header.icc_length, header.exif_length) == (len(ICC), len(EXIF))
    assert header.header_size == 75 + 16 and header.total_size == len(data) == 82 + 16 + len(ICC) + len(EXIF)
    assert data[header.header_size : header.header_size + 2 + len(ICC) + len(EXIF)] == ALPHA + ICC + EXIF
    assert unpack(data) == (header, ALPHA, PAYLOADS)
    assert unpack_metadata(data) == (ICC, EXIF)
    assert unpack_metadata(data[: header.prefix_size(0)]) == (ICC, EXIF)  # a prefix that holds them is enough
    assert unpack(data[: header.prefix_size(1)], stages=1)[2] == PAYLOADS[:1]
    assert unpack_metadata(GOLDEN) == (b"", b"")
    only_exif = pack(**BASE, alpha=ALPHA, stage_payloads=PAYLOADS, exif=EXIF)
    assert unpack_metadata(only_exif) == (b"", EXIF)


def test_version_2_layout():
    """The segment table as docs/format.md states it (the CRCs of the little-endian fields)."""
    data = metadata_file()
    table = data[34 + 5 : 34 + 5 + 8 * 3]
    assert struct.unpack("<IIIIII", table) == (2, zlib.crc32(ALPHA), len(ICC), zlib.crc32(ICC), len(EXIF), zlib.crc32(EXIF))
    assert data[:5] == GOLDEN[:4] + b"\x02" and data[5:39] == GOLDEN[5:39]


def test_without_metadata_the_stream_stays_version_1():
    assert pack(**BASE, alpha=ALPHA, stage_payloads=PAYLOADS, icc_profile=b"", exif=b"") == GOLDEN


@pytest.mark.parametrize("segment", ["ICC profile", "EXIF"])
def test_a_corrupted_metadata_segment_is_detected(segment: str):
    data = bytearray(metadata_file())
    header = read_header(data)
    offset = header.header_size + len(ALPHA) + (0 if segment == "ICC profile" else len(ICC))
    data[offset] ^= 0x01
    for reader in (unpack, unpack_metadata):
        with pytest.raises(BitstreamError, match=f"checksum mismatch in {segment} segment"):
            reader(bytes(data))


def test_metadata_sizes_are_bounded_and_truncation_is_named():
    for field, bound in (("icc_length", MAX_ICC_BYTES), ("exif_length", MAX_EXIF_BYTES)):
        with pytest.raises(BitstreamError, match=field):
            Header(
                **BASE,
                stages=1,
                alpha_length=2,
                stage_lengths=(0,),
                alpha_crc=0,
                stage_crcs=(0,),
                version=2,
                **{field: bound + 1},
            )
    with pytest.raises(BitstreamError, match="version 1 has no ICC profile"):
        Header(**BASE, stages=1, alpha_length=2, stage_lengths=(0,), alpha_crc=0, stage_crcs=(0,), icc_length=4)
    data = metadata_file()
    with pytest.raises(BitstreamError, match="the alpha or metadata segments are incomplete"):
        unpack_metadata(data[: read_header(data).header_size + 5])


# A grid of 25×38 indices (300×200 pixels at stride 8) in tiles of 16: 2×3 tiles.
TILED = dict(BASE, width=300, height=200)
TILE_PAYLOADS = [[b"t%d%d" % (stage, tile) * (tile + 1) for tile in range(6)] for stage in range(3)]


def tiled_file(**options: object) -> bytes:
    payloads = [join_tiles(tiles) for tiles in TILE_PAYLOADS]
    return pack(**TILED, alpha=ALPHA, stage_payloads=payloads, tile=MIN_TILE_TOKENS, **options)


def test_a_tiled_grid_makes_a_version_3_stream_and_its_tiles_come_back():
    data = tiled_file()
    header = read_header(data)
    assert FORMAT_VERSION == 3 and data[4] == 3 and (header.version, header.tile, header.tiles) == (3, 16, 6)
    assert header.header_size == 75 + 16 + 2 and header.total_size == len(data)
    _, alpha, payloads = unpack(data)
    assert alpha == ALPHA and [split_tiles(header, p, s) for s, p in enumerate(payloads)] == TILE_PAYLOADS
    # Stage by stage as before: a prefix decodes with fewer stages, every tile of them.
    _, _, first = unpack(data[: header.prefix_size(1)], stages=1)
    assert split_tiles(header, first[0], 0) == TILE_PAYLOADS[0]
    assert unpack_metadata(tiled_file(icc_profile=ICC, exif=EXIF)) == (ICC, EXIF)
    assert split_tiles(read_header(GOLDEN), b"abc", 0) == [b"abc"]  # a grid coded whole is one tile


def test_version_3_layout():
    """The tile side follows the segment table, and a stage segment is its tile table
    (one little-endian length per tile) followed by the tile payloads, as docs/format.md states."""
    data = tiled_file()
    header = read_header(data)
    table_end = 34 + 5 + 8 * (3 + 3)
    assert struct.unpack_from("<H", data, table_end) == (16,)
    assert struct.unpack_from("<I", data, table_end + 2) == (zlib.crc32(data[: table_end + 2]),)
    first_stage = data[header.prefix_size(0) : header.prefix_size(1)]
    assert struct.unpack_from("<6I", first_stage) == tuple(len(tile) for tile in TILE_PAYLOADS[0])
    assert first_stage[24:] == b"".join(TILE_PAYLOADS[0])


def test_tile_fields_are_checked():
    fields = dict(TILED, stages=1, alpha_length=2, stage_lengths=(0,), alpha_crc=0, stage_crcs=(0,))
    with pytest.raises(BitstreamError, match="invalid header field tile: 8"):
        Header(**fields, version=3, tile=MIN_TILE_TOKENS // 2)
    with pytest.raises(BitstreamError, match="invalid header field tile: 0"):
        Header(**fields, version=3)
    with pytest.raises(BitstreamError, match="versions 1 and 2 code the grid whole"):
        Header(**fields, version=2, tile=16)


def test_a_tile_table_that_does_not_fit_its_segment_is_refused():
    with pytest.raises(BitstreamError, match="tile table of stage 1 of 1 does not fit"):
        pack(**TILED, alpha=ALPHA, stage_payloads=[b"not a table"], tile=MIN_TILE_TOKENS)
    # The same inside a stream whose CRCs all agree: lengths that add up to more than the segment.
    data = bytearray(tiled_file())
    header = read_header(data)
    start = header.prefix_size(0)
    struct.pack_into("<I", data, start, 1000)
    stage_crc = 34 + 5 + 8 * 3 + 4
    struct.pack_into("<I", data, stage_crc, zlib.crc32(data[start : header.prefix_size(1)]))
    struct.pack_into("<I", data, header.header_size - 4, zlib.crc32(data[: header.header_size - 4]))
    with pytest.raises(BitstreamError, match="tile table of stage 1 of 3 does not fit its segment"):
        unpack(bytes(data))
