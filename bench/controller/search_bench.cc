// The search's cost, `most` vs default mode, on a simulated server (no I/O, simulated time).
//
// The server has a capacity C (requests per minute). An iteration at rate r:
//  - is sustainable iff r <= C, except within +-`noise` of C where the verdict is a coin flip
//    (what a real evaluator does near the edge);
//  - in `most` mode always runs its whole DURATION (the original cannot stop early) and never
//    carries a capacity estimate;
//  - in default mode, an overload of at least `early_load` x C is judged certain after
//    `early_fraction` of the duration (the evaluator's early FALSE) and reports its completion
//    rate, C, as the capacity estimate; other iterations run the whole duration.
// For each capacity both modes search from the same start with the same multiplier and
// threshold; we report iterations, wall time in DURATIONs (iterations + cooldowns) and the
// answer's distance to C.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "services/controller/search.h"

ABSL_FLAG(int, trials, 2000, "Capacities drawn (log-uniform between --min_capacity and --max_capacity).");
ABSL_FLAG(double, min_capacity, 30, "");
ABSL_FLAG(double, max_capacity, 6000, "");
ABSL_FLAG(double, start, 60, "REQ_MIN_START.");
ABSL_FLAG(double, multiplier, 2, "REQ_MIN_INCREASE_MULTIPLIER.");
ABSL_FLAG(double, threshold, 0.05, "STOP_THRESHOLD (relative).");
ABSL_FLAG(double, noise, 0.03, "Half-width of the coin-flip band around C, as a fraction of C.");
ABSL_FLAG(double, early_load, 1.2, "Default mode: overloads >= this x C are stopped early.");
ABSL_FLAG(double, early_fraction, 0.25, "Default mode: ...after this fraction of DURATION.");
ABSL_FLAG(double, cooldown, 0, "COOLDOWN, in DURATIONs.");

namespace mstperf::controller {
namespace {

struct Result {
  double iterations = 0, wall = 0, error = 0;
};

Result Run(SearchMode mode, double capacity, std::mt19937_64& rng) {
  SearchConfig config;
  config.mode = mode;
  config.start = absl::GetFlag(FLAGS_start);
  config.multiplier = absl::GetFlag(FLAGS_multiplier);
  config.stop_threshold = absl::GetFlag(FLAGS_threshold);
  config.relative = true;
  Search search(config);
  std::bernoulli_distribution coin(0.5);
  const double noise = absl::GetFlag(FLAGS_noise);
  Result r;
  while (!search.done()) {
    const double rate = search.next_req_min();
    Observation o;
    const bool edge = std::fabs(rate / capacity - 1) <= noise;
    const bool ok = edge ? coin(rng) : rate <= capacity;
    o.outcome = ok ? Outcome::kSustainable : Outcome::kUnsustainable;
    double length = 1;
    if (mode == SearchMode::kDefault && !ok) {
      o.achieved_req_min = capacity;
      if (rate >= absl::GetFlag(FLAGS_early_load) * capacity) {
        o.certain = true;
        length = absl::GetFlag(FLAGS_early_fraction);
      }
    }
    if (r.iterations > 0) r.wall += absl::GetFlag(FLAGS_cooldown);
    r.wall += length;
    r.iterations += 1;
    search.Record(o);
  }
  r.error = (search.mst() - capacity) / capacity;
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / v.size();
}

}  // namespace
}  // namespace mstperf::controller

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace mstperf::controller;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(std::log(absl::GetFlag(FLAGS_min_capacity)),
                                           std::log(absl::GetFlag(FLAGS_max_capacity)));
  std::vector<double> it[2], wall[2], err[2];
  int worse_answer = 0;
  const int trials = absl::GetFlag(FLAGS_trials);
  for (int t = 0; t < trials; ++t) {
    const double c = std::exp(u(rng));
    // Same coin flips for both modes where they visit the same rates: same seed per trial.
    const uint64_t seed = rng();
    double e[2];
    for (int m = 0; m < 2; ++m) {
      std::mt19937_64 trial_rng(seed);
      Result r = Run(m == 0 ? SearchMode::kMost : SearchMode::kDefault, c, trial_rng);
      it[m].push_back(r.iterations);
      wall[m].push_back(r.wall);
      err[m].push_back(std::fabs(r.error));
      e[m] = std::fabs(r.error);
    }
    if (e[1] > e[0] + 1e-9) ++worse_answer;
  }
  std::printf("search benchmark: %d capacities log-uniform in [%g, %g] req/min, start %g, x%g, "
              "relative threshold %g, coin-flip band +-%g%% of C, early FALSE at >= %gC after %g "
              "of DURATION\n",
              trials, absl::GetFlag(FLAGS_min_capacity), absl::GetFlag(FLAGS_max_capacity),
              absl::GetFlag(FLAGS_start), absl::GetFlag(FLAGS_multiplier),
              absl::GetFlag(FLAGS_threshold), 100 * absl::GetFlag(FLAGS_noise),
              absl::GetFlag(FLAGS_early_load), absl::GetFlag(FLAGS_early_fraction));
  std::printf("%-8s %16s %16s %22s %22s %18s\n", "mode", "iterations mean", "iterations p50",
              "wall (DURATIONs) mean", "wall (DURATIONs) p50", "|MST - C| / C mean");
  const char* names[2] = {"most", "default"};
  for (int m = 0; m < 2; ++m) {
    std::printf("%-8s %16.2f %16.0f %22.2f %22.2f %17.2f%%\n", names[m], Mean(it[m]),
                Median(it[m]), Mean(wall[m]), Median(wall[m]), 100 * Mean(err[m]));
  }
  std::printf("default / most: iterations x%.2f, wall time x%.2f; default's answer further from C "
              "than most's in %.1f%% of the capacities\n",
              Mean(it[1]) / Mean(it[0]), Mean(wall[1]) / Mean(wall[0]),
              100.0 * worse_answer / trials);
  return 0;
}
