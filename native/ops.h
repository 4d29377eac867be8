// The native CPU operators: the snake_case twins of the Backend interface (src/backend/types.ts).
//
// The prototypes of the table's operators are generated from native/ops.json (npm run gen:ops) into
// native/generated/ops_decl.inc; the CUDA twin (native/cuda/ops_cuda.h) includes the same list in
// namespace crate::cuda. Every function takes raw float32 pointers and explicit int64_t sizes,
// assumes its arguments were validated (native/binding.h does that from the table), and follows the
// interface's conventions: row-major contiguous tensors; forward functions write their outputs;
// backward functions WRITE activation gradients and ACCUMULATE (+=) parameter gradients.
#pragma once

#include <cstddef>
#include <cstdint>

namespace crate {

#include "generated/ops_decl.inc"

// ---- helpers that are not operators of the table (elementwise.cc) -------------------------------------
/** dst[j] += sum_n src[n*cols + j] for j < cols, summed in double in row order. */
void column_sums_accumulate(float* dst, const float* src, int64_t rows, int64_t cols);

}  // namespace crate
