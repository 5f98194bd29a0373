#!/usr/bin/env bash
# One GPU job, run from the root of a carried copy of the repository (docs/gpu-run.md):
#   1. set-up: installs the carried wheels the machine lacks and lays out the project as an
#      editable install would, in a private folder (no network, no setuptools, no root);
#   2. kernel tests: tests/test_kernels.py with the compiled Triton kernel (TRITON_INTERPRET=0);
#   3. kernel benchmark: benchmarks/kernel.py on the goal case and the codec's case;
#   4. VQ-VAE: benchmarks/gpu_train.sh's recipe, its schedule sized to the time left;
#   5. realism decoder: the same recipe's second phase, in the time left after that;
#   6. outputs: logs, kernel JSON and weights in $OUT, at most 8 files of at most 16 MiB.
# Each phase runs whether or not the ones before it failed, under a hard time cap, and the job
# ends within JOB_SECONDS. Training itself is ended by its own timer (time_budget), the cap
# only catches a hang. Usage: OUT=EMPTY_FOLDER bash benchmarks/gpu_run.sh (or make gpu-run).
#
# Settings, from the environment (default in brackets):
#   OUT                  where the output files go (required)
#   JOB_SECONDS          the whole job's budget [510: a 9-minute command, less a margin]
#   GPU_DEVICE           cuda, or cpu for a dry run [cuda]
#   GPU_DATA             packed training images [data/train]
#   GPU_WHEELS           folder of carried wheels (`make gpu-wheels`) [wheels]
#   KERNEL_CASES         benchmark cases N,K,D [goal 1048576,16384,32 and codec 1048576,1024,32]
#   KERNEL_TEST_SECONDS, KERNEL_BENCH_SECONDS   caps of phases 2 and 3 [150, 90]
#   GAN_SECONDS          time kept for phase 5 [75]
#   TAIL_SECONDS         per training phase: start-up, validation and saving past its budget [25]
#   OUTPUT_SECONDS       time kept for phase 6 [20]
#   GPU_MODEL, GPU_STAGES, GPU_INIT, GPU_ARGS, GAN_STEPS  passed to benchmarks/gpu_train.sh
#   PYTHON               [python3]
set -uo pipefail

: "${OUT:?set OUT to the folder for the output files}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
JOB_SECONDS=${JOB_SECONDS:-510}
DEVICE=${GPU_DEVICE:-cuda}
DATA=$(cd "$ROOT" && realpath -m "${GPU_DATA:-data/train}")
WHEELS=$(cd "$ROOT" && realpath -m "${GPU_WHEELS:-wheels}")
KERNEL_CASES=${KERNEL_CASES:-1048576,16384,32 1048576,1024,32}
GAN_SECONDS=${GAN_SECONDS:-75}
TAIL_SECONDS=${TAIL_SECONDS:-25}
OUTPUT_SECONDS=${OUTPUT_SECONDS:-20}
OUT=$(realpath -m "$OUT")
WORK=$(mktemp -d)
SITE=$WORK/site
RUNS=$WORK/runs
STATUS=()
FAILED=0

left() { echo $((JOB_SECONDS - SECONDS)); }
upto() { local most=$1 rest; rest=$(left); echo $((most < rest ? most : rest)); }  # min(most, left)
minutes() { awk -v s="$1" 'BEGIN { printf "%.3f", s / 60 }'; }

# phase NAME CAP COMMAND...: run COMMAND for at most CAP seconds; record how it ended.
phase() {
    local name=$1 cap=$2 started=$SECONDS rc
    shift 2
    echo "=== $name: cap ${cap}s, $(left)s of the job left ==="
    if [ "$cap" -le 0 ]; then
        STATUS+=("$name: skipped, no time left")
        FAILED=1
        return
    fi
    timeout -k 5 "$cap" "$@"
    rc=$?
    case $rc in
        0) STATUS+=("$name: ok in $((SECONDS - started))s") ;;
        124|137) STATUS+=("$name: stopped at its ${cap}s cap") ;;
        *) STATUS+=("$name: failed (exit $rc) after $((SECONDS - started))s") ;;
    esac
    [ "$rc" -eq 0 ] || FAILED=1
}

setup() {
    echo "=== set-up ==="
    mkdir -p "$SITE/vqcodec" "$RUNS"
    local missing=() wheel name
    for wheel in "$WHEELS"/*.whl; do
        [ -e "$wheel" ] || { echo "no wheels in $WHEELS"; break; }
        name=$(basename "$wheel")
        name=${name%%-*}  # the distribution, which is also the module name for every carried wheel
        "$PY" -c "import $name" 2>/dev/null || missing+=("$name")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        echo "installing from $WHEELS: ${missing[*]}"
        timeout 120 "$PY" -m pip install --quiet --no-index --no-deps --find-links "$WHEELS" --target "$SITE" \
            "${missing[@]}" || { echo "wheel install failed"; FAILED=1; }
    fi
    # The project as `pip install -e .` lays it out: the package, with kernels/ inside it as
    # vqcodec.kernels, linked (not copied) from the carried tree; the rest runs from here too.
    local entry
    for entry in "$ROOT"/vqcodec/*; do ln -s "$entry" "$SITE/vqcodec/"; done
    ln -s "$ROOT/kernels" "$SITE/vqcodec/kernels"
    for entry in tests benchmarks pyproject.toml; do ln -s "$ROOT/$entry" "$SITE/$entry"; done
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
    export TQDM_MININTERVAL=10  # progress bars write to a log file: a line every 10 s is enough
    cd "$SITE" || exit 1
    "$PY" - "$DEVICE" <<'PYTHON'
import importlib, importlib.metadata, platform, sys
print("python", sys.version.split()[0], "on", platform.platform())
for module, dist in [("torch", "torch"), ("triton", "triton"), ("numpy", "numpy"), ("PIL", "pillow"),
                     ("constriction", "constriction"), ("safetensors", "safetensors"), ("click", "click"),
                     ("tqdm", "tqdm"), ("pytest", "pytest")]:
    try:
        importlib.import_module(module)
        print(module, importlib.metadata.version(dist))
    except Exception as error:  # report and go on: the phases that need it will say so again
        print(module, "MISSING:", error)
try:
    import torch
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print(f"gpu {props.name}, {props.total_memory / 2**30:.1f} GiB, cuda {torch.version.cuda}")
    elif sys.argv[1] == "cuda":
        print("CUDA IS NOT AVAILABLE: the GPU phases will fail")
    from PIL import features
    print("PIL WebP support (the packed data):", features.check("webp"))
    import vqcodec.kernels
    print("vqcodec.kernels from", vqcodec.kernels.__file__)
except Exception as error:
    print("set-up check failed:", error)
PYTHON
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
}

kernel_phases() {
    # Native only: the interpreter would test the CPU emulation, not the compiled kernel. A dry
    # run without CUDA collects only the Triton tests, which skip, each saying why (the torch
    # path's tests belong to the test suite).
    local select=()
    [ "$DEVICE" = cuda ] || select=(-k "triton or compiled")
    phase kernel-tests "$(upto "${KERNEL_TEST_SECONDS:-150}")" \
        env TRITON_INTERPRET=0 "$PY" -m pytest -v -rs -p no:cacheprovider tests/test_kernels.py ${select[@]+"${select[@]}"}
    local cases=() case
    for case in $KERNEL_CASES; do cases+=(--case "$case"); done
    [ "$DEVICE" = cuda ] || echo "kernel benchmark on $DEVICE: times the chunked torch path, not the Triton kernel"
    phase kernel-bench "$(upto "${KERNEL_BENCH_SECONDS:-90}")" \
        "$PY" benchmarks/kernel.py --device "$DEVICE" "${cases[@]}" --rounds 3 --out "$WORK/kernel"
    cp "$WORK/kernel/$DEVICE.json" "$OUT/kernel.json" 2>/dev/null || echo "no kernel benchmark JSON"
}

training_phases() {
    export GPU_DATA=$DATA GPU_RUNS=$RUNS PYTHON=$PY GPU_ARGS="device=$DEVICE ${GPU_ARGS:-}"
    local budget=$(( $(left) - GAN_SECONDS - OUTPUT_SECONDS - 2 * TAIL_SECONDS ))
    if [ "$budget" -gt 0 ]; then
        VQVAE_MINUTES=$(minutes "$budget") phase vqvae "$((budget + TAIL_SECONDS))" bash benchmarks/gpu_train.sh vqvae
    else
        phase vqvae 0
    fi
    budget=$(( $(left) - OUTPUT_SECONDS - TAIL_SECONDS ))
    if [ ! -f "$RUNS/vqvae/latest.pt" ]; then
        STATUS+=("vqgan: skipped, no VQ-VAE checkpoint")
        FAILED=1
    elif [ "$budget" -gt 0 ]; then
        GAN_MINUTES=$(minutes "$budget") phase vqgan "$((budget + TAIL_SECONDS))" bash benchmarks/gpu_train.sh vqgan
    else
        phase vqgan 0
    fi
}

main() {
    mkdir -p "$OUT"
    echo "GPU job: device $DEVICE, ${JOB_SECONDS}s, data $DATA, started $(date -u +%FT%TZ)"
    setup
    kernel_phases
    training_phases
    echo "=== outputs: $(left)s of the job left ==="
    timeout -k 5 "$OUTPUT_SECONDS" "$PY" benchmarks/gpu_outputs.py --runs "$RUNS" --out "$OUT" || FAILED=1
    echo "=== summary after ${SECONDS}s ==="
    printf '  %s\n' "${STATUS[@]}"
    rm -rf "$WORK"
    return $FAILED
}

mkdir -p "$OUT"
main 2>&1 | tee "$OUT/job.log"
