// The native operators: snake_case twins of the Backend interface in src/backend/types.ts.
//
// Every function takes raw float32 pointers and explicit sizes, assumes its arguments were
// validated (binding.cc does that), and follows the interface's conventions: row-major contiguous
// tensors; forward functions write their outputs; backward functions WRITE activation gradients
// and ACCUMULATE (+=) parameter gradients. A CUDA twin (native/cuda/*.cu) mirrors these names.
//
// Sizes are int64_t so that products like N*V never overflow.
#pragma once

#include <cstddef>
#include <cstdint>

namespace crate {

// ---- elementwise.cc -------------------------------------------------------------------------------
void fill(float* buf, int64_t n, float value);
void copy(float* dst, const float* src, int64_t n);
/** out = a + b (out may alias a or b). */
void add(float* out, const float* a, const float* b, int64_t n);
/** buf *= s. */
void scale(float* buf, int64_t n, float s);
/** Sum of squares, accumulated in double over fixed 4096-element chunks combined in order
 *  (independent of the thread count). */
double sum_squares(const float* buf, int64_t n);
bool all_finite(const float* buf, int64_t n);
void relu_forward(float* out, const float* inp, int64_t n);
/** dinp = dout * (out > 0). */
void relu_backward(float* dinp, const float* dout, const float* out, int64_t n);
/** dst[j] += sum_n src[n*cols + j] for j < cols, summed in double in row order. (helper) */
void column_sums_accumulate(float* dst, const float* src, int64_t rows, int64_t cols);

// ---- embedding.cc ---------------------------------------------------------------------------------
/** out[b,t,:] = wte[idx[b,t],:] + wpe[t,:].  out: (B,T,C), wte: (V,C), wpe: (maxT,C). */
void embedding_forward(float* out, const int32_t* idx, const float* wte, const float* wpe, int64_t B, int64_t T,
                       int64_t C);
/** dwte[idx[b,t],:] += dout[b,t,:]; dwpe[t,:] += sum_b dout[b,t,:]. */
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* idx, int64_t B, int64_t T,
                        int64_t C);

// ---- layernorm.cc ---------------------------------------------------------------------------------
/** out = (inp - mean) * rstd * weight + bias over the last dim; bias may be null. */
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps);
/** dinp written; dweight, dbias (nullable) accumulated. */
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);

// ---- matmul.cc ------------------------------------------------------------------------------------
/** out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC, nullable). */
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC);
/** dinp = dout @ weight (written, skipped if null); dweight += dout^T @ inp; dbias += sum_n dout. */
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC);

// ---- mssa.cc (causal attention, flash-style: only the per-row logsumexp is saved) -----------------
/** Elements of saved state for attention backward: one logsumexp per (b, head, row). */
int64_t attention_saved_size(int64_t B, int64_t NH, int64_t T);
/** MSSA core: q = k = v = v (B,T,C), NH heads of width C/NH, causal softmax(v v^T / sqrt(p)) v. */
void mssa_forward(float* y, float* saved, const float* v, int64_t B, int64_t T, int64_t C, int64_t NH);
/** dv written: the sum of the query, key and value paths. */
void mssa_backward(float* dv, const float* dy, const float* v, const float* y, const float* saved, int64_t B,
                   int64_t T, int64_t C, int64_t NH);
/** GPT-2 attention: qkv (B,T,3C) = [q | k | v] per token, y (B,T,C). */
void attention_forward(float* y, float* saved, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t NH);
/** dqkv written. */
void attention_backward(float* dqkv, const float* dy, const float* qkv, const float* y, const float* saved,
                        int64_t B, int64_t T, int64_t C, int64_t NH);

// ---- ista.cc --------------------------------------------------------------------------------------
/** Overcomplete ISTA from zero, `steps` iterations, decode: out = a_steps A.
 *  u: (N,C), A: (H,C), codes: (steps,N,H) receives every iterate, out: (N,C). */
void ista_forward(float* out, float* codes, const float* u, const float* A, int64_t N, int64_t C, int64_t H,
                  double eta, double lam, int64_t steps);
/** du written, dA accumulated. */
void ista_backward(float* du, float* dA, const float* dout, const float* u, const float* A, const float* codes,
                   int64_t N, int64_t C, int64_t H, double eta, double lam, int64_t steps);
/** Complete ISTA: out = relu(x + eta (x W - x W^T W) - eta lam).  x,out: (N,C), W: (C,C). */
void ista_complete_forward(float* out, const float* x, const float* W, int64_t N, int64_t C, double eta, double lam);
/** dx written, dW accumulated. */
void ista_complete_backward(float* dx, float* dW, const float* dout, const float* x, const float* W, const float* out,
                            int64_t N, int64_t C, double eta, double lam);

// ---- loss.cc --------------------------------------------------------------------------------------
/** Mean cross-entropy over rows whose target is not -1, fused with its softmax backward
 *  (dlogits nullable): dlogits = gradScale * (softmax - onehot) / count. Returns NaN if count = 0. */
double cross_entropy_forward(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                             double grad_scale);

// ---- adamw.cc -------------------------------------------------------------------------------------
/** AdamW with decoupled weight decay over n elements; step is 1-based. */
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int64_t step);

}  // namespace crate
