#include "services/evaluator/stats.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include <boost/math/distributions/students_t.hpp>

namespace mstperf::evaluator {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Student's t survival function; df may be fractional. Handles |t| = inf and NaN as SciPy.
double StudentTSf(double t, double df) {
  if (std::isnan(t) || std::isnan(df)) return kNaN;
  if (std::isinf(t)) return t > 0 ? 0.0 : 1.0;
  boost::math::students_t dist(df);
  return boost::math::cdf(boost::math::complement(dist, t));
}

// SeedSequence constants and mixing (numpy/random/bit_generator.pyx).
constexpr uint32_t kInitA = 0x43b0d7e5;
constexpr uint32_t kMultA = 0x931e8875;
constexpr uint32_t kInitB = 0x8b51f9dd;
constexpr uint32_t kMultB = 0x58f38ded;
constexpr uint32_t kMixMultL = 0xca01f9dd;
constexpr uint32_t kMixMultR = 0x4973f715;
constexpr int kPoolSize = 4;

uint32_t HashMix(uint32_t value, uint32_t& hash_const) {
  value ^= hash_const;
  hash_const *= kMultA;
  value *= hash_const;
  value ^= value >> 16;
  return value;
}

uint32_t Mix(uint32_t x, uint32_t y) {
  uint32_t result = kMixMultL * x - kMixMultR * y;
  result ^= result >> 16;
  return result;
}

// SeedSequence(seed).generate_state(4, uint64) for a seed that fits in 32 bits.
std::array<uint64_t, 4> SeedSequenceState(uint32_t seed) {
  uint32_t pool[kPoolSize];
  uint32_t hash_const = kInitA;
  for (int i = 0; i < kPoolSize; ++i) pool[i] = HashMix(i == 0 ? seed : 0u, hash_const);
  for (int src = 0; src < kPoolSize; ++src) {
    for (int dst = 0; dst < kPoolSize; ++dst) {
      if (src != dst) pool[dst] = Mix(pool[dst], HashMix(pool[src], hash_const));
    }
  }
  uint32_t words[8];
  uint32_t hash_b = kInitB;
  for (int i = 0; i < 8; ++i) {
    uint32_t v = pool[i % kPoolSize];
    v ^= hash_b;
    hash_b *= kMultB;
    v *= hash_b;
    v ^= v >> 16;
    words[i] = v;
  }
  std::array<uint64_t, 4> out;
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<uint64_t>(words[2 * i]) | (static_cast<uint64_t>(words[2 * i + 1]) << 32);
  }
  return out;
}

constexpr unsigned __int128 kPcgMultiplier =
    (static_cast<unsigned __int128>(0x2360ED051FC65DA4ULL) << 64) | 0x4385DF649FCCF645ULL;

}  // namespace

double Mean(std::span<const double> x) {
  if (x.empty()) return kNaN;
  double sum = 0;
  for (double v : x) sum += v;
  return sum / static_cast<double>(x.size());
}

double SampleVariance(std::span<const double> x) {
  if (x.size() < 2) return kNaN;
  const double mean = Mean(x);
  double ss = 0;
  for (double v : x) ss += (v - mean) * (v - mean);
  return ss / static_cast<double>(x.size() - 1);
}

double PercentileSorted(std::span<const double> sorted, double q) {
  if (sorted.empty()) return kNaN;
  const double pos = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  // NumPy's _lerp: a + (b - a) * t, computed from the upper end when t >= 0.5.
  const double a = sorted[lo], b = sorted[hi];
  const double diff = b - a;
  return frac >= 0.5 ? b - diff * (1.0 - frac) : a + diff * frac;
}

WelchResult WelchTTest(std::span<const double> x, std::span<const double> y) {
  WelchResult r;
  const double nx = static_cast<double>(x.size()), ny = static_cast<double>(y.size());
  const double vnx = SampleVariance(x) / nx;
  const double vny = SampleVariance(y) / ny;
  double df = (vnx + vny) * (vnx + vny) / (vnx * vnx / (nx - 1) + vny * vny / (ny - 1));
  // SciPy: an undefined df means both variances are zero; any df then gives the same p.
  if (std::isnan(df) && !std::isnan(vnx) && !std::isnan(vny)) df = 1.0;
  r.df = df;
  r.t = (Mean(x) - Mean(y)) / std::sqrt(vnx + vny);
  r.p = 2.0 * StudentTSf(std::fabs(r.t), df);
  if (std::isnan(r.t) || std::isnan(df)) r.p = kNaN;
  return r;
}

double CohensD(std::span<const double> x, std::span<const double> y) {
  const double nx = static_cast<double>(x.size()), ny = static_cast<double>(y.size());
  const double pooled =
      ((nx - 1) * SampleVariance(x) + (ny - 1) * SampleVariance(y)) / (nx + ny - 2);
  return (Mean(x) - Mean(y)) / std::sqrt(pooled);
}

NumpyPcg64::NumpyPcg64(uint32_t seed) {
  const std::array<uint64_t, 4> v = SeedSequenceState(seed);
  const unsigned __int128 init = (static_cast<unsigned __int128>(v[0]) << 64) | v[1];
  const unsigned __int128 seq = (static_cast<unsigned __int128>(v[2]) << 64) | v[3];
  inc_ = (seq << 1) | 1;
  state_ = 0;
  state_ = state_ * kPcgMultiplier + inc_;
  state_ += init;
  state_ = state_ * kPcgMultiplier + inc_;
}

uint64_t NumpyPcg64::Next64() {
  state_ = state_ * kPcgMultiplier + inc_;
  const uint64_t x = static_cast<uint64_t>(state_ >> 64) ^ static_cast<uint64_t>(state_);
  const unsigned rot = static_cast<unsigned>(state_ >> 122);
  return (x >> rot) | (x << ((64 - rot) & 63));
}

uint32_t NumpyPcg64::Next32() {
  if (has_uint32_) {
    has_uint32_ = false;
    return uinteger_;
  }
  const uint64_t next = Next64();
  has_uint32_ = true;
  uinteger_ = static_cast<uint32_t>(next >> 32);
  return static_cast<uint32_t>(next & 0xffffffffu);
}

uint32_t NumpyPcg64::BoundedInclusive(uint32_t max_inclusive) {
  if (max_inclusive == 0) return 0;
  if (max_inclusive == 0xffffffffu) return Next32();
  const uint32_t range = max_inclusive + 1;
  uint64_t m = static_cast<uint64_t>(Next32()) * range;
  uint32_t leftover = static_cast<uint32_t>(m);
  if (leftover < range) {
    const uint32_t threshold = (0xffffffffu - max_inclusive) % range;
    while (leftover < threshold) {
      m = static_cast<uint64_t>(Next32()) * range;
      leftover = static_cast<uint32_t>(m);
    }
  }
  return static_cast<uint32_t>(m >> 32);
}

BootstrapResult BootstrapMeanDiff(std::span<const double> x, std::span<const double> y,
                                  int n_boot, uint32_t seed) {
  BootstrapResult r;
  if (x.empty() || y.empty() || n_boot <= 0) {
    r.mean_diff = r.ci_low = r.ci_high = kNaN;
    return r;
  }
  NumpyPcg64 rng(seed);
  std::vector<double> diffs(static_cast<size_t>(n_boot));
  const uint32_t max_x = static_cast<uint32_t>(x.size() - 1);
  const uint32_t max_y = static_cast<uint32_t>(y.size() - 1);
  for (int b = 0; b < n_boot; ++b) {
    double sx = 0, sy = 0;
    for (size_t i = 0; i < x.size(); ++i) sx += x[rng.BoundedInclusive(max_x)];
    for (size_t i = 0; i < y.size(); ++i) sy += y[rng.BoundedInclusive(max_y)];
    diffs[static_cast<size_t>(b)] =
        sx / static_cast<double>(x.size()) - sy / static_cast<double>(y.size());
  }
  r.mean_diff = Mean(diffs);
  std::sort(diffs.begin(), diffs.end());
  r.ci_low = PercentileSorted(diffs, 2.5);
  r.ci_high = PercentileSorted(diffs, 97.5);
  return r;
}

double StudentTCritical(double df, double confidence) {
  if (!(df > 0) || std::isinf(df)) df = 1e9;  // normal limit
  boost::math::students_t dist(df);
  return boost::math::quantile(dist, 0.5 + confidence / 2.0);
}

MeanDiffCi WelchMeanDiffCi(std::span<const double> x, std::span<const double> y,
                           double confidence) {
  MeanDiffCi r;
  r.diff = Mean(y) - Mean(x);
  const double nx = static_cast<double>(x.size()), ny = static_cast<double>(y.size());
  double vnx = x.size() >= 2 ? SampleVariance(x) / nx : 0.0;
  double vny = y.size() >= 2 ? SampleVariance(y) / ny : 0.0;
  const double se = std::sqrt(vnx + vny);
  if (!(se > 0)) {
    r.ci_low = r.ci_high = r.diff;
    r.df = 0;
    return r;
  }
  double denom = 0;
  if (x.size() >= 2) denom += vnx * vnx / (nx - 1);
  if (y.size() >= 2) denom += vny * vny / (ny - 1);
  r.df = (vnx + vny) * (vnx + vny) / denom;
  const double tcrit = StudentTCritical(r.df, confidence);
  r.ci_low = r.diff - tcrit * se;
  r.ci_high = r.diff + tcrit * se;
  return r;
}

SlopeResult OlsSlope(std::span<const double> x, std::span<const double> y, double confidence) {
  SlopeResult r;
  const size_t n = std::min(x.size(), y.size());
  if (n < 3) return r;
  const double mx = Mean(x.first(n)), my = Mean(y.first(n));
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  if (!(sxx > 0)) return r;
  r.ok = true;
  r.slope = sxy / sxx;
  r.intercept = my - r.slope * mx;
  double sse = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = y[i] - (r.intercept + r.slope * x[i]);
    sse += e * e;
  }
  const double df = static_cast<double>(n - 2);
  const double se = std::sqrt(sse / df / sxx);
  const double tcrit = StudentTCritical(df, confidence);
  r.se = se;
  r.t_critical = tcrit;
  r.ci_low = r.slope - tcrit * se;
  r.ci_high = r.slope + tcrit * se;
  return r;
}

Summary Summarize(std::vector<double> values) {
  Summary s;
  s.count = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.mean = Mean(values);
  s.min = values.front();
  s.max = values.back();
  s.p50 = PercentileSorted(values, 50);
  s.p90 = PercentileSorted(values, 90);
  s.p99 = PercentileSorted(values, 99);
  return s;
}

}  // namespace mstperf::evaluator
