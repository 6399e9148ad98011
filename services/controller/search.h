#ifndef MSTPERF_SERVICES_CONTROLLER_SEARCH_H_
#define MSTPERF_SERVICES_CONTROLLER_SEARCH_H_

#include <cstdint>
#include <string>
#include <vector>

namespace mstperf::controller {

// The two-stage MST search for one token pair, as a pure state machine: no I/O, no clock.
// The caller asks next_req_min(), runs an iteration at that rate, and feeds its outcome to
// Record(); the search says when it is done and what the MST is. Because it is a pure
// function of (config, outcomes), a restarted controller rebuilds it by replaying the
// recorded outcomes (see Replay()).
//
// kMost reproduces the original wrapper (docs/controller.md has every rule):
//  - stage 1: start at `start`; after a TRUE, next = round_half_even(REQ * multiplier)
//    (Python's round()); a FALSE is confirmed only by a second consecutive FALSE at the same
//    REQ_MIN; if no TRUE has been seen yet, a confirmed FALSE divides down:
//    next = round_half_even(REQ / multiplier), until a TRUE;
//  - stage 2: m = largest TRUE, M = smallest confirmed FALSE; next = floor((m + M) / 2);
//    TRUE raises m, confirmed FALSE lowers M; stop when M - m <= T (absolute) or
//    M - m <= M * T (relative), or when no integer lies strictly between m and M;
//  - the MST is m; at most max_iterations iterations.
// kDefault is the same search with two improvements that need information the original did
// not have (both are no-ops when that information is absent):
//  - a FALSE that is certain (the evaluator stopped the iteration early because the backlog
//    was obvious) needs no confirmation retry;
//  - in stage 2, an overloaded iteration's completion rate estimates the capacity; the next
//    probe is placed half a threshold width below that estimate and, if it is sustainable, the
//    one after at the highest rate that closes the bracket if it fails (about half a width
//    above the estimate), so an accurate estimate closes the bracket in two iterations instead
//    of log2((M - m) / T). Guided probes
//    are limited (kMaxGuidedProbes) and always strictly inside (m, M), so the search still
//    converges like a bisection when estimates are poor.
enum class SearchMode { kMost, kDefault };

enum class Stage { kFindUnsustainable = 1, kBisect = 2, kDone = 3 };

struct SearchConfig {
  SearchMode mode = SearchMode::kMost;
  double start = 0;             // REQ_MIN_START (> 0)
  double multiplier = 2.0;      // REQ_MIN_INCREASE_MULTIPLIER (> 1)
  double stop_threshold = 0;    // STOP_THRESHOLD (> 0)
  bool relative = false;        // THRESHOLD_TYPE=relative
  uint32_t max_iterations = 100;
  // Consecutive inconclusive iterations (client-limited, no verdict) at one REQ_MIN before
  // the pair gives up with "inconclusive".
  uint32_t max_inconclusive_retries = 2;
};

enum class Outcome {
  kSustainable,    // EVALUATION = TRUE
  kUnsustainable,  // EVALUATION = FALSE
  kInconclusive,   // no verdict on the server (client-limited): the same REQ_MIN is rerun
};

struct Observation {
  Outcome outcome = Outcome::kInconclusive;
  // The verdict was already certain before the iteration ended (default mode only uses it).
  bool certain = false;
  // Completions per minute the server achieved during the iteration; 0 = unknown. Used by the
  // default mode as a capacity estimate when the iteration was unsustainable.
  double achieved_req_min = 0;
};

// Why a pair's search ended.
inline constexpr char kConverged[] = "converged";
inline constexpr char kMaxIterations[] = "max_iterations";
inline constexpr char kNoSustainableRate[] = "no_sustainable_rate";
inline constexpr char kInconclusive[] = "inconclusive";

class Search {
 public:
  static constexpr int kMaxGuidedProbes = 4;

  explicit Search(const SearchConfig& config);

  // Rebuilds a search from its recorded outcomes (resume after a restart).
  static Search Replay(const SearchConfig& config, const std::vector<Observation>& history);

  bool done() const { return stage_ == Stage::kDone; }
  Stage stage() const { return stage_; }
  // The REQ_MIN of the next iteration (meaningless once done()).
  double next_req_min() const { return next_; }
  // True when the next iteration is the retry that may confirm a FALSE.
  bool next_is_confirmation() const { return pending_false_; }
  // m and M; 0 when not known yet.
  double largest_sustainable() const { return m_; }
  double smallest_unsustainable() const { return M_; }
  // The MST (= m) once done(); 0 if no rate was sustainable.
  double mst() const { return done() ? m_ : 0; }
  const std::string& termination_reason() const { return reason_; }
  uint32_t iterations() const { return iterations_; }

  // Feeds the outcome of the iteration run at next_req_min(). Ignored once done().
  void Record(const Observation& observation);

 private:
  void OnSustainable(double req, const Observation& o);
  void OnConfirmedFalse(double req, const Observation& o);
  void EnterBisect();
  // Picks the next stage-2 probe, or finishes when the bracket is closed.
  void NextBisectProbe();
  bool BracketClosed() const;
  void Finish(const char* reason);

  SearchConfig config_;
  Stage stage_ = Stage::kFindUnsustainable;
  double next_ = 0;
  double m_ = 0;
  double M_ = 0;
  bool pending_false_ = false;
  uint32_t inconclusive_streak_ = 0;
  uint32_t iterations_ = 0;
  std::string reason_;
  // Default mode: the latest capacity estimate and the guided probes spent.
  double estimate_ = 0;
  int guided_probes_ = 0;
  // Default mode: what the iteration just recorded was (a guided probe or a plain midpoint).
  enum class Probe { kMidpoint, kBelowEstimate, kAboveEstimate };
  Probe last_probe_ = Probe::kMidpoint;
  bool last_sustainable_ = false;
};

// Python's round(): to the nearest integer, ties to even.
double RoundHalfEven(double x);

}  // namespace mstperf::controller

#endif  // MSTPERF_SERVICES_CONTROLLER_SEARCH_H_
