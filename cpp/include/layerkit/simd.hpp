// Runtime choice of instruction set, and AVX2 helpers shared by the kernels.
// Kernels are compiled for the baseline architecture; the AVX2 + FMA variants carry a target
// attribute and run only where the CPU has them (or not at all when tests ask for the portable
// code). Inside the AVX2 functions only intrinsics are used, so no inline function of another
// translation unit is ever compiled with AVX2 by accident.
#pragma once

#include <cstddef>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LAYERKIT_X86_KERNELS 1
#define LAYERKIT_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace layerkit {
namespace detail {

enum class Isa { generic, avx2 };

// The instruction set kernels may use: the best available unless lowered (tests lower it).
inline Isa& isa_override() {
  static Isa isa = Isa::avx2;
  return isa;
}

inline bool cpu_has_avx2_fma() {
#ifdef LAYERKIT_X86_KERNELS
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
#else
  return false;
#endif
}

inline bool use_avx2() { return isa_override() == Isa::avx2 && cpu_has_avx2_fma(); }

#ifdef LAYERKIT_X86_KERNELS
// One AVX2 register of T, with the operations the kernels need. Tail loads and stores are masked,
// so a row of any length runs through the same vector code.
template <typename T>
struct Avx;

template <>
struct Avx<float> {
  using V = __m256;
  static constexpr std::size_t W = 8;
  LAYERKIT_AVX2 static V set1(float v) { return _mm256_set1_ps(v); }
  LAYERKIT_AVX2 static V load(const float* p) { return _mm256_loadu_ps(p); }
  LAYERKIT_AVX2 static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  LAYERKIT_AVX2 static __m256i mask(std::size_t n) {  // lanes [0, n) on
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  LAYERKIT_AVX2 static V load(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  LAYERKIT_AVX2 static void store(float* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
  LAYERKIT_AVX2 static V blend(V off, V on, __m256i m) {
    return _mm256_blendv_ps(off, on, _mm256_castsi256_ps(m));
  }
  LAYERKIT_AVX2 static V add(V a, V b) { return _mm256_add_ps(a, b); }
  LAYERKIT_AVX2 static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  LAYERKIT_AVX2 static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  LAYERKIT_AVX2 static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  LAYERKIT_AVX2 static V max(V a, V b) { return _mm256_max_ps(a, b); }
  LAYERKIT_AVX2 static V div(V a, V b) { return _mm256_div_ps(a, b); }
  LAYERKIT_AVX2 static __m256i mask_ge(V a, V b) {
    return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_GE_OQ));
  }
  LAYERKIT_AVX2 static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  LAYERKIT_AVX2 static float hmax(V v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // e^x for x <= 0, the only arguments softmax, cross-entropy and sigmoid ask for (NaN stays
  // NaN). Range reduction x = n ln2 + r, |r| <= ln2 / 2, and a degree-7 polynomial for e^r
  // (about 1 ulp); below the smallest normal result it returns 0.
  LAYERKIT_AVX2 static V exp_nonpositive(V x) {
    const V under = _mm256_cmp_ps(x, set1(-87.33654f), _CMP_LT_OQ);
    // Adding 1.5 * 2^23 rounds x / ln2 to the integer n and leaves n + 127 (the biased exponent
    // of 2^n) in the low mantissa bits: no round or convert instruction.
    const V shift = set1(12582912.0f + 127.0f);
    const V t = fmadd(x, set1(1.44269504088896341f), shift);
    const V n = _mm256_sub_ps(t, shift);
    V r = _mm256_fnmadd_ps(n, set1(0.693359375f), x);  // ln2 split in two: the first part is exact
    r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    V p = set1(1.9875691500e-4f);
    p = fmadd(p, r, set1(1.3981999507e-3f));
    p = fmadd(p, r, set1(8.3334519073e-3f));
    p = fmadd(p, r, set1(4.1665795894e-2f));
    p = fmadd(p, r, set1(1.6666665459e-1f));
    p = fmadd(p, r, set1(5.0000001201e-1f));
    p = fmadd(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, set1(1.0f));
    const V y =
        _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23)));
    return _mm256_andnot_ps(under, y);  // under also covers -inf and the garbage t far below
  }
};

template <>
struct Avx<double> {
  using V = __m256d;
  static constexpr std::size_t W = 4;
  LAYERKIT_AVX2 static V set1(double v) { return _mm256_set1_pd(v); }
  LAYERKIT_AVX2 static V load(const double* p) { return _mm256_loadu_pd(p); }
  LAYERKIT_AVX2 static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  LAYERKIT_AVX2 static __m256i mask(std::size_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(n)),
                              _mm256_setr_epi64x(0, 1, 2, 3));
  }
  LAYERKIT_AVX2 static V load(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  LAYERKIT_AVX2 static void store(double* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
  LAYERKIT_AVX2 static V blend(V off, V on, __m256i m) {
    return _mm256_blendv_pd(off, on, _mm256_castsi256_pd(m));
  }
  LAYERKIT_AVX2 static V add(V a, V b) { return _mm256_add_pd(a, b); }
  LAYERKIT_AVX2 static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  LAYERKIT_AVX2 static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  LAYERKIT_AVX2 static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  LAYERKIT_AVX2 static V max(V a, V b) { return _mm256_max_pd(a, b); }
  LAYERKIT_AVX2 static V div(V a, V b) { return _mm256_div_pd(a, b); }
  LAYERKIT_AVX2 static __m256i mask_ge(V a, V b) {
    return _mm256_castpd_si256(_mm256_cmp_pd(a, b, _CMP_GE_OQ));
  }
  LAYERKIT_AVX2 static double hsum(V v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
  LAYERKIT_AVX2 static double hmax(V v) {
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_max_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
  static constexpr double fact(int k) { return k <= 1 ? 1.0 : k * fact(k - 1); }
  // exp_nonpositive as for float, with the Taylor series of e^r to degree 13 (truncation below
  // 1e-17) and 1.5 * 2^52 as the rounding shift.
  LAYERKIT_AVX2 static V exp_nonpositive(V x) {
    const V under = _mm256_cmp_pd(x, set1(-708.3964185322641), _CMP_LT_OQ);
    const V shift = set1(6755399441055744.0 + 1023.0);
    const V t = fmadd(x, set1(1.4426950408889634), shift);
    const V n = _mm256_sub_pd(t, shift);
    V r = _mm256_fnmadd_pd(n, set1(6.93147180369123816490e-01), x);  // exact: 32 trailing zeros
    r = _mm256_fnmadd_pd(n, set1(1.90821492927058770002e-10), r);
    // sum_{k <= 13} r^k / k! by Estrin's scheme (pairs, then powers r^2, r^4, r^8): a chain of
    // 5 dependent operations instead of Horner's 13, so consecutive vectors overlap.
    // (A lambda would not inherit the AVX2 target, hence the written-out pairs.)
    const V r2 = mul(r, r), r4 = mul(r2, r2), r8 = mul(r4, r4);
#define LAYERKIT_EXP_PAIR(k) fmadd(set1(1.0 / fact(k + 1)), r, set1(1.0 / fact(k)))
    const V q0 = fmadd(LAYERKIT_EXP_PAIR(2), r2, LAYERKIT_EXP_PAIR(0));
    const V q1 = fmadd(LAYERKIT_EXP_PAIR(6), r2, LAYERKIT_EXP_PAIR(4));
    const V q2 = fmadd(LAYERKIT_EXP_PAIR(10), r2, LAYERKIT_EXP_PAIR(8));
    const V q3 = LAYERKIT_EXP_PAIR(12);
#undef LAYERKIT_EXP_PAIR
    const V p = fmadd(fmadd(q3, r4, q2), r8, fmadd(q1, r4, q0));
    const V y =
        _mm256_mul_pd(p, _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52)));
    return _mm256_andnot_pd(under, y);
  }
};
#endif

}  // namespace detail
}  // namespace layerkit
