#!/usr/bin/env bash
# Installs what scisearch needs, builds it, writes a simulated facility (3,000
# acquisitions in every format, with user logs, proposals, publications and the
# truth), adds the real instrument files of testdata/, ingests the whole tree, loads
# the logs, proposals and publications (which links and tags every file), shows
# what was catalogued and serves the web application on http://localhost:8080.
# Usage: scripts/demo.sh [DEMO_DIR] [FILES]   (default: ./demo-data 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${1:-demo-data}
files=${2:-3000}

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target scisearch

# A facility's layout: INSTRUMENT/PI/YEAR/<date and sample typed by hand>/<acquisition files>.
tree="$demo/facility"
rm -rf "$tree" "$demo/scisearch-data"
echo "== simulate $tree"
build/scisearch simulate --out "$tree" --files "$files" --seed 1
# The real files, in the same kind of layout.
place() {  # place DEST_FOLDER FILE...
  local dest="$tree/$1"; shift
  mkdir -p "$dest"
  for f in "$@"; do cp "testdata/formats/$f" "$dest/"; done
}
place "TitanX/Ercius/2016/20160221 - STEM BF DF test" \
  tia/old/16x16_STEM_BF_DF_acquire.emi tia/old/16x16_STEM_BF_DF_acquire_1.ser \
  tia/old/16x16_STEM_BF_DF_acquire_2.ser \
  tia/old/64x64_TEM_images_acquire.emi tia/old/64x64_TEM_images_acquire_1.ser \
  tia/old/64x64_diffraction_acquire.emi tia/old/64x64_diffraction_acquire_1.ser
place "TitanX/Ercius/2016/20160222 - EDS SI test" \
  tia/old/16x16-spectrum_image-5x5x1024.emi tia/old/16x16-spectrum_image-5x5x1024_1.ser
place "Talos/Minor/2016/2016-02-22 TEM search" \
  tia/new/128x128-TEM_search.emi tia/new/128x128-TEM_search_1.ser
place "TEAM_I/Ciston/2011/20111013 - Au NP EELS" "tia/old/X - Au NP EELS_2.ser"
place "Titan/Kisielowski/2016/8-8-16 STO HAADF + EELS" \
  dm/2D/test_STEM_image.dm3 dm/1D/test-EELS_spectrum.dm3 dm/2D/test-7.dm4
place "Tecnai/Ophus/2014/20140709 - SAED" dm/2D/test_diffraction_pattern.dm3
place "Titan/Ercius/2019/20190514 EELS SI" dm/3D/EELS_SI.dm4
place "Themis/Ercius/2018/20180301 velox HAADF + Ceta DP" \
  "emd_velox/STEM HAADF Diffraction Micro.emd" "emd_velox/Camera Ceta Diffraction Micro.emd"
place "TEAM_0.5/Ercius/2017/STO laser cut" emd_berkeley/example_metadata.emd
place "Krios/Scheres/2015/EMD-3197 subtomo avg" mrc/EMD-3197.map mrc/HAADFscan.mrc
place "Helios/Smith/2016/20160613 Ebeam 5kV" tiff/FEI-Helios-Ebeam-8bits.tif
place "Merlin/Jones/2018/25Sep2018 steel SE2" tiff/test_tiff_Zeiss_SEM_512pix.tif
place "ARM200F/Lee/2015/150730 SAED" tiff/JEOL-SightX-SAED-dummy.tif.gz
# A damaged file, as real trees have: it is reported, and everything else goes on.
mkdir -p "$tree/TitanX/Ercius/2016/20160223 - crashed acquisition"
head -c 3000 testdata/formats/dm/2D/test_STEM_image.dm3 \
  > "$tree/TitanX/Ercius/2016/20160223 - crashed acquisition/HAADF 0001.dm3"

echo "== ingest $tree"
status=0
build/scisearch ingest "$tree" --data-dir "$demo/scisearch-data" || status=$?
echo
echo "== the facility's user logs, proposals and publications (linking runs after each load)"
for kind in proposal log publication; do
  build/scisearch add-docs "$tree/${kind}s" --kind "$kind" --data-dir "$demo/scisearch-data"
done
echo
echo "== vision (docs/vision.md): a CNN learns the operating mode from pixels (labels from the"
echo "   metadata: stage 1), then tags every image and stores its embedding for similar images"
build/scisearch vision pretrain --data-dir "$demo/scisearch-data" --model "$demo/stage1.model" \
  --max-per-mode 100 --epochs 8
build/scisearch vision tag --data-dir "$demo/scisearch-data" --model "$demo/stage1.model"
echo
echo "== the catalog"
build/scisearch list --data-dir "$demo/scisearch-data" | tail -n 15  # the whole list: without tail
echo
echo "== search (the index follows the catalog; syntax: docs/search.md)"
for query in "WSe2 HAADF" "mode:diffraction voltage:200..300kV date:2013..2016" "Ercius EELS" "tag:selenium"; do
  echo "\$ scisearch search \"$query\" --top 3"
  build/scisearch search "$query" --top 3 --data-dir "$demo/scisearch-data"
  echo
done
example=$(find "$tree/TitanX" -name '*.emi' | sort | sed -n 1p)
echo "\$ scisearch show \"$example\""
build/scisearch show "$example" --data-dir "$demo/scisearch-data" | sed -n 1,24p
echo
echo "Ingest exit status $status (2 = some files could not be read, as intended for the damaged one)."
echo "Try: build/scisearch inspect \"$tree/Helios/Smith/2016/20160613 Ebeam 5kV/FEI-Helios-Ebeam-8bits.tif\""
echo "What each simulated file shows (for scoring tags and links): $tree/truth.jsonl"
echo
echo "== serving the search, detail and tagging pages on http://localhost:8080 (Ctrl-C stops)"
exec build/scisearch serve --data-dir "$demo/scisearch-data" --host 127.0.0.1 --port 8080
