"""numpy and torch in and out: decompress(output=...), read-only arrays, the batched Codec, devices."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import vqcodec
from tests.conftest import smooth_image
from vqcodec.devices import serial_on_cpu


@pytest.fixture(scope="module")
def rgb_stream() -> bytes:
    return vqcodec.compress(smooth_image(24, 16), stages=1)


def test_outputs_agree_in_every_form(rgb_stream):
    image = vqcodec.decompress(rgb_stream)
    array = vqcodec.decompress(rgb_stream, output="numpy")
    tensor = vqcodec.decompress(rgb_stream, output="torch")
    assert array.dtype == np.uint8 and array.shape == (16, 24, 3) and array.flags.writeable
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 16, 24)
    assert 0 <= float(tensor.min()) and float(tensor.max()) <= 1
    assert np.array_equal(array, np.asarray(image))
    assert torch.equal((tensor * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(array))
    with pytest.raises(ValueError, match="output"):
        vqcodec.decompress(rgb_stream, output="jpeg")


@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGBA", 4)])
def test_numpy_and_torch_outputs_keep_the_channels_of_the_mode(mode, channels):
    data = vqcodec.compress(Image.fromarray(smooth_image(9, 7)).convert(mode), stages=1)
    assert vqcodec.decompress(data, output="numpy").shape == (7, 9, channels)
    assert vqcodec.decompress(data, output="torch").shape == (channels, 7, 9)


def test_read_only_arrays_compress_without_warnings(sample_crop):
    array = np.asarray(sample_crop)
    assert not array.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = vqcodec.compress(array, stages=1)
    assert data == vqcodec.compress(sample_crop, stages=1)


def test_codec_round_trips_a_batch():
    x = torch.stack([torch.from_numpy(smooth_image(32, 24, seed)).permute(2, 0, 1).float() / 255 for seed in (0, 1)])
    codec = vqcodec.Codec(stages=2)
    streams = codec.compress(x)
    assert len(streams) == 2 and all(isinstance(s, bytes) for s in streams)
    assert streams[0] == vqcodec.compress(x[0], stages=2)  # each image is its own complete stream
    x_hat = codec.decompress(streams)
    assert x_hat.shape == x.shape and x_hat.dtype == torch.float32
    mse = float(((x_hat - x) ** 2).mean())
    assert 10 * np.log10(1 / mse) > 20


def test_codec_refuses_what_is_not_a_batch_of_one_size():
    codec = vqcodec.Codec(stages=1)
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        codec.compress(torch.rand(3, 8, 8))
    streams = [vqcodec.compress(smooth_image(8, 8), stages=1), vqcodec.compress(smooth_image(16, 8), stages=1)]
    with pytest.raises(ValueError, match="one size"):
        codec.decompress(streams)
    with pytest.raises(ValueError, match="unknown model"):
        vqcodec.Codec("no-such-model")


def test_devices_cpu_and_auto_write_the_same_streams_here(rgb_stream):
    image = smooth_image(24, 16)
    if torch.cuda.is_available():
        pytest.skip("auto picks CUDA on this machine (covered by the CUDA test)")
    assert vqcodec.compress(image, stages=1, device="auto") == rgb_stream
    assert np.array_equal(
        vqcodec.decompress(rgb_stream, device="auto", output="numpy"),
        vqcodec.decompress(rgb_stream, device="cpu", output="numpy"),
    )
    assert vqcodec.Codec(device="auto").device == torch.device("cpu")


@pytest.mark.parametrize(
    "device,message",
    [("meta", "not supported"), ("banana", "unknown device")]
    + ([] if torch.cuda.is_available() else [("cuda", "CUDA is not available")]),
)
def test_unavailable_devices_are_clear_errors(rgb_stream, device, message):
    with pytest.raises(ValueError, match=message):
        vqcodec.decompress(rgb_stream, device=device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_streams_decode_to_the_same_indices_on_cpu_and_gpu(sample_crop):
    from vqcodec import bitstream
    from vqcodec.devices import exact_matmul, on_device
    from vqcodec.entropy.grid_coding import decode_grid
    from vqcodec.provenance import model_for_stream

    def indices(data: bytes, device: str) -> np.ndarray:
        header, _, payloads = bitstream.unpack(data)
        _, prior = model_for_stream(header)
        with exact_matmul():
            return decode_grid(on_device(prior, torch.device(device)), payloads, *header.grid, header.codebook_size)

    for prior in ("context", "static"):
        for written_on in ("cpu", "cuda"):
            data = vqcodec.compress(sample_crop, prior=prior, device=written_on)
            assert np.array_equal(indices(data, "cpu"), indices(data, "cuda"))
            assert vqcodec.decompress(data, device="cuda").size == sample_crop.size


def test_the_prior_loops_run_on_one_cpu_thread_and_the_setting_comes_back(rgb_stream, monkeypatch):
    seen = []
    real_decode = vqcodec.coding.decode_grid
    monkeypatch.setattr(vqcodec.coding, "decode_grid", lambda *args: seen.append(torch.get_num_threads()) or real_decode(*args))
    outside = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        vqcodec.decompress(rgb_stream)
        assert seen == [1] and torch.get_num_threads() == 2
        # Nested blocks: the setting returns only when the outermost one ends.
        with serial_on_cpu(torch.device("cpu")):
            with serial_on_cpu(torch.device("cpu")):
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
            with serial_on_cpu(torch.device("cuda")):  # no CPU threads to spare there: a no-op
                pass
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(outside)
