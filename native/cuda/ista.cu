// ISTA blocks on the GPU (spec E17, E19, E14): every step is one or two matrix products of gemm.cuh
// with the elementwise part fused into the product's store, so no separate elementwise pass runs.
//
// Overcomplete ISTA from zero (A = ista.weight = D^T: (H,C)), u: (N,C), codes: (steps,N,H), out: (N,C):
//   t = 1:      a_1 = relu(eta u A^T - thr)                  NT product, threshold epilogue
//   t >= 2:     r_t = u - a_{t-1} A                          NN product, "u - acc" epilogue
//               a_t = relu(a_{t-1} + eta r_t A^T - thr)      NT product, threshold epilogue
//   out = a_S A                                              NN product
// Backward (du written, dA accumulated), with dz_t = da_t (a_t > 0) (masks fused into the producers):
//   dA += a_S^T dout;           da_S = dout A^T  (masked by a_S > 0)
//   for t = S..1:  r_t recomputed;  dr_t = eta dz_t A;  du += dr_t;
//                  dA += eta dz_t^T r_t;  dA -= a_{t-1}^T dr_t;
//                  da_{t-1} = dz_t - dr_t A^T  (masked by a_{t-1} > 0)
// Complete ISTA (paper B): out = relu(x + eta (x W - x W^T W) - thr), W: (C,C).
// The per-element math (threshold, ReLU mask) is crate::hd in native/hd_math.h, shared with the CPU.
#include "common.cuh"
#include "gemm.cuh"

namespace crate {
namespace cuda {
namespace {

using gemm::Accumulate;
using gemm::Store;

/** C = relu(prev + eta * acc - thr); prev nullable (= 0, the first step from zero). */
struct IstaStep {
  float* C;
  const float* prev;
  int64_t ld;
  float eta, thr;
  __device__ __forceinline__ void apply(int64_t m, int64_t n, float acc) const {
    const int64_t i = m * ld + n;
    C[i] = hd::ista_step(prev ? prev[i] : 0.0f, acc, eta, thr);
  }
};

/** C = u - acc  (the residual r = u - a A; also q' = x - x W^T) */
struct SubtractFrom {
  float* C;
  const float* u;
  int64_t ld;
  __device__ __forceinline__ void apply(int64_t m, int64_t n, float acc) const {
    const int64_t i = m * ld + n;
    C[i] = u[i] - acc;
  }
};

/** C = relu_mask(alpha * acc, mask)  (da_S = dout A^T, masked by a_S > 0) */
struct MaskedStore {
  float* C;
  const float* mask;
  int64_t ld;
  float alpha;
  __device__ __forceinline__ void apply(int64_t m, int64_t n, float acc) const {
    const int64_t i = m * ld + n;
    C[i] = hd::relu_mask(alpha * acc, mask[i]);
  }
};

/** C = relu_mask(C - acc, mask), in place: da_{t-1} = dz_t - dr_t A^T, masked by a_{t-1} > 0 */
struct MaskedSubtractInPlace {
  float* C;
  const float* mask;
  int64_t ld;
  __device__ __forceinline__ void apply(int64_t m, int64_t n, float acc) const {
    const int64_t i = m * ld + n;
    C[i] = hd::relu_mask(-1.0f * acc + C[i], mask[i]);
  }
};

/** Complete ISTA's last product: out = relu(x + eta (out - acc) - thr) with out = x W already stored. */
struct CompleteThreshold {
  float* out;
  const float* x;
  int64_t ld;
  float eta, thr;
  __device__ __forceinline__ void apply(int64_t m, int64_t n, float acc) const {
    const int64_t i = m * ld + n;
    const float g = -1.0f * acc + out[i];  // x W - q W, as the CPU twin's sgemm(alpha = -1, accumulate)
    out[i] = hd::ista_step(x[i], g, eta, thr);
  }
};

/** Complete ISTA backward: dx = dz + eta (G - acc) with acc = G W. */
struct CompleteDx {
  float* dx;
  const float* dz;
  const float* G;
  int64_t ld;
  float eta;
  __device__ __forceinline__ void apply(int64_t m, int64_t n, float acc) const {
    const int64_t i = m * ld + n;
    dx[i] = dz[i] + eta * (G[i] - acc);
  }
};

__global__ void relu_mask_kernel(float* dz, const float* dout, const float* out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) dz[i] = hd::relu_mask(dout[i], out[i]);
}

}  // namespace

void ista_forward(float* out, float* codes, const float* u, const float* A, int64_t N, int64_t C, int64_t H, double eta_d, double lam_d, int64_t steps) {
  const char* op = "ista_forward";
  if (N <= 0) return;
  if (steps <= 0) {
    fill(out, N * C, 0.0f);
    return;
  }
  const float eta = static_cast<float>(eta_d);
  const float thr = hd::ista_threshold_of(eta_d, lam_d);
  const int64_t NH = N * H;
  float* r = nullptr;
  if (steps > 1) r = static_cast<float*>(workspace(sizeof(float) * N * C, op, Ws::kOp));
  for (int64_t t = 1; t <= steps; ++t) {
    float* at = codes + (t - 1) * NH;
    const float* prev = t > 1 ? codes + (t - 2) * NH : nullptr;
    const float* rt = u;
    if (prev) {  // r_t = u - a_{t-1} A
      gemm::run(op, false, false, N, C, H, prev, H, A, C, SubtractFrom{r, u, C});
      rt = r;
    }
    // a_t = relu(a_{t-1} + eta r_t A^T - eta lam)
    gemm::run(op, false, true, N, H, C, rt, C, A, C, IstaStep{at, prev, H, eta, thr});
  }
  gemm::run(op, false, false, N, C, H, codes + (steps - 1) * NH, H, A, C, Store{out, C, 1.0f});  // out = a_S A
}

void ista_backward(float* du, float* dA, const float* dout, const float* u, const float* A, const float* codes, int64_t N, int64_t C, int64_t H, double eta_d,
                   double lam_d, int64_t steps) {
  const char* op = "ista_backward";
  (void)lam_d;  // the threshold enters only through the saved codes
  if (steps <= 0) {
    fill(du, N * C, 0.0f);
    return;
  }
  if (N <= 0) return;
  const float eta = static_cast<float>(eta_d);
  const int64_t NH = N * H;
  Carve cv;
  cv.need(sizeof(float) * NH);     // da
  cv.need(sizeof(float) * N * C);  // r
  cv.need(sizeof(float) * N * C);  // dr
  cv.begin(workspace(cv.total(), op, Ws::kOp));
  float* da = cv.take<float>(NH);
  float* r = cv.take<float>(N * C);
  float* dr = cv.take<float>(N * C);

  const float* aS = codes + (steps - 1) * NH;
  gemm::run(op, true, false, H, C, N, aS, H, dout, C, Accumulate{dA, C, 1.0f});      // dA += a_S^T dout
  gemm::run(op, false, true, N, H, C, dout, C, A, C, MaskedStore{da, aS, H, 1.0f});  // dz_S = (dout A^T)(a_S > 0)
  for (int64_t t = steps; t >= 1; --t) {
    const float* prev = t > 1 ? codes + (t - 2) * NH : nullptr;
    const float* rt = u;
    if (prev) {  // r_t = u - a_{t-1} A (recomputed)
      gemm::run(op, false, false, N, C, H, prev, H, A, C, SubtractFrom{r, u, C});
      rt = r;
    }
    // dr_t = eta dz_t A: the first one straight into du; the last one (t = 1, not needed afterwards)
    // accumulated straight into du; the ones between through dr.
    float* drt;
    if (t == steps) {
      gemm::run(op, false, false, N, C, H, da, H, A, C, Store{du, C, eta});
      drt = du;
    } else if (t == 1) {
      gemm::run(op, false, false, N, C, H, da, H, A, C, Accumulate{du, C, eta});
      drt = nullptr;
    } else {
      gemm::run(op, false, false, N, C, H, da, H, A, C, Store{dr, C, eta});
      drt = dr;
    }
    gemm::run(op, true, false, H, C, N, da, H, rt, C, Accumulate{dA, C, eta});  // dA += eta dz_t^T r_t
    if (prev) {
      gemm::run(op, true, false, H, C, N, prev, H, drt, C, Accumulate{dA, C, -1.0f});  // dA -= a_{t-1}^T dr_t
      // dz_{t-1} = (dz_t - dr_t A^T)(a_{t-1} > 0), in place over da
      gemm::run(op, false, true, N, H, C, drt, C, A, C, MaskedSubtractInPlace{da, prev, H});
      if (t != steps) add(du, du, drt, N * C);
    }
  }
}

void ista_complete_forward(float* out, const float* x, const float* W, int64_t N, int64_t C, double eta_d, double lam_d) {
  const char* op = "ista_complete_forward";
  if (N <= 0) return;
  const float eta = static_cast<float>(eta_d);
  const float thr = hd::ista_threshold_of(eta_d, lam_d);
  float* q = static_cast<float*>(workspace(sizeof(float) * N * C, op, Ws::kOp));
  gemm::run(op, false, false, N, C, C, x, C, W, C, Store{out, C, 1.0f});  // out = x W
  gemm::run(op, false, true, N, C, C, x, C, W, C, Store{q, C, 1.0f});     // q = x W^T
  // out = relu(x + eta (x W - q W) - eta lam)
  gemm::run(op, false, false, N, C, C, q, C, W, C, CompleteThreshold{out, x, C, eta, thr});
}

void ista_complete_backward(float* dx, float* dW, const float* dout, const float* x, const float* W, const float* out, int64_t N, int64_t C, double eta_d,
                            double lam_d) {
  const char* op = "ista_complete_backward";
  (void)lam_d;
  if (N <= 0) return;
  const float eta = static_cast<float>(eta_d);
  const int64_t n = N * C;
  Carve cv;
  cv.need(sizeof(float) * n);  // dz
  cv.need(sizeof(float) * n);  // G
  cv.need(sizeof(float) * n);  // q
  cv.begin(workspace(cv.total(), op, Ws::kOp));
  float* dz = cv.take<float>(n);
  float* G = cv.take<float>(n);
  float* q = cv.take<float>(n);
  relu_mask_kernel<<<grid_for(n), kThreads>>>(dz, dout, out, n);  // dz = dout (out > 0)
  CRATE_LAUNCH_CHECK(op, "relu_mask_kernel");
  gemm::run(op, false, true, N, C, C, dz, C, W, C, Store{G, C, 1.0f});              // G = dz W^T
  gemm::run(op, false, false, N, C, C, G, C, W, C, CompleteDx{dx, dz, G, C, eta});  // dx = dz + eta (G - G W)
  gemm::run(op, false, true, N, C, C, x, C, W, C, SubtractFrom{q, x, C});           // q = x - x W^T
  gemm::run(op, true, false, C, C, N, q, C, dz, C, Accumulate{dW, C, eta});         // dW += eta (x - x W^T)^T dz
  gemm::run(op, true, false, C, C, N, G, C, x, C, Accumulate{dW, C, -eta});         // dW -= eta G^T x
}

}  // namespace cuda
}  // namespace crate
