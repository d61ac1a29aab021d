#!/bin/sh
# prebuildify always spawns "node-gyp rebuild ..."; this stands in for it and runs cmake-js with
# $CMAKE_JS_FLAGS instead (prebuildify 6 has no cmake-js backend). Its arguments are ignored.
set -e
cd "$(dirname "$0")/.."
exec ./node_modules/.bin/cmake-js rebuild $CMAKE_JS_FLAGS
