"""Atomic writes (vqcodec.files) through the file API: permissions kept, symlinks written
through, errors that name the file asked for."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from PIL import Image

import vqcodec
from vqcodec.files import write_atomic


def test_a_replaced_file_keeps_its_mode_and_a_new_file_gets_the_usual_one(tmp_path, sample_crop):
    kept = tmp_path / "kept.vqc"
    kept.write_bytes(b"old")
    kept.chmod(0o640)
    sample_crop.save(tmp_path / "in.png")
    vqcodec.compress_file(tmp_path / "in.png", kept, stages=1)
    assert kept.read_bytes().startswith(b"\x89VQC") and kept.stat().st_mode & 0o777 == 0o640
    umask = os.umask(0)
    os.umask(umask)
    write_atomic(tmp_path / "new.vqc", b"new")
    assert (tmp_path / "new.vqc").stat().st_mode & 0o777 == 0o666 & ~umask


def test_writing_through_a_symlink_replaces_what_it_points_to_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "photo.vqc"
    target.write_bytes(b"old")
    target.chmod(0o600)
    link = tmp_path / "link.vqc"
    link.symlink_to(Path("real") / "photo.vqc")  # relative, as links usually are
    write_atomic(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(Path("real") / "photo.vqc")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o600
    dangling = tmp_path / "dangling.vqc"
    dangling.symlink_to(tmp_path / "real" / "later.vqc")
    write_atomic(dangling, b"created")  # the link's target is created, the link kept
    assert dangling.is_symlink() and (tmp_path / "real" / "later.vqc").read_bytes() == b"created"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["later.vqc", "photo.vqc"]


def test_a_missing_folder_is_named_before_any_work(tmp_path, sample_stream, monkeypatch):
    monkeypatch.setattr(vqcodec.api, "compress", lambda *a, **k: pytest.fail("compressed before checking the folder"))
    monkeypatch.setattr(vqcodec.api, "decompress", lambda *a, **k: pytest.fail("decoded before checking the folder"))
    (tmp_path / "in.vqc").write_bytes(sample_stream)
    for call, source in ((vqcodec.compress_file, "in.png"), (vqcodec.decompress_file, "in.vqc")):
        with pytest.raises(FileNotFoundError, match=f"cannot write .*out: the folder {tmp_path / 'missing'} does not exist"):
            call(tmp_path / source, tmp_path / "missing" / "out")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "x", b"")


def test_a_failed_write_names_the_target_even_when_the_cleanup_fails_too(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):  # a read-only filesystem refuses rename and unlink alike
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(args[0]))

    monkeypatch.setattr(os, "replace", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.raises(OSError, match=f"cannot write {tmp_path / 'x.vqc'}: Read-only file system") as raised:
        write_atomic(tmp_path / "x.vqc", b"data")
    assert raised.value.errno == errno.EROFS and ".tmp" not in str(raised.value)


def test_a_writer_function_writes_in_place_and_its_failure_leaves_nothing(tmp_path, sample_crop):
    write_atomic(tmp_path / "out.bin", lambda handle: handle.write(b"streamed"))
    assert (tmp_path / "out.bin").read_bytes() == b"streamed"

    def fails_halfway(handle):
        handle.write(b"partial")
        raise ValueError("the encoder gave up")

    (tmp_path / "kept.bin").write_bytes(b"old")
    with pytest.raises(ValueError, match="gave up"):
        write_atomic(tmp_path / "kept.bin", fails_halfway)
    assert (tmp_path / "kept.bin").read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "kept.bin",
        "out.bin",
    ]
    # An image decoded to a file goes through such a function: written, then read back and checked.
    stream = vqcodec.compress(sample_crop.convert("RGBA"), stages=1)
    (tmp_path / "a.vqc").write_bytes(stream)
    with pytest.raises(ValueError, match="cannot hold the alpha channel"):
        vqcodec.decompress_file(tmp_path / "a.vqc", tmp_path / "a.jpg")
    assert not (tmp_path / "a.jpg").exists()
    vqcodec.decompress_file(tmp_path / "a.vqc", tmp_path / "a.png")
    assert vqcodec.decompress(stream).tobytes() == Image.open(tmp_path / "a.png").tobytes()
