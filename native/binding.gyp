{
  "targets": [
    {
      "target_name": "tsrun_native",
      "sources": [
        "src/addon.cc",
        "src/args.cc",
        "src/errors.cc",
        "src/fdpass.cc",
        "src/fds.cc",
        "src/mount.cc",
        "src/pidfd.cc",
        "src/poller.cc",
        "src/reaper.cc",
        "src/spawn.cc",
        "src/tracked.cc",
        "src/tty.cc",
        "src/wait-status.cc"
      ],
      "include_dirs": [ "<!(node -p \"require('node-addon-api').include_dir\")" ],
      "defines": [ "NAPI_VERSION=9", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE" ],
      "cflags!": [ "-fno-exceptions" ],
      "cflags_cc!": [ "-fno-exceptions" ],
      "cflags": [ "-Wall", "-Wextra", "-Werror", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-O2" ],
      "cflags_cc": [ "-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-O2" ]
    },
    {
      "target_name": "containerd-shim-tsrun-v1",
      "type": "executable",
      "sources": [ "launcher/launcher.c" ],
      "variables": {
        "tsrun_node": "<!(node -p process.execPath)",
        "tsrun_main": "<!(node -p \"require('path').resolve('../build/shim/entry.cjs')\")"
      },
      "defines": [ "TSRUN_DEFAULT_NODE=\"<(tsrun_node)\"", "TSRUN_DEFAULT_MAIN=\"<(tsrun_main)\"" ],
      "cflags": [ "-std=c11", "-Wall", "-Wextra", "-Werror", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-O2" ]
    }
  ]
}
