// The CUDA twin of native/ops.h: the same operator names in namespace crate::cuda, taking DEVICE
// pointers (float32, row-major, contiguous) and explicit sizes. This header needs no CUDA headers, so
// the Node-API glue (binding_cuda.cc) and the conformance harness include it as plain C++.
//
// Conventions (as the CPU twin): forward functions write their outputs; backward functions WRITE
// activation gradients and ACCUMULATE (+=) parameter gradients; attention saves one logsumexp per
// (batch, head, row) in (B, NH, T) (the same layout and values as the CPU twin); ISTA's codes buffer
// (steps, N, H) keeps every iterate; cross-entropy ignores target -1.
//
// Exceptions: token ids (idx) and targets are HOST pointers (they arrive from JavaScript as an
// Int32Array and are small); they are copied to the device inside the call. Scalars returned to the
// host (sum_squares, all_finite, cross_entropy_forward) synchronize the device.
//
// Errors: every CUDA call and kernel launch is checked; a failure throws crate::cuda::Error (a
// std::runtime_error) whose message names the operator and the CUDA error, e.g.
// "linear_forward: CUDA error cudaErrorIllegalAddress (an illegal memory access was encountered)".
// Kernels run asynchronously on the legacy default stream, so an error raised by a kernel may only be
// seen by a later call; set CRATE_CUDA_SYNC=1 to synchronize after every launch and pin it down.
//
// Determinism: no atomics; every reduction runs in a fixed order that depends only on the shapes
// (not on the GPU model), so the same inputs give bitwise-identical outputs run after run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace crate {
namespace cuda {

/** A failed CUDA call or launch, or an unsupported argument; the message names the operator. */
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// ---- device, memory, precision (memory.cu) ---------------------------------------------------------

struct Availability {
  bool available = false;
  /** Why not, when unavailable: "no CUDA device", "no NVIDIA driver ...", ... */
  std::string reason;
  std::string device;       // e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  size_t total_bytes = 0;
  int runtime_version = 0;  // e.g. 13000
  int driver_version = 0;   // 0 when no driver is installed
};

/** Probes the driver and device 0 once (cached); never throws. */
const Availability& cuda_available();

/** cudaMalloc + zero fill of n floats; out of memory throws Error naming op and the bytes asked for. */
float* device_alloc(int64_t n, const char* op = "alloc");
void device_free(float* p);
/** Host <-> device copies of n floats (synchronous w.r.t. the host). */
void upload(float* dst_device, const float* src_host, int64_t n, const char* op = "upload");
void download(float* dst_host, const float* src_device, int64_t n, const char* op = "download");
/** Blocks until all queued work is done; throws if any of it failed. */
void synchronize(const char* op = "synchronize");
/** Free and total device memory in bytes. */
void memory_info(size_t* free_bytes, size_t* total_bytes);

/** Matrix-product precision: strict float32 SIMT kernels (default) or TF32 tensor cores. */
enum class Precision { kFp32 = 0, kTf32 = 1 };
void set_precision(Precision p);
Precision precision();

// ---- elementwise.cu --------------------------------------------------------------------------------
void fill(float* buf, int64_t n, float value);
void copy(float* dst, const float* src, int64_t n);
void add(float* out, const float* a, const float* b, int64_t n);
void scale(float* buf, int64_t n, float s);
/** Sum of squares in double, fixed-order two-stage reduction (synchronizes). */
double sum_squares(const float* buf, int64_t n);
bool all_finite(const float* buf, int64_t n);
void relu_forward(float* out, const float* inp, int64_t n);
void relu_backward(float* dinp, const float* dout, const float* out, int64_t n);
/** dst[j] += sum_n src[n*cols + j], in double, fixed-order two-stage column reduction. */
void column_sums_accumulate(float* dst, const float* src, int64_t rows, int64_t cols);

// ---- embedding.cu (idx: HOST pointer) --------------------------------------------------------------
void embedding_forward(float* out, const int32_t* idx, const float* wte, const float* wpe, int64_t B, int64_t T,
                       int64_t C);
/** Deterministic: positions are bucketed by token on the host (counting, no sort), summed in position order. */
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* idx, int64_t B, int64_t T,
                        int64_t C);

// ---- layernorm.cu ----------------------------------------------------------------------------------
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);

// ---- matmul.cu -------------------------------------------------------------------------------------
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC);
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC);
/** C (M x N, ldc) = alpha op(A) op(B) (+ C if accumulate), as native/gemm.h's sgemm. */
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, bool accumulate, float* C, int64_t ldc);

// ---- mssa.cu (flash-style causal attention; head width p = C/NH <= 256) ----------------------------
int64_t attention_saved_size(int64_t B, int64_t NH, int64_t T);
void mssa_forward(float* y, float* saved, const float* v, int64_t B, int64_t T, int64_t C, int64_t NH);
void mssa_backward(float* dv, const float* dy, const float* v, const float* y, const float* saved, int64_t B,
                   int64_t T, int64_t C, int64_t NH);
void attention_forward(float* y, float* saved, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t NH);
void attention_backward(float* dqkv, const float* dy, const float* qkv, const float* y, const float* saved,
                        int64_t B, int64_t T, int64_t C, int64_t NH);
/** Largest head width p = C/NH the attention kernels accept. */
constexpr int64_t kMaxHeadWidth = 256;

// ---- ista.cu ---------------------------------------------------------------------------------------
void ista_forward(float* out, float* codes, const float* u, const float* A, int64_t N, int64_t C, int64_t H,
                  double eta, double lam, int64_t steps);
void ista_backward(float* du, float* dA, const float* dout, const float* u, const float* A, const float* codes,
                   int64_t N, int64_t C, int64_t H, double eta, double lam, int64_t steps);
void ista_complete_forward(float* out, const float* x, const float* W, int64_t N, int64_t C, double eta, double lam);
void ista_complete_backward(float* dx, float* dW, const float* dout, const float* x, const float* W, const float* out,
                            int64_t N, int64_t C, double eta, double lam);

// ---- loss.cu (targets: HOST pointer) ---------------------------------------------------------------
double cross_entropy_forward(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                             double grad_scale);

// ---- adamw.cu --------------------------------------------------------------------------------------
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int64_t step);

}  // namespace cuda
}  // namespace crate
