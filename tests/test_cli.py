"""The vqcodec command line through click's CliRunner: exit codes, --force, no partial outputs."""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import vqcodec
from vqcodec.cli import main


@pytest.fixture()
def workdir(tmp_path, sample_crop):
    sample_crop.save(tmp_path / "a.png")
    sample_crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "b.png")
    return tmp_path


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def test_encode_decode_info_round_trip(workdir):
    assert run("encode", workdir / "a.png", workdir / "a.vqc").exit_code == 0
    result = run("decode", workdir / "a.vqc", workdir / "out.png")
    assert result.exit_code == 0, result.output
    assert Image.open(workdir / "out.png").size == (128, 96)
    info = run("info", workdir / "a.vqc", "--json")
    fields = json.loads(info.output)
    assert fields["total_bytes"] == fields["file_bytes"] == (workdir / "a.vqc").stat().st_size
    assert fields["bpp"] == pytest.approx(fields["total_bytes"] * 8 / (128 * 96), rel=1e-5)
    assert "bpp" in run("info", workdir / "a.vqc").output


def test_rdo_option_trades_size_and_refuses_what_it_cannot_do(workdir):
    for name, strength in (("plain", 0), ("default", None), ("strong", 4)):
        extra = [] if strength is None else ["--rdo", strength]
        assert run("encode", *extra, workdir / "a.png", workdir / f"{name}.vqc").exit_code == 0
    sizes = {name: (workdir / f"{name}.vqc").stat().st_size for name in ("plain", "default", "strong")}
    assert sizes["strong"] < sizes["default"] < sizes["plain"]
    refused = run("encode", "--prior", "static", "--rdo", 1, workdir / "a.png", workdir / "s.vqc")
    assert refused.exit_code == 1 and "context prior" in refused.output and not (workdir / "s.vqc").exists()
    for bad in (99, -1):
        assert run("encode", "--rdo", bad, workdir / "a.png", workdir / "s.vqc").exit_code == 2
    not_a_number = run("encode", "--rdo", "nan", workdir / "a.png", workdir / "s.vqc")  # click's range lets NaN through
    assert not_a_number.exit_code == 1 and "rdo must be a number" in not_a_number.output
    assert not (workdir / "s.vqc").exists()
    assert run("encode", "--stages", 1, "--rdo", 0, workdir / "a.png", workdir / "p1.vqc").exit_code == 0
    rows = json.loads(run("evaluate", workdir / "a.png", "--stages", 1, "--rdo", 0, "--json").stdout)["per_image"]
    assert rows[0]["bytes"] == (workdir / "p1.vqc").stat().st_size  # evaluate passes --rdo on


def test_fewer_stages_smaller_file(workdir):
    assert run("encode", "--stages", 1, workdir / "a.png", workdir / "s1.vqc").exit_code == 0
    assert run("encode", "--stages", 2, workdir / "a.png", workdir / "s2.vqc").exit_code == 0
    assert (workdir / "s1.vqc").stat().st_size < (workdir / "s2.vqc").stat().st_size


def test_refuses_to_overwrite_without_force(workdir):
    (workdir / "a.vqc").write_bytes(b"keep me")
    result = run("encode", workdir / "a.png", workdir / "a.vqc")
    assert result.exit_code == 1 and "--force" in result.output
    assert (workdir / "a.vqc").read_bytes() == b"keep me"
    assert run("encode", "--force", workdir / "a.png", workdir / "a.vqc").exit_code == 0
    assert (workdir / "a.vqc").read_bytes() != b"keep me"


def test_never_writes_over_the_input(workdir):
    before = (workdir / "a.png").read_bytes()
    result = run("encode", "--force", workdir / "a.png", workdir / "a.png")
    assert result.exit_code == 2
    assert (workdir / "a.png").read_bytes() == before


def test_training_commands_check_their_output_before_the_work(workdir, monkeypatch):
    # The files are placeholders: each check must refuse before anything reads them.
    codec, prior = workdir / "codec.safetensors", workdir / "prior.safetensors"
    codec.write_bytes(b"codec weights")
    prior.write_bytes(b"a prior")
    over_codec = run("train-prior", workdir, codec, "--codec", codec, "--force")
    over_search_prior = run("train-prior", workdir, prior, "--codec", codec, "--search-prior", prior, "--force")
    assert over_codec.exit_code == over_search_prior.exit_code == 2
    assert "same file as input" in over_codec.output and "same file as input" in over_search_prior.output
    assert codec.read_bytes() == b"codec weights" and prior.read_bytes() == b"a prior"
    no_folder = run("export-model", codec, workdir / "missing" / "out.safetensors", "--data-dir", workdir)
    assert no_folder.exit_code == 2 and "does not exist" in no_folder.output
    (workdir / "next.pt").write_bytes(b"keep me")
    exists = run("leg-state", codec, workdir / "next.pt")
    assert exists.exit_code == 1 and "--force" in exists.output
    assert (workdir / "next.pt").read_bytes() == b"keep me"
    assert run("leg-state", codec, workdir).exit_code == 2  # a folder, not a file
    monkeypatch.chdir(workdir)
    (workdir / "-").write_bytes(b"a file named -")
    dash = run("leg-state", codec, "-")
    assert dash.exit_code == 1 and "--force" in dash.output and (workdir / "-").read_bytes() == b"a file named -"


def test_two_images_without_out_dir_are_not_taken_as_input_and_output(workdir):
    before = (workdir / "b.png").read_bytes()
    result = run("encode", "--force", workdir / "a.png", workdir / "b.png")
    assert result.exit_code == 2 and "--out-dir" in result.output
    assert (workdir / "b.png").read_bytes() == before


def test_bad_input_fails_cleanly_and_leaves_no_output(workdir):
    (workdir / "junk.vqc").write_bytes(b"not a stream at all")
    result = run("decode", workdir / "junk.vqc", workdir / "out.png")
    assert result.exit_code == 1
    assert "not a vqcodec file" in result.output and "Traceback" not in result.output
    assert not (workdir / "out.png").exists()
    (workdir / "junk.png").write_bytes(b"\x89PNG broken")
    assert run("encode", workdir / "junk.png", workdir / "j.vqc").exit_code == 1
    assert not (workdir / "j.vqc").exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["a.png", "b.png", "junk.png", "junk.vqc"]


def test_missing_input_is_an_error(workdir):
    result = run("encode", workdir / "nope.png", workdir / "x.vqc")
    assert result.exit_code == 1 and "nope.png" in result.output


def test_usage_errors_exit_2(workdir):
    assert run("encode", workdir / "a.png").exit_code == 2
    assert run("encode", "--stages", 1, "--bpp", 0.5, workdir / "a.png", workdir / "x.vqc").exit_code == 2
    assert run("encode", "--stages", 0, workdir / "a.png", workdir / "x.vqc").exit_code == 2
    both = run("encode", "-q", 50, "--rdo", 1, workdir / "a.png", workdir / "x.vqc")
    assert both.exit_code == 2 and "--quality sets the rdo strength too" in both.output
    assert run("frobnicate").exit_code == 2


def test_truncated_file_decodes_with_fewer_stages(workdir):
    run("encode", workdir / "a.png", workdir / "a.vqc")
    data = (workdir / "a.vqc").read_bytes()
    fields = json.loads(run("info", workdir / "a.vqc", "--json").output)
    prefix = data[: fields["header_bytes"] + fields["stage_bytes"][0]]
    (workdir / "cut.vqc").write_bytes(prefix)
    failed = run("decode", workdir / "cut.vqc", workdir / "full.png")
    assert failed.exit_code == 1 and "stages<=1" in failed.output
    assert run("decode", "--stages", 1, workdir / "cut.vqc", workdir / "one.png").exit_code == 0
    assert not (workdir / "full.png").exists()


def test_stdin_and_stdout(workdir):
    encoded = CliRunner().invoke(main, ["encode", "-", "-"], input=(workdir / "a.png").read_bytes())
    assert encoded.exit_code == 0
    decoded = CliRunner().invoke(main, ["decode", "-", "-"], input=encoded.stdout_bytes)
    assert decoded.exit_code == 0 and decoded.stdout_bytes.startswith(b"\x89PNG")


def test_several_inputs_with_out_dir(workdir):
    result = run("encode", workdir / "a.png", workdir / "b.png", "--out-dir", workdir / "enc")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (workdir / "enc").iterdir()) == ["a.vqc", "b.vqc"]
    result = run("decode", workdir / "enc" / "a.vqc", workdir / "enc" / "b.vqc", "--out-dir", workdir / "dec")
    assert result.exit_code == 0
    assert sorted(p.name for p in (workdir / "dec").iterdir()) == ["a.png", "b.png"]
    again = run("encode", workdir / "a.png", workdir / "b.png", "--out-dir", workdir / "enc")
    assert again.exit_code == 1 and "--force" in again.output


def test_out_dir_is_created_for_a_single_input(workdir):
    result = run("encode", workdir / "a.png", "--out-dir", workdir / "new" / "deeper")
    assert result.exit_code == 0, result.output
    assert (workdir / "new" / "deeper" / "a.vqc").is_file()


def test_info_reads_only_what_the_header_declares(workdir):
    run("encode", workdir / "a.png", workdir / "a.vqc")
    padded = workdir / "padded.vqc"
    padded.write_bytes((workdir / "a.vqc").read_bytes() + bytes(1_000_000))
    fields = json.loads(run("info", padded, "--json").output)
    assert fields["file_bytes"] == padded.stat().st_size and fields["complete"] is True
    assert fields["trailing_bytes"] == 1_000_000
    result = run("decode", padded, workdir / "out.png")
    assert result.exit_code == 1 and "trailing data: 1000000 bytes" in result.output
    truncated = workdir / "truncated.vqc"
    truncated.write_bytes((workdir / "a.vqc").read_bytes()[:-1])
    fields = json.loads(run("info", truncated, "--json").output)
    assert fields["complete"] is False and fields["trailing_bytes"] == 0


def test_generate_is_deterministic_per_seed(workdir):
    for name in ("g1.png", "g2.png"):
        result = run("generate", workdir / name, "--size", "32x24", "--seed", 7, "--steps", 2)
        assert result.exit_code == 0, result.output
    assert (workdir / "g1.png").read_bytes() == (workdir / "g2.png").read_bytes()
    assert Image.open(workdir / "g1.png").size == (32, 24)
    assert run("generate", workdir / "g1.png", "--size", "32x24").exit_code == 1  # exists, no --force
    assert run("generate", workdir / "g3.png", "--size", "wide").exit_code == 2


def test_inpaint_changes_only_the_masked_cells(workdir):
    import numpy as np

    import vqcodec

    mask = np.zeros((96, 128), np.uint8)
    mask[32:64, 40:80] = 255
    Image.fromarray(mask).save(workdir / "mask.png")
    result = run(
        "inpaint",
        workdir / "a.png",
        workdir / "mask.png",
        workdir / "edit.png",
        "--seed",
        1,
        "--steps",
        2,
        "--decoder",
        "fidelity",
    )
    assert result.exit_code == 0, result.output
    edited = np.asarray(Image.open(workdir / "edit.png"))
    reconstruction = np.asarray(vqcodec.decompress(vqcodec.compress(workdir / "a.png", rdo=0)))  # nearest codewords
    outside = np.ones((96, 128), bool)
    outside[32:64, 40:80] = False  # the mask lies on whole 8×8 cells
    assert np.array_equal(edited[outside], reconstruction[outside])
    assert not np.array_equal(edited[~outside], reconstruction[~outside])


def test_inpaint_never_writes_over_its_mask(workdir):
    mask = Image.new("L", (128, 96))
    mask.paste(255, (0, 0, 16, 16))
    mask.save(workdir / "mask.png")
    before = (workdir / "mask.png").read_bytes()
    result = run("inpaint", workdir / "a.png", workdir / "mask.png", workdir / "mask.png", "--force")
    assert result.exit_code == 2 and "same file as input" in result.output
    assert (workdir / "mask.png").read_bytes() == before


def test_outputs_that_cannot_be_written_are_refused_before_any_work(workdir):
    run("encode", workdir / "a.png", workdir / "a.vqc")
    missing = run("decode", workdir / "a.vqc", workdir / "nowhere" / "out.png")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    os.mkfifo(workdir / "fifo")
    fifo = run("encode", workdir / "a.png", workdir / "fifo", "--force")
    assert fifo.exit_code == 2 and "not a regular file" in fifo.output
    assert stat.S_ISFIFO((workdir / "fifo").stat().st_mode)  # still a pipe, not replaced by a file
    unwritable = run("decode", workdir / "a.vqc", workdir / "out.psd")
    assert unwritable.exit_code == 1 and "cannot write .psd" in unwritable.output
    assert not (workdir / "out.psd").exists()


def test_formats_that_would_change_the_image_are_refused(workdir):
    rgba = Image.new("RGBA", (40, 30), (10, 200, 30, 128))
    rgba.save(workdir / "rgba.png")
    run("encode", workdir / "rgba.png", workdir / "rgba.vqc")
    for suffix in (".bmp", ".gif", ".jpg"):
        result = run("decode", workdir / "rgba.vqc", workdir / f"out{suffix}")
        assert result.exit_code == 1 and "alpha" in result.output, suffix
    resized = run("decode", workdir / "rgba.vqc", workdir / "out.ico")  # icons come in fixed sizes
    assert resized.exit_code == 1 and "40×30" in resized.output
    assert run("decode", workdir / "rgba.vqc", workdir / "out.tif").exit_code == 0


def test_evaluate_json_is_strict_json_for_tiny_images(workdir):
    Image.new("RGB", (1, 1), (50, 60, 70)).save(workdir / "one.png")
    result = run("evaluate", workdir / "one.png", "--json", "--stages", 1)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert document["results"]["ms-ssim-rgb"] == [None] and document["per_image"][0]["ms_ssim"] is None
    assert "n/a" in run("evaluate", workdir / "one.png", "--stages", 1).output


def test_stdin_that_is_not_an_image_and_out_of_range_seeds_are_clear_errors(workdir):
    empty = run("encode", "-", workdir / "e.vqc", input=b"")
    assert empty.exit_code == 1 and "the input is empty" in empty.output
    junk = run("encode", "-", workdir / "j.vqc", input=b"not an image")
    assert junk.exit_code == 1 and "not an image" in junk.output
    assert run("generate", workdir / "g.png", "--size", "8x8", "--seed", 1 << 70).exit_code == 2


def test_warnings_are_one_line_without_source_paths(workdir):
    Image.fromarray(np.full((24, 32), 40000, np.uint16)).save(workdir / "deep.png")
    result = CliRunner().invoke(main, ["encode", str(workdir / "deep.png"), str(workdir / "deep.vqc")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("warning:") and "16-bit" in lines[0] and ".py" not in lines[0]
    assert lines[1].startswith(f"{workdir / 'deep.vqc'}: ")  # the result line
    quiet = CliRunner().invoke(main, ["encode", "--quiet", "--force", str(workdir / "deep.png"), str(workdir / "deep.vqc")])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels: enough for Pillow's size checks."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_a_batch_goes_on_past_bad_inputs_and_reports_each_once(workdir):
    (workdir / "junk.png").write_bytes(b"\x89PNG broken")
    inputs = [workdir / "a.png", workdir / "junk.png", workdir / "gone.png", workdir / "b.png"]
    result = run("encode", *inputs, "--out-dir", workdir / "enc")
    assert result.exit_code == 1
    assert sorted(p.name for p in (workdir / "enc").iterdir()) == ["a.vqc", "b.vqc"]
    lines = error_lines(result)
    assert lines[-1] == "encoding: 2 of 4 files done, 2 failed"
    failures = [line for line in lines if line.startswith("Error: ")]
    assert len(failures) == 2 and "Traceback" not in result.output
    assert failures[0] == f"Error: {workdir / 'junk.png'} is not an image Pillow can read"
    assert failures[1] == f"Error: {workdir / 'gone.png'}: No such file or directory"
    (workdir / "junk.vqc").write_bytes(b"\x89VQC\x01 cut short")
    decoded = run(
        "decode", workdir / "enc" / "a.vqc", workdir / "junk.vqc", workdir / "enc" / "b.vqc", "--out-dir", workdir / "dec"
    )
    assert decoded.exit_code == 1 and sorted(p.name for p in (workdir / "dec").iterdir()) == ["a.png", "b.png"]
    lines = error_lines(decoded)
    assert lines[-2].startswith(f"Error: {workdir / 'junk.vqc'}: file is truncated") and lines[-2].count("junk.vqc") == 1
    assert lines[-1] == "decoding: 2 of 3 files done, 1 failed"
    assert run("encode", workdir / "a.png", workdir / "b.png", "--out-dir", workdir / "enc2").exit_code == 0


def test_jobs_code_files_in_parallel_processes_with_the_same_bytes(workdir):
    (workdir / "junk.png").write_bytes(b"not an image")
    inputs = [workdir / "a.png", workdir / "junk.png", workdir / "b.png"]
    result = run("encode", *inputs, "--out-dir", workdir / "par", "--jobs", 2, "--stages", 1)
    assert result.exit_code == 1, result.output
    assert error_lines(result)[-2:] == [
        f"Error: {workdir / 'junk.png'} is not an image Pillow can read",
        "encoding: 2 of 3 files done, 1 failed",
    ]
    assert run("encode", workdir / "a.png", workdir / "b.png", "--out-dir", workdir / "seq", "--stages", 1).exit_code == 0
    for name in ("a.vqc", "b.vqc"):
        assert (workdir / "par" / name).read_bytes() == (workdir / "seq" / name).read_bytes()
    assert run("encode", workdir / "a.png", workdir / "x.vqc", "--jobs", 0).exit_code == 2


def test_decode_refuses_claims_above_max_pixels(workdir):
    run("encode", workdir / "a.png", workdir / "a.vqc")
    refused = run("decode", workdir / "a.vqc", workdir / "out.png", "--max-pixels", 1000)
    assert refused.exit_code == 1 and "128×96 image (12,288 pixels), more than max_pixels=1,000" in refused.output
    assert not (workdir / "out.png").exists()
    assert run("decode", workdir / "a.vqc", workdir / "out.png", "--max-pixels", 12288).exit_code == 0
    assert run("decode", workdir / "a.vqc", workdir / "o.png", "--max-pixels", 0).exit_code == 2


@pytest.mark.parametrize("width,height", [(12000, 12000), (20000, 20000)])
def test_huge_images_get_one_vqcodec_message(workdir, width, height):
    (workdir / "huge.png").write_bytes(png_header(width, height))
    result = run("encode", workdir / "huge.png", workdir / "huge.vqc")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and str(workdir / "huge.png") in lines[0] and "too large (at most 65535 per side" in lines[0]
    assert "DOS" not in result.output and "ecompression" not in result.output


def test_a_truncated_png_is_named(workdir):
    data = (workdir / "a.png").read_bytes()
    (workdir / "cut.png").write_bytes(data[: len(data) // 2])
    result = run("encode", workdir / "cut.png", workdir / "cut.vqc")
    assert result.exit_code == 1
    assert error_lines(result) == [f"Error: {workdir / 'cut.png'} is truncated or damaged: image file is truncated"]


def test_an_unwritable_output_names_the_output_not_the_temporary_file(workdir, monkeypatch):
    def read_only(*args, **kwargs):  # what a read-only filesystem answers to rename and unlink alike
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(args[0]))

    monkeypatch.setattr(os, "replace", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)
    result = run("encode", workdir / "a.png", workdir / "x.vqc")
    assert result.exit_code == 1 and ".tmp" not in result.output
    assert error_lines(result) == [f"Error: {workdir / 'a.png'}: cannot write {workdir / 'x.vqc'}: Read-only file system"]


def test_quality_output_option_and_the_result_line(workdir):
    result = run("encode", workdir / "a.png", "-o", workdir / "q.vqc", "-q", 10, "--threads", 1)
    assert result.exit_code == 0, result.output
    assert json.loads(run("info", workdir / "q.vqc", "--json").output)["stages"] == vqcodec.operating_point(10)[0]
    size = (workdir / "q.vqc").stat().st_size
    assert result.stderr == f"{workdir / 'q.vqc'}: {size:,} bytes, {8 * size / (128 * 96):.4f} bpp\n"
    stats = run("encode", workdir / "a.png", "--output", workdir / "s.vqc", "--quality", 100, "--stats")
    assert stats.exit_code == 0 and " dB" in stats.stderr
    psnr = float(stats.stderr.split("PSNR ")[1].split(" dB")[0])
    assert 20 < psnr < 60
    quiet = run("encode", "--quiet", "-", "-", input=(workdir / "a.png").read_bytes())
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout_bytes.startswith(b"\x89VQC")
    decoded = run("decode", workdir / "q.vqc", "-o", workdir / "q.png", "--quiet", "--threads", 1)
    assert decoded.exit_code == 0 and decoded.stderr == "" and Image.open(workdir / "q.png").size == (128, 96)
    for usage in (
        ["-q", 50, "--stages", 2, workdir / "a.png", workdir / "x.vqc"],
        ["-q", 101, workdir / "a.png", workdir / "x.vqc"],
        [workdir / "a.png", workdir / "b.png", "-o", workdir / "x.vqc"],
        [workdir / "a.png", "-o", workdir / "x.vqc", "--out-dir", workdir / "d"],
    ):
        assert run("encode", *usage).exit_code == 2
    assert not (workdir / "x.vqc").exists()


def command_line(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def test_the_cli_module_imports_no_torch():
    loaded = command_line("-c", "import sys, vqcodec.cli; print(sorted(m for m in sys.modules if m.startswith('torch')))")
    assert loaded.returncode == 0 and loaded.stdout.strip() == "[]", loaded.stderr


def test_help_and_version_through_python_m():
    from vqcodec import __version__

    helped = command_line("-m", "vqcodec", "--help")
    assert helped.returncode == 0 and "encode" in helped.stdout and "train-prior" in helped.stdout
    version = command_line("-m", "vqcodec", "-V")
    assert version.returncode == 0 and version.stdout.strip() == f"vqcodec, version {__version__}"


def test_training_commands_load_on_use_with_their_own_summary():
    import click

    from vqcodec.cli import LAZY_COMMANDS

    for name, (_, summary) in LAZY_COMMANDS.items():
        command = main.get_command(click.Context(main), name)
        assert click.Command(name, help=summary).get_short_help_str(500) == command.get_short_help_str(500)
    assert run("train-prior", "--help").exit_code == 0


def test_metadata_round_trips_through_the_command_line_and_strip_drops_it(workdir):
    from tests.test_api import write_jpeg_with_metadata

    icc = write_jpeg_with_metadata(workdir / "photo.jpg")
    assert run("encode", workdir / "photo.jpg", workdir / "photo.vqc", "--stages", 1).exit_code == 0
    assert json.loads(run("info", workdir / "photo.vqc", "--json").output)["icc_bytes"] == len(icc)
    assert run("decode", workdir / "photo.vqc", workdir / "photo.png").exit_code == 0
    with Image.open(workdir / "photo.png") as decoded:
        assert decoded.size == (32, 48) and decoded.info["icc_profile"] == icc and decoded.getexif()[0x0112] == 1
    assert run("encode", workdir / "photo.jpg", workdir / "bare.vqc", "--stages", 1, "--strip").exit_code == 0
    assert run("decode", workdir / "bare.vqc", workdir / "bare.png").exit_code == 0
    with Image.open(workdir / "bare.png") as decoded:
        assert decoded.size == (32, 48) and "icc_profile" not in decoded.info and "exif" not in decoded.info
    Image.open(workdir / "a.png").save(workdir / "bad.png", icc_profile=b"damaged" * 30)
    refused = run("encode", workdir / "bad.png", workdir / "bad.vqc")
    assert refused.exit_code == 1 and "ICC profile is damaged" in refused.output and "--strip" in refused.output
    assert not (workdir / "bad.vqc").exists()
