// The one hook between the Node-API binding (native/binding.cc) and the CUDA twin:
//
//   #ifdef CRATE_WITH_CUDA
//   #include "cuda/register.h"
//   ...
//     crate::cuda::Register(env, exports);
//   #endif
//
// Register adds `exports.cuda`, an object with the CPU binding's function names (alloc, free, upload,
// linear_forward, ...) working on device buffers, plus available(), synchronize(), memory_info(),
// set_precision() and precision(). See native/cuda/binding_cuda.cc.
#pragma once

#include <napi.h>

namespace crate {
namespace cuda {

void Register(Napi::Env env, Napi::Object exports);

}  // namespace cuda
}  // namespace crate
