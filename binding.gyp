{
  # The CPU addon that `npm install` builds (scripts/build-native.mjs runs node-gyp). No -march:
  # the AVX2 / AVX-512 code paths are chosen at run time. No -ffast-math: NaN checks and
  # reproducibility need IEEE arithmetic (-fno-trapping-math only says we never read the FP
  # exception flags, which lets branch-free selects vectorize; -fno-math-errno likewise for errno).
  # CMakeLists.txt builds the same sources with cmake-js.
  "targets": [
    {
      "target_name": "crate_native",
      "sources": [
        "native/adamw.cc",
        "native/binding.cc",
        "native/elementwise.cc",
        "native/embedding.cc",
        "native/gemm.cc",
        "native/ista.cc",
        "native/layernorm.cc",
        "native/linear.cc",
        "native/loss.cc",
        "native/mssa.cc",
        "native/sae.cc",
        "native/serve_rows.cc",
        "native/threadpool.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": [ "-fno-exceptions", "-O2", "-O0" ],
      "cflags_cc!": [ "-fno-exceptions", "-fno-rtti", "-O2", "-O0" ],
      "cflags": [ "-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-fopenmp-simd", "-pthread" ],
      "cflags_cc": [ "-std=gnu++17", "-fexceptions", "-frtti" ],
      "ldflags": [ "-pthread" ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": [ "-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-fopenmp-simd" ]
      }
    }
  ]
}
