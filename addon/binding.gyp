# SPDX-License-Identifier: GPL-2.0
{
  "targets": [
    {
      "target_name": "vordr",
      "sources": [
        "src/addon.cc",
        "src/conn.cc",
        "src/schema.cc",
        "src/wire.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      # ".." so the sources can #include "defs.x" from the repository root.
      "include_dirs": [".."],
      "defines": [
        "NAPI_VERSION=8",
        # The kernel module computes the same number with the same command;
        # HELLO reports it, so a mismatched pair is detected at run time.
        "VORDR_SCHEMA_CRC=<!(cksum < ../defs.x | cut -d' ' -f1)u"
      ],
      "cflags": [
        "-Wall",
        "-Wextra",
        "<!@(pkg-config --cflags libnl-genl-3.0 libsystemd)"
      ],
      "cflags_cc": ["-std=gnu++17"],
      # libsystemd: sd_notify() for the service's readiness (Type=notify).
      "libraries": ["<!@(pkg-config --libs libnl-genl-3.0 libsystemd)"]
    }
  ]
}
