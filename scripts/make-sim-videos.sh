#!/usr/bin/env bash
# Writes the simulator's result videos (src/kinds/video/assets/), committed so that
# installs and CI never need ffmpeg. One H.264 MP4 per aspect ratio and duration the simulator
# accepts; 4 fps, tiny frames: a white square crosses the frame once, so a player shows progress.
# Run from the repository root with Debian's ffmpeg: bash scripts/make-sim-videos.sh
set -euo pipefail
FFMPEG=${FFMPEG:-/usr/bin/ffmpeg}
OUT=src/kinds/video/assets
mkdir -p "$OUT"
for size in 16x9:64x36 9x16:36x64 1x1:48x48; do
  ratio=${size%%:*}
  frame=${size#*:}
  for duration in $(seq 3 15); do
    "$FFMPEG" -hide_banner -loglevel error -y \
      -f lavfi -i "color=c=0x2a5599:size=${frame}:rate=4:duration=${duration}[bg];color=c=white:size=6x6:rate=4[box];[bg][box]overlay=x='(W-w)*t/${duration}':y='(H-h)/2':shortest=1" \
      -c:v libx264 -profile:v baseline -pix_fmt yuv420p -bf 0 -g 1000 -crf 32 \
      -bsf:v filter_units=remove_types=6 -movflags +faststart -map_metadata -1 -fflags +bitexact -flags:v +bitexact \
      "$OUT/${ratio}-${duration}s.mp4"
  done
done
