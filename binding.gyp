# node-gyp build for users installing from npm without a matching prebuild (scripts/install.js runs
# it). CMakeLists.txt is the source of truth: same sources (native/*.cc), same defines and flags, and
# the same libtorch, found by scripts/find-libtorch.js, which also reads the compile definitions and
# include folders libtorch's CMake targets give their users (USE_DISTRIBUTED, USE_C10D_GLOO, …).
# No precompiled header here: every source includes what it uses.
{
  "targets": [
    {
      "target_name": "torch_dpo",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native').filter((f) => f.endsWith('.cc')).map((f) => 'native/' + f).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "<!@(node scripts/find-libtorch.js --gyp includeDirs)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "_GLIBCXX_USE_CXX11_ABI=<!(node scripts/find-libtorch.js --gyp abi)",
        "<!@(node scripts/find-libtorch.js --gyp definitions)"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-fvisibility=hidden", "-Wno-unused-parameter"],
      "libraries": ["<!@(node scripts/find-libtorch.js --gyp libraries)"],
      "ldflags": ["-Wl,-rpath,'$$ORIGIN'"]
    }
  ]
}
