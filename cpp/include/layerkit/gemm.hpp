// General matrix product over strided operands, threaded, bitwise identical for any thread count.
//   C[M, N] = A[M, K] @ B[K, N]            (or C += A @ B with accumulate)
// A and B are addressed as a[i * rs + k * cs], so a transposed operand is just other strides; C is
// row-major with leading dimension ldc. BLIS-style: B is packed into KC x NR slivers, A into
// MR x KC slivers, and a register-blocked micro-kernel computes one MR x NR tile of C at a time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "buffers.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace layerkit {
namespace detail {

template <typename T>
struct GemmBlocking;
template <>
struct GemmBlocking<float> {
  static constexpr std::size_t MR = 6, NR = 16, KC = 256, MC = 96, NC = 2048;
};
template <>
struct GemmBlocking<double> {
  static constexpr std::size_t MR = 6, NR = 8, KC = 256, MC = 96, NC = 1024;
};

// K in equal blocks of at most KC (784 = 4 x 196, not 3 x 256 + 16): no thin last block.
template <typename T>
std::size_t k_step(std::size_t K) {
  const std::size_t blocks = (K + GemmBlocking<T>::KC - 1) / GemmBlocking<T>::KC;
  return (K + blocks - 1) / blocks;
}

// c[R x NR] = (acc ? c : 0) + sum_k a[k, :R]^T b[k, :], over packed slivers a (MR per k, of
// which the first R are used: R = MR but in a last, partial tile) and b (NR per k). Each element
// sums over k in order, then adds to c: the same arithmetic for every element, wherever it lies
// and however many rows its tile has.
template <typename T>
using MicroKernel = void (*)(std::size_t kc, const T* a, const T* b, T* c, std::size_t ldc,
                             bool acc);

template <typename T, int R>
void microkernel_generic(std::size_t kc, const T* a, const T* b, T* c, std::size_t ldc, bool acc) {
  constexpr std::size_t MR = GemmBlocking<T>::MR, NR = GemmBlocking<T>::NR;
  T t[R][NR] = {};
  for (std::size_t k = 0; k < kc; ++k, a += MR, b += NR)
    for (std::size_t i = 0; i < R; ++i)
      for (std::size_t j = 0; j < NR; ++j) t[i][j] += a[i] * b[j];
  for (std::size_t i = 0; i < R; ++i)
    for (std::size_t j = 0; j < NR; ++j) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
}

#ifdef LAYERKIT_X86_KERNELS
// 6 x 16 floats or 6 x 8 doubles: per k, two loads of b, a broadcast of a per row, two FMAs per
// row. The accumulators are named variables: held in an array, GCC spills them to the stack on
// every iteration.
template <typename T, int R>
LAYERKIT_AVX2 void microkernel_avx2(std::size_t kc, const T* a, const T* b, T* c, std::size_t ldc,
                                    bool acc) {
  static_assert(GemmBlocking<T>::MR == 6 && GemmBlocking<T>::NR == 2 * Avx<T>::W && R <= 6);
  using Av = Avx<T>;
  using V = typename Av::V;
  constexpr std::size_t W = Av::W;
  V c00 = Av::set1(T(0)), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  V c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int i = 0; i < R; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 2 * W - 1), _MM_HINT_T0);
  }
#define LAYERKIT_ROW(i)                   \
  if constexpr (R > i) {                  \
    const V ai = Av::set1(a[i]);          \
    c##i##0 = Av::fmadd(ai, b0, c##i##0); \
    c##i##1 = Av::fmadd(ai, b1, c##i##1); \
  }
#pragma GCC unroll 4
  for (std::size_t k = 0; k < kc; ++k, a += 6, b += 2 * W) {
    const V b0 = Av::load(b), b1 = Av::load(b + W);
    LAYERKIT_ROW(0)
    LAYERKIT_ROW(1)
    LAYERKIT_ROW(2)
    LAYERKIT_ROW(3)
    LAYERKIT_ROW(4)
    LAYERKIT_ROW(5)
  }
#undef LAYERKIT_ROW
  const V rows[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < R; ++i) {
    T* ci = c + i * ldc;
    Av::store(ci, acc ? Av::add(Av::load(ci), rows[i][0]) : rows[i][0]);
    Av::store(ci + W, acc ? Av::add(Av::load(ci + W), rows[i][1]) : rows[i][1]);
  }
}
#endif

// The kernels for tiles of 1 to MR rows: kernels[r] computes r rows.
template <typename T>
struct MicroKernels {
  MicroKernel<T> kernels[GemmBlocking<T>::MR + 1];
};

template <typename T>
MicroKernels<T> select_microkernels() {
  static_assert(GemmBlocking<T>::MR == 6);
#ifdef LAYERKIT_X86_KERNELS
  if (use_avx2())
    return {{nullptr, &microkernel_avx2<T, 1>, &microkernel_avx2<T, 2>, &microkernel_avx2<T, 3>,
             &microkernel_avx2<T, 4>, &microkernel_avx2<T, 5>, &microkernel_avx2<T, 6>}};
#endif
  return {{nullptr, &microkernel_generic<T, 1>, &microkernel_generic<T, 2>,
           &microkernel_generic<T, 3>, &microkernel_generic<T, 4>, &microkernel_generic<T, 5>,
           &microkernel_generic<T, 6>}};
}

#ifdef LAYERKIT_X86_KERNELS
// In-register transposes: r[i] holds line i at W consecutive k; afterwards r[k] holds every
// line's value at that k.
LAYERKIT_AVX2 inline void transpose_block(__m256 (&r)[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    s[h] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    s[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    s[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    s[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2f128_ps(s[k], s[k + 4], 0x20);
    r[k + 4] = _mm256_permute2f128_ps(s[k], s[k + 4], 0x31);
  }
}

LAYERKIT_AVX2 inline void transpose_block(__m256d (&r)[4]) {
  const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
  const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
  r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
  r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
  r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
  r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

// Stores the first c lanes of v: all of them, or 6 floats, or 2 doubles (no masked store: slow
// on AMD).
LAYERKIT_AVX2 inline void store_first(float* p, __m256 v, std::size_t c) {
  if (c == 8) return _mm256_storeu_ps(p, v);
  _mm_storeu_ps(p, _mm256_castps256_ps128(v));
  _mm_storel_pi(reinterpret_cast<__m64*>(p + 4), _mm256_extractf128_ps(v, 1));
}

LAYERKIT_AVX2 inline void store_first(double* p, __m256d v, std::size_t c) {
  if (c == 4) return _mm256_storeu_pd(p, v);
  _mm_storeu_pd(p, _mm256_castpd256_pd128(v));
}

// One full sliver of R lines that each run contiguously along k (line i starts at p + i * step_i):
// W x W blocks are transposed in registers, so the packed buffer is written a vector at a time
// rather than a value at a time.
template <std::size_t R, typename T>
LAYERKIT_AVX2 void pack_sliver_transposing(std::size_t kc, const T* p, std::ptrdiff_t step_i,
                                           T* out) {
  using Av = Avx<T>;
  using V = typename Av::V;
  constexpr std::size_t W = Av::W;
  static_assert(R % W == 0 || R % W == (W == 8 ? 6 : 2), "store_first cannot store R % W lanes");
  std::size_t k = 0;
  for (; k + W <= kc; k += W) {
#pragma GCC unroll 4
    for (std::size_t g = 0; g < R; g += W) {
      const std::size_t c = std::min(W, R - g);
      V v[W];
#pragma GCC unroll 8
      for (std::size_t i = 0; i < W; ++i)
        v[i] =
            i < c ? Av::load(p + static_cast<std::ptrdiff_t>(g + i) * step_i + k) : Av::set1(T(0));
      transpose_block(v);
#pragma GCC unroll 8
      for (std::size_t j = 0; j < W; ++j) store_first(out + (k + j) * R + g, v[j], c);
    }
  }
  for (; k < kc; ++k)
    for (std::size_t i = 0; i < R; ++i)
      out[k * R + i] = p[static_cast<std::ptrdiff_t>(i) * step_i + static_cast<std::ptrdiff_t>(k)];
}
#endif

// Packs an n x kc panel into slivers of R lines (zero-padded): for each sliver, for each k, R
// consecutive values. Element (i, k) of the panel is p[i * step_i + k * step_k]; A is packed with
// R = MR and (step_i, step_k) = (row stride, column stride), B with R = NR and the reverse.
template <std::size_t R, typename T>
void pack_panel(std::size_t n, std::size_t kc, const T* p, std::ptrdiff_t step_i,
                std::ptrdiff_t step_k, T* out) {
#ifdef LAYERKIT_X86_KERNELS
  const bool transposing = step_k == 1 && use_avx2();
#endif
  for (std::size_t i0 = 0; i0 < n; i0 += R, out += R * kc) {
    const std::size_t r = std::min(R, n - i0);
#ifdef LAYERKIT_X86_KERNELS
    if (transposing && r == R) {
      pack_sliver_transposing<R>(kc, p + static_cast<std::ptrdiff_t>(i0) * step_i, step_i, out);
      continue;
    }
#endif
    if (step_i == 1 && r == R) {  // a sliver's R values lie side by side: a fixed-size copy
      for (std::size_t k = 0; k < kc; ++k) {
        const T* src = p + static_cast<std::ptrdiff_t>(k) * step_k + i0;
        for (std::size_t i = 0; i < R; ++i) out[k * R + i] = src[i];
      }
      continue;
    }
    if (r < R) std::fill(out, out + R * kc, T(0));
    for (std::size_t i = 0; i < r; ++i) {  // walk along each line: contiguous when step_k == 1
      const T* src = p + static_cast<std::ptrdiff_t>(i0 + i) * step_i;
      for (std::size_t k = 0; k < kc; ++k)
        out[k * R + i] = src[static_cast<std::ptrdiff_t>(k) * step_k];
    }
  }
}

// The packing buffer `which` (0 for A, 1 for B) of the pool task the caller runs, else of the
// calling thread. A slot is only ever used by the one thread running that task.
template <typename T>
std::vector<T>& pack_buffer(int which) {
  static std::vector<T> slots[ThreadPool::kMaxTasks][2];
  thread_local std::vector<T> own[2];
  const int slot = ThreadPool::current_slot();
  return slot >= 0 ? slots[slot][which] : own[which];
}

// The whole product on the calling thread, for a sub-rectangle of C that starts on the tile grid.
template <typename T>
void gemm_serial(std::size_t M, std::size_t N, std::size_t K, const T* A, std::ptrdiff_t rsa,
                 std::ptrdiff_t csa, const T* B, std::ptrdiff_t rsb, std::ptrdiff_t csb, T* C,
                 std::size_t ldc, bool accumulate, const MicroKernels<T>& kernels) {
  using G = GemmBlocking<T>;
  constexpr std::size_t MR = G::MR, NR = G::NR;
  // Packing buffers, one pair per task slot of the pool (or per thread outside pooled jobs):
  // each grows to its full size once and is then reused.
  // Sized for this product (at most MC x KC and KC x NC), so small layers keep small buffers.
  const std::size_t kstep = k_step<T>(K);
  const std::size_t a_need = std::min(G::MC, (M + MR - 1) / MR * MR) * kstep;
  const std::size_t b_need = kstep * ((std::min(G::NC, N) + NR - 1) / NR * NR);
  std::vector<T>& abuf = pack_buffer<T>(0);
  std::vector<T>& bbuf = pack_buffer<T>(1);
  if (abuf.size() < a_need) grow(abuf, a_need);
  if (bbuf.size() < b_need) grow(bbuf, b_need);
  for (std::size_t jc = 0; jc < N; jc += G::NC) {
    const std::size_t nc = std::min(G::NC, N - jc);
    for (std::size_t pc = 0; pc < K; pc += kstep) {
      const std::size_t kc = std::min(kstep, K - pc);
      const bool acc = accumulate || pc > 0;
      pack_panel<NR>(
          nc, kc, B + static_cast<std::ptrdiff_t>(pc) * rsb + static_cast<std::ptrdiff_t>(jc) * csb,
          /*step_i=*/csb, /*step_k=*/rsb, bbuf.data());
      for (std::size_t ic = 0; ic < M; ic += G::MC) {
        const std::size_t mc = std::min(G::MC, M - ic);
        pack_panel<MR>(
            mc, kc,
            A + static_cast<std::ptrdiff_t>(ic) * rsa + static_cast<std::ptrdiff_t>(pc) * csa, rsa,
            csa, abuf.data());
        for (std::size_t jr = 0; jr < nc; jr += NR) {
          const std::size_t nr = std::min(NR, nc - jr);
          for (std::size_t ir = 0; ir < mc; ir += MR) {
            const std::size_t mr = std::min(MR, mc - ir);
            const T* ap = abuf.data() + ir * kc;
            const T* bp = bbuf.data() + jr * kc;
            T* c = C + (ic + ir) * ldc + jc + jr;
            // A tile of fewer rows runs a kernel of that many rows; one of fewer columns goes
            // through a full-width scratch tile. Same arithmetic for every element either way.
            if (nr == NR) {
              kernels.kernels[mr](kc, ap, bp, c, ldc, acc);
              continue;
            }
            T tile[MR * NR] = {};
            for (std::size_t i = 0; i < mr && acc; ++i)
              std::copy(c + i * ldc, c + i * ldc + nr, tile + i * NR);
            kernels.kernels[mr](kc, ap, bp, tile, NR, acc);
            for (std::size_t i = 0; i < mr; ++i)
              std::copy(tile + i * NR, tile + i * NR + nr, c + i * ldc);
          }
        }
      }
    }
  }
}

// Small and thin products skip packing: C[i, j0 : j0 + 2W] is computed from A's values and B's
// rows where they lie (B's rows contiguous). The arithmetic is the packed kernels':
// per block of k, a sum from zero in k order (one FMA per k with AVX2), then added to C.
template <typename T>
using SmallKernel = void (*)(std::size_t M, std::size_t j0, std::size_t j1, std::size_t K,
                             const T* A, std::ptrdiff_t rsa, std::ptrdiff_t csa, const T* B,
                             std::ptrdiff_t rsb, T* C, std::size_t ldc, bool accumulate);

template <typename T>
void gemm_small_generic(std::size_t M, std::size_t j0, std::size_t j1, std::size_t K, const T* A,
                        std::ptrdiff_t rsa, std::ptrdiff_t csa, const T* B, std::ptrdiff_t rsb,
                        T* C, std::size_t ldc, bool accumulate) {
  const std::size_t kstep = k_step<T>(K);
  for (std::size_t i = 0; i < M; ++i) {
    const T* a = A + static_cast<std::ptrdiff_t>(i) * rsa;
    T* c = C + i * ldc;
    for (std::size_t pc = 0; pc < K; pc += kstep) {
      const std::size_t kend = std::min(K, pc + kstep);
      const bool acc = accumulate || pc > 0;
      for (std::size_t j = j0; j < j1; ++j) {
        T t = 0;
        for (std::size_t k = pc; k < kend; ++k)
          t +=
              a[static_cast<std::ptrdiff_t>(k) * csa] * B[static_cast<std::ptrdiff_t>(k) * rsb + j];
        c[j] = acc ? c[j] + t : t;
      }
    }
  }
}

#ifdef LAYERKIT_X86_KERNELS
template <typename T>
LAYERKIT_AVX2 void gemm_small_avx2(std::size_t M, std::size_t j0, std::size_t j1, std::size_t K,
                                   const T* A, std::ptrdiff_t rsa, std::ptrdiff_t csa, const T* B,
                                   std::ptrdiff_t rsb, T* C, std::size_t ldc, bool accumulate) {
  using Av = Avx<T>;
  using V = typename Av::V;
  constexpr std::size_t W = Av::W;
  const std::size_t kstep = k_step<T>(K);
  for (std::size_t j = j0; j < j1; j += 2 * W) {
    // A last, narrower strip masks its loads of B and goes to C through a scratch tile: AMD's
    // masked stores are slow.
    const std::size_t n = std::min(2 * W, j1 - j);
    const bool full = n == 2 * W;
    const __m256i m0 = Av::mask(std::min(n, W)), m1 = Av::mask(n > W ? n - W : 0);
    for (std::size_t i = 0; i < M; ++i) {
      const T* a = A + static_cast<std::ptrdiff_t>(i) * rsa;
      T* c = C + i * ldc + j;
      for (std::size_t pc = 0; pc < K; pc += kstep) {
        const std::size_t kend = std::min(K, pc + kstep);
        const bool acc = accumulate || pc > 0;
        V t0 = Av::set1(T(0)), t1 = Av::set1(T(0));
        for (std::size_t k = pc; k < kend; ++k) {
          const V ak = Av::set1(a[static_cast<std::ptrdiff_t>(k) * csa]);
          const T* b = B + static_cast<std::ptrdiff_t>(k) * rsb + j;
          t0 = Av::fmadd(ak, full ? Av::load(b) : Av::load(b, m0), t0);
          t1 = Av::fmadd(ak, full ? Av::load(b + W) : Av::load(b + W, m1), t1);
        }
        if (full) {
          Av::store(c, acc ? Av::add(Av::load(c), t0) : t0);
          Av::store(c + W, acc ? Av::add(Av::load(c + W), t1) : t1);
          continue;
        }
        T tile[2 * W];
        Av::store(tile, t0);
        Av::store(tile + W, t1);
        for (std::size_t jj = 0; jj < n; ++jj) c[jj] = acc ? c[jj] + tile[jj] : tile[jj];
      }
    }
  }
}
#endif

template <typename T>
SmallKernel<T> select_small_kernel() {
#ifdef LAYERKIT_X86_KERNELS
  if (use_avx2()) return &gemm_small_avx2<T>;
#endif
  return &gemm_small_generic<T>;
}

// Whether a product skips packing: when A has so few rows that padding them to MR would waste
// more than half of the packed kernel's work, and B's rows are contiguous. Decided by the shape
// and layout alone, never by the thread count.
template <typename T>
bool use_small_gemm(std::size_t M, std::ptrdiff_t csb) {
  return M <= GemmBlocking<T>::MR / 2 && csb == 1;
}

}  // namespace detail

// C[M, N] = A @ B (+ C when accumulate). Splits C into whole tiles across the thread pool, never
// the K sum, so every element is computed the same way whatever the thread count.
template <typename T>
void gemm(std::size_t M, std::size_t N, std::size_t K, const T* A, std::ptrdiff_t rsa,
          std::ptrdiff_t csa, const T* B, std::ptrdiff_t rsb, std::ptrdiff_t csb, T* C,
          std::size_t ldc, bool accumulate) {
  using G = detail::GemmBlocking<T>;
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate)
      for (std::size_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, T(0));
    return;
  }
  if (detail::use_small_gemm<T>(M, csb)) {
    const auto small = detail::select_small_kernel<T>();
    // Thin but large products split their columns, in strips of 2W, across threads (at least
    // 2^18 multiply-adds a task).
    constexpr std::size_t strip = 64 / sizeof(T);
    const std::size_t grain = std::max<std::size_t>(1, (1 << 18) / (strip * M * K));
    parallel_for((N + strip - 1) / strip, grain, [&](std::size_t s0, std::size_t s1) {
      small(M, s0 * strip, std::min(N, s1 * strip), K, A, rsa, csa, B, rsb, C, ldc, accumulate);
    });
    return;
  }
  const auto kernels = detail::select_microkernels<T>();
  const std::size_t mtiles = (M + G::MR - 1) / G::MR, ntiles = (N + G::NR - 1) / G::NR;
  // Each task packs the whole of the operand it shares: split N (sharing A) when A is the
  // smaller one, so less is packed twice; but never into fewer tiles than threads when the
  // other split has enough.
  const std::size_t threads = thread_pool().num_threads();
  bool split_m = M * K >= K * N;
  if (split_m && mtiles < threads && ntiles >= threads) split_m = false;
  if (!split_m && ntiles < threads && mtiles >= threads) split_m = true;
  const std::size_t tiles = split_m ? mtiles : ntiles;
  // Waking a thread costs microseconds: give each one at least ~0.5 MFLOP.
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const std::size_t by_work = static_cast<std::size_t>(flops / 5e5) + 1;
  const std::size_t tasks = std::min({threads, tiles, by_work});
  if (tasks <= 1) {
    detail::gemm_serial(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, kernels);
    return;
  }
  auto task = [&](std::size_t t) {
    const std::size_t t0 = tiles * t / tasks, t1 = tiles * (t + 1) / tasks;
    if (t0 == t1) return;
    if (split_m) {
      const std::size_t i0 = t0 * G::MR, i1 = std::min(M, t1 * G::MR);
      detail::gemm_serial(i1 - i0, N, K, A + static_cast<std::ptrdiff_t>(i0) * rsa, rsa, csa, B,
                          rsb, csb, C + i0 * ldc, ldc, accumulate, kernels);
    } else {
      const std::size_t j0 = t0 * G::NR, j1 = std::min(N, t1 * G::NR);
      detail::gemm_serial(M, j1 - j0, K, A, rsa, csa, B + static_cast<std::ptrdiff_t>(j0) * csb,
                          rsb, csb, C + j0, ldc, accumulate, kernels);
    }
  };
  thread_pool().run(tasks, task);
}

}  // namespace layerkit
