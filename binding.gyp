{
  "targets": [
    {
      "target_name": "sparq",
      "sources": ["<!@(node scripts/gyp-sources.js)"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "SPARQ_VERSION=\"<!(node -p \"require('./package.json').version\")\""],
      "cflags_cc": ["-std=c++17", "-O3", "-fvisibility=hidden", "-ffp-contract=off"],
      "cflags_cc!": ["-fno-rtti", "-std=gnu++17"],
      "ldflags": ["-Wl,--version-script=<(module_root_dir)/cuda/addon/exports.map"]
    }
  ]
}
