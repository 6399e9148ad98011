#ifndef MSTPERF_SERVICES_CONTROLLER_SERVICE_H_
#define MSTPERF_SERVICES_CONTROLLER_SERVICE_H_

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "mstperf/v1/controller.grpc.pb.h"
#include "services/controller/results.h"
#include "services/controller/runner.h"
#include "services/controller/search.h"
#include "services/controller/store.h"

namespace mstperf::controller {

struct ControllerOptions {
  // Results volume: requests/<label>/<timestamp>/ and experiments/<id>.json live under it.
  std::string results_dir = ".";
  // Loadgen replicas used when a spec names none ("host:port" entries or one dns:///name:port).
  std::vector<std::string> loadgen_addresses;
  // The evaluator's gRPC address.
  std::string evaluator_address;
  // Lead time between asking the replicas and the common schedule start: enough for a replica
  // to check the target and warm its connections (a first probe of a new shape takes longer;
  // the loadgen then moves its start and says so).
  absl::Duration start_delay = absl::Milliseconds(1500);
};

// The SearchController service. Experiments run one at a time, in the order they were started,
// on one worker thread (they would compete for the same loadgens and target otherwise); the
// others wait in PENDING. After every completed iteration the experiment is saved to the store,
// so Start() after a crash resumes each PENDING/RUNNING experiment after its last completed
// iteration. Shutdown() stops the running iteration without recording it (a restart redoes
// it); CancelExperiment() stops it and records what was collected.
class ControllerService final : public v1::SearchController::Service {
 public:
  ControllerService(ControllerOptions options, prometheus::Registry& registry);
  ~ControllerService() override;

  // Loads the store and starts the worker (resuming unfinished experiments).
  absl::Status Start();
  // Ends watches, interrupts the running iteration, joins the worker. Idempotent.
  void Shutdown();

  grpc::Status StartExperiment(grpc::ServerContext* ctx, const v1::StartExperimentRequest* request,
                               v1::Experiment* response) override;
  grpc::Status GetExperiment(grpc::ServerContext* ctx, const v1::GetExperimentRequest* request,
                             v1::Experiment* response) override;
  grpc::Status ListExperiments(grpc::ServerContext* ctx, const v1::ListExperimentsRequest* request,
                               v1::ListExperimentsResponse* response) override;
  grpc::Status WatchExperiment(grpc::ServerContext* ctx, const v1::WatchExperimentRequest* request,
                               grpc::ServerWriter<v1::ExperimentEvent>* writer) override;
  grpc::Status CancelExperiment(grpc::ServerContext* ctx, const v1::CancelExperimentRequest* request,
                                v1::Experiment* response) override;

 private:
  struct Entry {
    v1::Experiment experiment;
    // Recent events with their sequence numbers, for watchers.
    std::deque<std::pair<uint64_t, v1::ExperimentEvent>> events;
    uint64_t next_seq = 0;
    bool cancel_requested = false;
  };

  void WorkerLoop();
  void RunExperiment(const std::string& id);
  // Runs one pair's search to its end; false when the experiment must stop (cancel, shutdown,
  // error: the state says which).
  bool RunPair(const std::string& id, int pair_index);

  Entry* Find(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The experiment an RPC names: INVALID_ARGUMENT for a malformed id, NOT_FOUND for an unknown one.
  absl::StatusOr<Entry*> FindRequested(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish(Entry* entry, v1::ExperimentEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SaveLocked(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateStateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateSearchGauges(const v1::PairResult& pair);
  // Waits up to `d`; true when the experiment was cancelled or the service is stopping.
  bool InterruptibleSleep(const std::string& id, absl::Duration d);

  ControllerOptions options_;
  ResultsWriter writer_;
  ExperimentStore store_;
  IterationRunner runner_;

  absl::Mutex mu_;
  absl::CondVar changed_;  // signalled on every event, queue change and shutdown
  std::map<std::string, std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;

  // Metrics (docs/conventions.md).
  prometheus::Family<prometheus::Gauge>& experiments_;
  prometheus::Gauge& current_req_min_;
  prometheus::Gauge& stage_;
  prometheus::Gauge& lower_bound_;
  prometheus::Gauge& upper_bound_;
  prometheus::Family<prometheus::Counter>& iterations_;
  prometheus::Family<prometheus::Gauge>& mst_;
  prometheus::Counter& iteration_seconds_;
};

// An observation for the search from a finished iteration (live, and replayed on resume).
Observation ObservationFrom(const v1::IterationResult& iteration);

}  // namespace mstperf::controller

#endif  // MSTPERF_SERVICES_CONTROLLER_SERVICE_H_
