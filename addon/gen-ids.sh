#!/bin/sh
# addon/ids.d.ts from addon/ids.d.ts.cpp and defs.x (npm run gen; see there).
set -e
cd "$(dirname "$0")/.."
cpp -P -undef -nostdinc -I. addon/ids.d.ts.cpp | grep -v '^[[:space:]]*$' > addon/ids.d.ts.tmp
mv addon/ids.d.ts.tmp addon/ids.d.ts
