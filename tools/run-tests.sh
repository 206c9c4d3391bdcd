#!/bin/sh
# Installs what the tests need, builds Routescope and runs the test suite.
# Ends with the line "N passed, N failed" (test suites, counted by meson).
# Usage: tools/run-tests.sh [BUILD_DIR]   (default: build)
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
sh tools/install-deps.sh --test
if [ -d "$BUILD" ]; then
  meson setup --reconfigure "$BUILD"
else
  meson setup "$BUILD"
fi
ninja -C "$BUILD"
status=0
meson test -C "$BUILD" --print-errorlogs --num-processes 2 || status=$?
python3 - "$BUILD/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif r == "SKIP":
        skipped += 1
    else:
        failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
exit $status
