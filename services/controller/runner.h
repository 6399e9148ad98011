#ifndef MSTPERF_SERVICES_CONTROLLER_RUNNER_H_
#define MSTPERF_SERVICES_CONTROLLER_RUNNER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "mstperf/v1/controller.pb.h"
#include "mstperf/v1/evaluator.grpc.pb.h"
#include "mstperf/v1/loadgen.grpc.pb.h"

namespace mstperf::controller {

// Expands loadgen addresses: "host:port" entries are kept; one "dns:///name:port" becomes every
// address the name resolves to (a headless Kubernetes Service gives one per replica).
absl::StatusOr<std::vector<std::string>> ResolveLoadgenAddresses(
    const std::vector<std::string>& addresses);

// One iteration, as the search asks for it.
// Sums the replicas' live progress into one view of the iteration. Send lag cannot be added
// up: the merged view carries the worst replica's distribution (with the summed count).
v1::IterationProgress MergeProgress(const std::vector<v1::IterationProgress>& parts);

struct IterationRequest {
  std::string iteration_id;
  v1::IterationSpec spec;  // everything but replica_idx / replica_count / start_at
  std::vector<std::string> loadgen_addresses;  // resolved, at least one
  v1::EvaluationConfig evaluation;
  // false: records only, no verdict and no evaluator needed (mstperfctl iterate).
  bool evaluate = true;
  // Stream records to the evaluator's EvaluateStream and stop as soon as it gives a certain
  // verdict (default mode with early_stop); otherwise one Evaluate call at the end.
  bool stream_evaluation = false;
  // true: a replica that fails is reported in IterationOutcome::replica_errors and the others'
  // records are kept (mstperfctl iterate writes what it got); false: the iteration fails.
  bool keep_records_on_replica_error = false;
  // How often `on_progress` is called with the merged progress.
  absl::Duration progress_interval = absl::Seconds(1);
  // How far in the future the common schedule starts, so every replica is ready.
  absl::Duration start_delay = absl::Milliseconds(1500);
  // With stream_evaluation: how often the replicas report progress and the evaluator gets a
  // tick with the merged live counts (the early backlog test needs >= 10 samples past its
  // warm-up, so 4 a second lets it decide a few seconds in).
  absl::Duration evaluation_tick = absl::Milliseconds(250);
  // Poll interval of the target's /metrics (when spec.target.metrics_url is set).
  absl::Duration metrics_interval = absl::Seconds(1);
};

struct IterationOutcome {
  std::vector<v1::RequestRecord> records;  // all replicas, merged
  std::vector<v1::IterationSummary> summaries;
  v1::Verdict verdict;
  bool stopped_early = false;
  // Stop() was called: records are what was collected, the verdict is empty.
  bool interrupted = false;
  int64_t started_unix_us = 0;
  int64_t ended_unix_us = 0;
  v1::IterationProgress totals;
  // Successful completions per minute over the span of completions (the capacity estimate
  // when the server was overloaded); 0 when too few completions.
  double completion_rate_per_min = 0;
  std::vector<std::string> warnings;
  // With keep_records_on_replica_error: the replicas that failed (not cancelled by us).
  struct ReplicaError {
    std::string address;
    grpc::Status status;
  };
  std::vector<ReplicaError> replica_errors;
  // Samples of the target's Prometheus metrics (Target.metrics_url) taken during the
  // iteration, as services/common/prom_scrape.h's TargetSamplesToJson; null when not set.
  nlohmann::json target_metrics;
};

// Runs iterations: splits the rate over the loadgen replicas (same seed and start time, replica
// r sends the schedule's requests i with i % n == r, so the merged arrivals are the requested
// process), merges their records, and gets the evaluator's verdict (none with evaluate = false:
// mstperfctl iterate). Thread-safe: Stop() may be called from any thread while Run() runs.
class IterationRunner {
 public:
  IterationRunner(std::string evaluator_address);

  // Blocks for the iteration. `on_progress` is called every request.progress_interval with the
  // merged progress of all replicas. Loadgen or evaluator failures are returned as errors.
  absl::StatusOr<IterationOutcome> Run(const IterationRequest& request,
                                       const std::function<void(const v1::IterationProgress&)>& on_progress);

  // Cancels the running iteration (if any); Run() returns what it collected, interrupted.
  void Stop();
  // Clears a previous Stop() so the next Run() proceeds.
  void Reset();

 private:
  std::shared_ptr<grpc::Channel> Channel(const std::string& address);
  void CancelCalls();

  std::string evaluator_address_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
  std::vector<grpc::ClientContext*> active_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace mstperf::controller

#endif  // MSTPERF_SERVICES_CONTROLLER_RUNNER_H_
