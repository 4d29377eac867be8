// The linear family on the GPU (linear_forward, linear_backward; src/reference/linear.ts): the
// forward with the bias fused into the store; the backward as an NN product for dinp, a TN product
// accumulated into dweight, and a deterministic column sum for dbias; and a general sgemm with the CPU
// twin's signature. The kernels are in gemm.cuh.
#include "common.cuh"
#include "gemm.cuh"

namespace crate {
namespace cuda {

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C, int64_t OC) {
  // out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias: the NT layout.
  gemm::run("linear_forward", false, true, N, OC, C, inp, C, weight, C, gemm::Bias{out, OC, bias});
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC) {
  const char* op = "linear_backward";
  // dinp (N,C) = dout (N,OC) @ weight (OC,C): NN, written.
  if (dinp) gemm::run(op, false, false, N, C, OC, dout, OC, weight, C, gemm::Store{dinp, C, 1.0f});
  // dweight (OC,C) += dout^T (OC,N) @ inp (N,C): TN, accumulated (split-K over N when it pays).
  if (N > 0) gemm::run(op, true, false, OC, C, N, dout, OC, inp, C, gemm::Accumulate{dweight, C, 1.0f});
  // dbias (OC) += sum_n dout[n, :]
  if (dbias) column_sums_accumulate(dbias, dout, N, OC);
}

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, bool accumulate,
           float* C, int64_t ldc) {
  if (accumulate)
    gemm::run("sgemm", transA, transB, M, N, K, A, lda, B, ldb, gemm::Accumulate{C, ldc, alpha});
  else
    gemm::run("sgemm", transA, transB, M, N, K, A, lda, B, ldb, gemm::Store{C, ldc, alpha});
}

}  // namespace cuda
}  // namespace crate
