"""`vqcodec` command line: parses, validates and calls the API; no model logic here.

Exit codes: 0 ok, 1 failed (one clear line on stderr, no traceback), 2 usage error.
"""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import warnings
from importlib import import_module
from pathlib import Path

import click

from vqcodec.batch import STDIO, run_jobs
from vqcodec.files import same_file
from vqcodec.limits import DEFAULT_MAX_PIXELS, MAX_RDO, MAX_REFINE_STEPS

# Nothing above imports torch: `vqcodec --help` and `--version` answer at once, and each
# command imports what it needs when it runs.


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error) or type(error).__name__)


def check_output(path: str, force: bool, inputs: list[str]) -> None:
    """Refuse to overwrite without --force, never write over an input, and say up front when
    the output cannot be written (no folder, not a regular file). Every command that writes a
    file checks it here, before its work."""
    if path == STDIO:
        return
    target = Path(path)
    for source in inputs:
        if source != STDIO and same_file(Path(source), target):
            raise click.UsageError(f"output {path} is the same file as input {source}")
    if target.is_dir():
        raise click.UsageError(f"output {path} is a directory")
    if target.exists() and not target.is_file():  # a pipe or device: the atomic rename would replace it
        raise click.UsageError(f"output {path} is not a regular file; write to '-' for stdout")
    if not target.parent.is_dir():
        raise click.UsageError(f"output folder {target.parent} does not exist")
    if target.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to overwrite it")


def _read_input(path: str) -> bytes:
    return sys.stdin.buffer.read() if path == STDIO else Path(path).read_bytes()


def _read_stream(path: str, allow_trailing: bool = False) -> bytes:
    """A .vqc stream, read no further than its header says it reaches: a huge or endless
    input is never slurped whole. Data after the stream is an error (counted exactly for
    files) unless `allow_trailing`, which returns up to one byte of it (enough to tell)."""
    from vqcodec.bitstream import MAX_HEADER_SIZE, BitstreamError, read_header

    handle = sys.stdin.buffer if path == STDIO else open(path, "rb")
    try:
        head = handle.read(MAX_HEADER_SIZE)
        total = read_header(head).total_size
        data = head + handle.read(max(0, total + 1 - len(head)))
        if len(data) > total and not allow_trailing:
            extra = f"{os.fstat(handle.fileno()).st_size - total} bytes" if path != STDIO else "data"
            raise BitstreamError(f"trailing data: {extra} after the {total}-byte stream")
        return data
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def _write_output(path: str, data: bytes | memoryview) -> None:
    from vqcodec.files import write_atomic

    if path == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_atomic(Path(path), data)


def _plan(paths: tuple[str, ...], output: str | None, out_dir: str | None, suffix: str) -> list[tuple[str, str]]:
    """(input, output) pairs from `IN OUT`, `IN -o OUT` or `IN... --out-dir DIR`."""
    if output is not None:
        if out_dir is not None:
            raise click.UsageError("give -o/--output or --out-dir, not both")
        if len(paths) != 1:
            raise click.UsageError("-o/--output names the output of one INPUT; for several inputs use --out-dir DIR")
        paths = (*paths, output)
    if out_dir is None:
        if len(paths) != 2:
            raise click.UsageError("give INPUT and OUTPUT (or INPUT -o OUTPUT), or several inputs with --out-dir DIR")
        return [(paths[0], paths[1])]
    if not paths or STDIO in paths:
        raise click.UsageError("--out-dir takes one or more input files (not '-')")
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise click.UsageError(f"--out-dir {out_dir} is not a directory")
    outputs = [str(folder / (Path(p).stem + suffix)) for p in paths]
    if len(set(outputs)) != len(outputs):
        raise click.UsageError("several inputs share a file name; their outputs would collide in --out-dir")
    folder.mkdir(parents=True, exist_ok=True)
    return list(zip(paths, outputs))


def _run_all(
    jobs: list[tuple[str, str]],
    force: bool,
    label: str,
    work,
    shared_inputs: tuple[str, ...] = (),
    processes: int = 1,
    threads: int | None = None,
    quiet: bool = False,
) -> None:
    """Check every output first (so nothing is half done on a usage error), then run every
    job, past failures, with a progress bar when there is more than one. `shared_inputs` are
    read by every job (an inpainting mask) and are never overwritten either; a job's source
    may be "" (none). The jobs' result lines go to stderr (stdout may carry an output). A
    batch prints one line per failed input and a summary, and exits 1 if any failed;
    `quiet` leaves only the failures."""
    for source, target in jobs:
        check_output(target, force, [s for s in (source, *shared_inputs) if s])
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")  # notices (16-bit input, extra frames) are not errors
        results, failures = run_jobs(jobs, work, label, processes, threads, progress=not quiet)
    for line in [] if quiet else results:
        click.echo(line, err=True)
    if len(jobs) == 1:
        if failures:
            raise click.ClickException(failures[0])
        return
    for line in failures:
        click.echo(f"Error: {line}", err=True)
    if failures or not quiet:
        click.echo(f"{label}: {len(jobs) - len(failures)} of {len(jobs)} files done, {len(failures)} failed", err=True)
    if failures:
        click.get_current_context().exit(1)


def _encode_file(source: str, target: str, options: dict, stats: bool = False) -> str:
    """Encode one image; its result line: output, bytes, bits per pixel and, with `stats`,
    the PSNR of the stream decoded (which costs a decode)."""
    from vqcodec.api import compress
    from vqcodec.bitstream import read_header

    raw = _read_input(source) if source == STDIO else None  # stdin can be read only once
    data = compress(source if raw is None else io.BytesIO(raw), **options)
    _write_output(target, data)
    line = f"{'stdout' if target == STDIO else target}: {len(data):,} bytes, {8 * len(data) / read_header(data).pixels:.4f} bpp"
    if stats:
        from vqcodec.evaluate import stream_psnr

        decoding = {key: options[key] for key in ("model", "prior_file", "device")}
        line += f", PSNR {stream_psnr(source if raw is None else io.BytesIO(raw), data, **decoding):.2f} dB"
    return line


def _write_image(target: str, image) -> None:
    """Write a PIL image to `target` ("-": stdout, as PNG) in the format of its suffix."""
    from vqcodec.api import encode_image, write_image
    from vqcodec.files import write_atomic

    if target == STDIO:
        _write_output(target, encode_image(image, ""))
    else:  # straight to the file: a large image's file is never held in memory as well
        write_atomic(Path(target), lambda handle: write_image(image, handle, Path(target).suffix))


def _decode_file(source: str, target: str, options: dict) -> None:
    from vqcodec.api import decompress

    _write_image(target, decompress(_read_stream(source), **options))


JOBS_OPTION = click.option(
    "--jobs",
    "processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Files to code at once, in worker processes.",
)
THREADS_OPTION = click.option(
    "--threads", type=click.IntRange(min=1), help="Torch threads per process (default: all cores, shared out among --jobs)."
)
QUIET_OPTION = click.option("--quiet", is_flag=True, help="Print nothing but errors.")
OUTPUT_OPTION = click.option("-o", "--output", help="OUTPUT, given as an option: `INPUT -o OUTPUT`.")
RDO_OPTION = click.option(
    "--rdo",
    type=click.FloatRange(0, MAX_RDO),
    help="Rate-distortion optimisation with the context prior: 0 = nearest codeword, 1 = the "
    "model's tuned trade-off (the default where it has one), more = smaller files at lower quality.",
)
REFINE_OPTION = click.option(
    "--refine",
    type=click.IntRange(0, MAX_REFINE_STEPS),
    default=0,
    help="Gradient steps on the latent before quantizing: more quality at about the same bits, "
    "slower encoding (10 is a good start; the stream decodes as any other).",
)
MODEL_OPTION = click.option("--model", help="Model name from the zoo (default: the shipped model; see `vqcodec models`).")
WEIGHTS_OPTION = click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A .safetensors codec weights file instead of a zoo model (its files decode only with it).",
)
PRIOR_OPTION = click.option(
    "--prior",
    type=click.Choice(["context", "static"]),
    help="Entropy model: context (default: 24-33% fewer bits on Kodak) or static (faster).",
)
PRIOR_FILE_OPTION = click.option(
    "--prior-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A context prior file to code with instead of the model's own (its files decode only with it).",
)


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from vqcodec.devices import resolve_device

    try:
        resolve_device(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    return value


DEVICE_OPTION = click.option(
    "--device",
    default="cpu",
    show_default=True,
    callback=_check_device,
    help="Where the networks run: cpu, cuda, cuda:N, or auto (cuda when available).",
)


def _model(model: str | None, weights: Path | None) -> str | Path | None:
    """The API's `model=`: a zoo name (--model) or a weights file (--weights), not both."""
    if model is not None and weights is not None:
        raise click.UsageError("give --model or --weights, not both")
    return weights if weights is not None else model


# The training commands live in one module that imports torch at the top, so it is imported
# only when one of them is run or asked for its help; the group's --help shows the first
# sentence given here (a test checks it against the command's own).
TRAINING_COMMANDS = "vqcodec.train.commands"
LAZY_COMMANDS = {
    "train": ("train_command", "Train a codec."),
    "leg-state": (
        "leg_state_command",
        "Write what the next leg of a VQ-VAE run starts from (init_from=OUTPUT): the weights of STATE (a run's "
        "latest.pt) in float16, without the optimizer, about a sixth of its size.",
    ),
    "export-model": (
        "export_model_command",
        "Fit the static prior of trained WEIGHTS on DATA_DIR and write shippable OUTPUT weights.",
    ),
    "train-prior": (
        "train_prior_command",
        "Train the context prior on DATA_DIR's images (tokens of the frozen --codec) and write it to OUT.",
    ),
    "pack-data": (
        "pack_data_command",
        "Write a compact copy of the training images under SOURCE to DESTINATION (scaled down, WebP, "
        "same folder tree), e.g. to move a training set to a GPU machine.",
    ),
}


class _LazyGroup(click.Group):
    """A group that imports the commands of LAZY_COMMANDS on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            attribute, _ = LAZY_COMMANDS[name]
            return getattr(import_module(TRAINING_COMMANDS), attribute)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(map(len, self.list_commands(ctx)))
        # A stand-in command with the stored help shortens it exactly as click shortens the real one's.
        rows = [
            (
                name,
                (
                    click.Command(name, help=LAZY_COMMANDS[name][1]) if name in LAZY_COMMANDS else self.commands[name]
                ).get_short_help_str(limit),
            )
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "-V", "--version", package_name="vqcodec", prog_name="vqcodec")
def main() -> None:
    """vqcodec: a learned image codec (VQ-VAE + entropy coding + VQ-GAN decoder)."""
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Notices (16-bit input, extra frames) as one line on stderr, without source paths."""
    click.echo(f"warning: {message}", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@OUTPUT_OPTION
@click.option(
    "-q",
    "--quality",
    type=click.IntRange(0, 100),
    help="0..100, smallest to largest file: picks the stage count and the rdo strength.",
)
@click.option("--stages", type=click.IntRange(1, 16), help="Residual stages to code (fewer = smaller file).")
@click.option(
    "--bpp",
    type=click.FloatRange(min=0, min_open=True),
    help="The highest -q setting whose file fits this many bits per pixel (with --rdo: the largest "
    "stage count at that strength); about 2.5× the encode time.",
)
@MODEL_OPTION
@WEIGHTS_OPTION
@PRIOR_OPTION
@PRIOR_FILE_OPTION
@RDO_OPTION
@REFINE_OPTION
@DEVICE_OPTION
@click.option("--out-dir", type=click.Path(file_okay=False), help="Encode several inputs into this folder.")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--strip", is_flag=True, help="Leave the ICC profile and EXIF out of the stream.")
@click.option("--stats", is_flag=True, help="Add the PSNR of the decoded stream to the result line (costs a decode).")
@QUIET_OPTION
@JOBS_OPTION
@THREADS_OPTION
def encode(
    paths,
    output,
    quality,
    stages,
    bpp,
    model,
    weights,
    prior,
    prior_file,
    rdo,
    refine,
    device,
    out_dir,
    force,
    strip,
    stats,
    quiet,
    processes,
    threads,
) -> None:
    """Compress images: `encode INPUT OUTPUT` or `encode IN... --out-dir DIR` ('-' = stdin/stdout).
    Prints one line per output on stderr: name, bytes, bits per pixel."""
    from PIL import Image

    given = [name for name, value in (("--quality", quality), ("--stages", stages), ("--bpp", bpp)) if value is not None]
    if len(given) > 1:
        raise click.UsageError(f"give one of --quality, --stages and --bpp, not both {given[0]} and {given[1]}")
    if quality is not None and rdo is not None:
        raise click.UsageError("give --quality or --rdo, not both: --quality sets the rdo strength too")
    options = dict(
        quality=quality,
        stages=stages,
        bpp=bpp,
        model=_model(model, weights),
        prior=prior,
        prior_file=prior_file,
        rdo=rdo,
        refine=refine,
        device=device,
        strip=strip,
    )
    work = functools.partial(_encode_file, options=options, stats=stats)
    jobs = _plan(paths, output, out_dir, ".vqc")
    # `encode a.png b.png` is far likelier two inputs without --out-dir than a stream meant to
    # be named like a picture; even with --force, do not overwrite an image with a stream.
    for _, target in jobs:
        if Path(target).suffix.lower() in set(Image.registered_extensions()) - {".vqc"}:
            raise click.UsageError(
                f"OUTPUT {target} has an image suffix, but encode writes a .vqc stream "
                "(to encode several images, use --out-dir DIR)"
            )
    _run_all(jobs, force, "encoding", work, processes=processes, threads=threads, quiet=quiet)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@OUTPUT_OPTION
@click.option("--stages", type=click.IntRange(1, 16), help="Decode only the first N stages (works on truncated files).")
@click.option("--decoder", type=click.Choice(["fidelity", "realism"]), default="fidelity", show_default=True)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse files whose header claims a larger image (bounds memory and time on untrusted files).",
)
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The .safetensors codec weights file that wrote the inputs (for models outside the zoo).",
)
@click.option(
    "--prior-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The context prior file that coded the inputs, if not the model's own.",
)
@DEVICE_OPTION
@click.option("--out-dir", type=click.Path(file_okay=False), help="Decode several inputs into this folder (as PNG).")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@QUIET_OPTION
@JOBS_OPTION
@THREADS_OPTION
def decode(
    paths, output, stages, decoder, max_pixels, weights, prior_file, device, out_dir, force, quiet, processes, threads
) -> None:
    """Decode .vqc files to images: `decode INPUT OUTPUT` (format from OUTPUT's suffix; '-' = PNG on stdout)."""
    work = functools.partial(
        _decode_file,
        options=dict(stages=stages, decoder=decoder, max_pixels=max_pixels, model=weights, prior_file=prior_file, device=device),
    )
    _run_all(_plan(paths, output, out_dir, ".png"), force, "decoding", work, processes=processes, threads=threads, quiet=quiet)


@main.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
def info(path, as_json) -> None:
    """Print the header of a .vqc file: model, size, stages, bytes per stage and bpp."""
    from vqcodec.api import describe_stream

    try:
        data = _read_stream(path, allow_trailing=True)
        file_bytes = Path(path).stat().st_size if path != STDIO else len(data)
        fields = describe_stream(data, file_bytes)
    except (ValueError, OSError) as error:
        raise _fail(error) from error
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    for key, value in fields.items():
        click.echo(f"{key:>16}: {value}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--stages", type=click.IntRange(1, 16), multiple=True, help="Operating points (stage counts) to measure (default: all)."
)
@MODEL_OPTION
@WEIGHTS_OPTION
@PRIOR_OPTION
@PRIOR_FILE_OPTION
@RDO_OPTION
@REFINE_OPTION
@click.option("--decoder", type=click.Choice(["fidelity", "realism"]), default="fidelity", show_default=True)
@DEVICE_OPTION
@click.option(
    "--json",
    "json_out",
    is_flag=False,
    flag_value=STDIO,
    metavar="OUT",
    help="Write the results as JSON (CompressAI's schema plus per-image rows) to OUT ('-' or no value: stdout).",
)
@click.option("--force", is_flag=True, help="Overwrite the --json file.")
def evaluate(paths, stages, model, weights, prior, prior_file, rdo, refine, decoder, device, json_out, force) -> None:
    """Encode and decode images (files, or the images in folders) at every stage count; print
    the mean bpp, PSNR and MS-SSIM of each, or write every figure as JSON."""
    from vqcodec.evaluate import evaluate as run_evaluation, image_files

    model = _model(model, weights)
    images = image_files(paths)
    if not images:
        raise click.UsageError("no images found in " + ", ".join(paths))
    if json_out is not None:
        check_output(json_out, force, [str(path) for path in images])
    try:
        document = run_evaluation(
            images,
            stages=list(stages) or None,
            decoder=decoder,
            model=model,
            prior=prior,
            prior_file=prior_file,
            rdo=rdo,
            refine=refine,
            device=device,
            progress=True,
        )
    except (ValueError, OSError) as error:
        raise _fail(error) from error
    if json_out is not None:
        _write_output(json_out, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())
        return
    results = document["results"]
    click.echo(f"{document['name']}, {len(images)} image(s), means per operating point:")
    click.echo(f"{'stages':>6} {'bpp':>7} {'PSNR dB':>8} {'MS-SSIM':>8} {'enc s':>6} {'dec s':>6}")
    for i, count in enumerate(document["stages"]):
        cells = [
            _cell(results[key][i], spec)
            for key, spec in (
                ("bpp", "7.4f"),
                ("psnr-rgb", "8.2f"),
                ("ms-ssim-rgb", "8.4f"),
                ("encoding_time", "6.2f"),
                ("decoding_time", "6.2f"),
            )
        ]
        click.echo(f"{count:>6} " + " ".join(cells))


def _cell(value: float | None, spec: str) -> str:
    width = int(spec.split(".")[0])
    return f"{'n/a':>{width}}" if value is None else format(value, spec)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models(as_json) -> None:
    """List the zoo's models: installed and retired (with how to install them), with file
    size, stage count and the sha256 of the weights."""
    from vqcodec.zoo import WEIGHTS_PATH_VARIABLE, describe_models

    rows = describe_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        status = (
            "installed"
            if not row["retired"]
            else "retired, not installed"
            if row["path"] is None
            else f"retired, found through {WEIGHTS_PATH_VARIABLE}"
        )
        size = "-" if row["bytes"] is None else f"{row['bytes'] / 1e6:.1f} MB"
        stages = "-" if row["stages"] is None else row["stages"]
        click.echo(
            f"{row['name']}{' (default)' if row['default'] else ''}: {status}; {size}; stages {stages}; sha256 {row['sha256']}"
        )
        if "install" in row:
            click.echo(f"    {row['install']}")


@main.command()
@click.argument("output")
@click.option("--size", required=True, help="WIDTHxHEIGHT, e.g. 256x256.")
@click.option("--seed", type=click.IntRange(0, (1 << 63) - 1), default=0, show_default=True)
@click.option("--steps", type=click.IntRange(1, 64), default=8, show_default=True, help="Unmasking rounds per stage.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--decoder", type=click.Choice(["fidelity", "realism"]), help="Default: realism where the model has one.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT.")
def generate(output, size, seed, steps, temperature, decoder, force) -> None:
    """Sample a new image from the model's prior and write it to OUTPUT."""
    from vqcodec.api import generate as generate_image

    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError as error:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {size!r}", param_hint="--size") from error
    _run_all(
        [("", output)],
        force,
        "generating",
        lambda _, target: _write_image(
            target, generate_image(width, height, seed=seed, steps=steps, temperature=temperature, decoder=decoder)
        ),
    )


@main.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.argument("mask", type=click.Path(exists=True, dir_okay=False))
@click.argument("output")
@click.option("--seed", type=click.IntRange(0, (1 << 63) - 1), default=0, show_default=True)
@click.option("--steps", type=click.IntRange(1, 64), default=8, show_default=True, help="Unmasking rounds per stage.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--decoder", type=click.Choice(["fidelity", "realism"]), help="Default: realism where the model has one.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT.")
def inpaint(image, mask, output, seed, steps, temperature, decoder, force) -> None:
    """Re-sample the part of IMAGE under MASK's white pixels; write the result to OUTPUT."""
    from vqcodec.api import inpaint as inpaint_image

    _run_all(
        [(image, output)],
        force,
        "inpainting",
        lambda source, target: _write_image(
            target, inpaint_image(source, mask, seed=seed, steps=steps, temperature=temperature, decoder=decoder)
        ),
        shared_inputs=(mask,),
    )


if __name__ == "__main__":
    main()
