{
  "targets": [{
    "target_name": "virt",
    "sources": [
      "src/module.cc", "src/errors.cc", "src/async.cc", "src/typed_params.cc",
      "src/event_loop.cc", "src/connection.cc", "src/domain.cc", "src/storage.cc"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers",
                  "<!@(pkg-config --cflags libvirt)"],
    "libraries": ["<!@(pkg-config --libs libvirt)"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
  }]
}
