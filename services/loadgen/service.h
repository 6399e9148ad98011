#ifndef MSTPERF_SERVICES_LOADGEN_SERVICE_H_
#define MSTPERF_SERVICES_LOADGEN_SERVICE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "mstperf/v1/loadgen.grpc.pb.h"
#include "services/loadgen/prompts.h"
#include "services/loadgen/runner.h"
#include "services/loadgen/target.h"

namespace mstperf::loadgen {

struct ServiceOptions {
  // Timeouts used when the Target leaves one at 0.
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration first_token_timeout = absl::Seconds(300);
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration total_timeout = absl::Seconds(900);
  // Upper bound of the warm connection pool (file descriptors are the limit).
  uint32_t max_warm_connections = 2048;
  // Requests later than this at their send time are dropped, not sent (see RunOptions).
  absl::Duration max_send_lag = absl::Seconds(1);
  // Requests this late with every connection busy are dropped rather than sent on a new
  // connection (see RunOptions::connection_guard_lag).
  absl::Duration connection_guard_lag = absl::Milliseconds(50);
  // Event loop threads run SCHED_FIFO when permitted (see RunOptions::realtime).
  bool realtime_event_loop = false;
  // Reported in IterationStarted.
  std::string version = "0.1.0";
};

// Validates a spec and fills its defaults (replica_count 0 -> 1, gamma_shape 0 -> 1, an empty
// range max -> min, an empty label). INVALID_ARGUMENT naming the field.
absl::Status ValidateAndNormalize(v1::IterationSpec* spec);

// Resolves the API's Target into a TargetConfig: normalised URL, headers, the API key from the
// environment or a file (INVALID_ARGUMENT naming the field when it cannot be read), timeouts
// with the service's defaults.
absl::StatusOr<TargetConfig> ResolveTarget(const v1::Target& target, const ServiceOptions& opts);

// Summary statistics of a sample (linear-interpolated percentiles); sorts `values`.
v1::Distribution Summarize(std::vector<double>* values);

// The LoadGenerator service (sync API: each call runs its iteration's event loop on a thread of
// its own and streams from the gRPC thread, so a slow consumer never stalls the sends).
// Per call: validate -> resolve and probe the target (FAILED_PRECONDITION when unreachable) ->
// calibrate prompts with the target's /tokenize (cached per target and corpus) -> probe one
// request (min_tokens support, latency for the warm pool size) -> run -> stream Started,
// RecordBatch and Progress events, then the Summary. Cancelling the call stops the iteration.
class LoadGeneratorService final : public v1::LoadGenerator::Service {
 public:
  LoadGeneratorService(ServiceOptions options, prometheus::Registry& registry);
  ~LoadGeneratorService() override;

  grpc::Status RunIteration(grpc::ServerContext* context, const v1::IterationSpec* request,
                            grpc::ServerWriter<v1::IterationEvent>* writer) override;

 private:
  struct Metrics;
  struct PreparedTarget;
  absl::StatusOr<PreparedTarget> Prepare(const v1::IterationSpec& spec);
  absl::StatusOr<std::shared_ptr<const PromptBuilder>> Prompts(const v1::IterationSpec& spec,
                                                               const TargetConfig& target,
                                                               std::vector<std::string>* warnings);

  ServiceOptions options_;
  std::unique_ptr<Metrics> metrics_;
  absl::Mutex mu_;
  // Calibrated prompt builders by target URL, model, API and corpus.
  std::map<std::string, std::shared_ptr<const PromptBuilder>> prompt_cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mstperf::loadgen

#endif  // MSTPERF_SERVICES_LOADGEN_SERVICE_H_
