#!/usr/bin/env bash
# Peak memory of ingesting files far larger than the memory they may use: a 4 GiB
# single-image MRC (32768 x 32768 float32) and a 4 GiB stack (4096 frames of 512 x 512
# float32). Both are sparse files, so they take no disk space; the data reads as zeros.
# Usage: bench/big_file_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_DIR:-/tmp/scisearch-bigfile}
scripts/install-deps.sh --bench
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target scisearch >/dev/null
rm -rf "$work"; mkdir -p "$work/tree"
/usr/bin/python3 - "$work/tree" <<'PY'
import struct, sys, os
def mrc(path, nx, ny, nz):
    h = bytearray(1024)
    struct.pack_into("<3i", h, 0, nx, ny, nz)      # NX NY NZ
    struct.pack_into("<i", h, 12, 2)                # MODE 2: float32
    struct.pack_into("<3i", h, 28, nx, ny, nz)      # MX MY MZ
    struct.pack_into("<3f", h, 40, nx * 1.0, ny * 1.0, nz * 1.0)  # cell (A): 1 A pixels
    struct.pack_into("<3f", h, 52, 90, 90, 90)
    struct.pack_into("<3i", h, 64, 1, 2, 3)         # MAPC MAPR MAPS
    h[208:212] = b"MAP "; h[212:216] = bytes([0x44, 0x44, 0, 0])
    struct.pack_into("<i", h, 108, 20140)           # NVERSION
    with open(path, "wb") as f:
        f.write(h); f.truncate(1024 + nx * ny * nz * 4)
mrc(os.path.join(sys.argv[1], "huge_image.mrc"), 32768, 32768, 1)
mrc(os.path.join(sys.argv[1], "huge_stack.mrc"), 512, 512, 4096)
PY
ls -ls "$work/tree"
/usr/bin/time -f "%e s, peak RSS %M KB" -o "$work/time.txt" \
  build/scisearch ingest "$work/tree" --jobs 2 --data-dir "$work/data" > "$work/ingest.log" 2>&1 || true
tail -3 "$work/ingest.log"
echo "ingest of 2 x 4 GiB files: $(cat "$work/time.txt")"
/usr/bin/time -f "%e s, peak RSS %M KB" -o "$work/time2.txt" \
  build/scisearch export "$work/tree/huge_stack.mrc" --signal 0 --npy "$work/stack.npy" || true
echo "export of the 4 GiB stack to .npy: $(cat "$work/time2.txt"), $(du -h --apparent-size "$work/stack.npy" | cut -f1)"
rm -f "$work/stack.npy"
