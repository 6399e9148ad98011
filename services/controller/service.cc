#include "services/controller/service.h"

#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "services/common/log.h"
#include "services/common/status.h"
#include "services/controller/spec.h"

namespace mstperf::controller {
namespace {

constexpr size_t kMaxBufferedEvents = 512;

bool Terminal(v1::ExperimentState s) {
  return s == v1::EXPERIMENT_STATE_SUCCEEDED || s == v1::EXPERIMENT_STATE_FAILED ||
         s == v1::EXPERIMENT_STATE_CANCELLED;
}

int64_t NowUs() { return absl::ToUnixMicros(absl::Now()); }

v1::SearchStage ToProto(Stage s) {
  switch (s) {
    case Stage::kFindUnsustainable:
      return v1::SEARCH_STAGE_FIND_UNSUSTAINABLE;
    case Stage::kBisect:
      return v1::SEARCH_STAGE_BISECT;
    case Stage::kDone:
      return v1::SEARCH_STAGE_DONE;
  }
  return v1::SEARCH_STAGE_UNSPECIFIED;
}

std::string GenerateId() {
  static std::mt19937_64 rng(std::random_device{}());
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("exp-%s-%06x",
                         absl::FormatTime("%Y%m%dT%H%M%S", absl::Now(), absl::UTCTimeZone()),
                         rng() & 0xffffff);
}

std::vector<Observation> History(const v1::PairResult& pair) {
  std::vector<Observation> out;
  for (const auto& it : pair.iterations()) out.push_back(ObservationFrom(it));
  return out;
}

// Copies the search's view into the pair.
void ApplySearch(const Search& search, v1::PairResult* pair) {
  pair->set_stage(ToProto(search.stage()));
  if (!search.done()) pair->set_current_req_min(search.next_req_min());
  pair->set_largest_sustainable_req_min(search.largest_sustainable());
  pair->set_smallest_unsustainable_req_min(search.smallest_unsustainable());
  if (search.done()) {
    pair->set_finished(true);
    pair->set_mst_req_min(search.mst());
    pair->set_termination_reason(search.termination_reason());
  }
}

std::string TokenSide(const v1::TokenRange& r) {
  return r.min() == r.max() ? absl::StrCat(r.min()) : absl::StrCat(r.min(), "-", r.max());
}

}  // namespace

Observation ObservationFrom(const v1::IterationResult& iteration) {
  Observation o;
  switch (iteration.verdict().state()) {
    case v1::VERDICT_STATE_SUSTAINABLE:
      o.outcome = Outcome::kSustainable;
      break;
    case v1::VERDICT_STATE_UNSUSTAINABLE:
      o.outcome = Outcome::kUnsustainable;
      break;
    default:
      o.outcome = Outcome::kInconclusive;
      break;
  }
  o.certain = iteration.verdict().early() || iteration.stopped_early();
  o.achieved_req_min = iteration.totals().achieved_rate_per_min();
  return o;
}

ControllerService::ControllerService(ControllerOptions options, prometheus::Registry& registry)
    : options_(std::move(options)),
      writer_(options_.results_dir),
      store_(options_.results_dir),
      runner_(options_.evaluator_address),
      experiments_(prometheus::BuildGauge()
                       .Name("mstperf_controller_experiments")
                       .Help("Experiments known to the controller, by state.")
                       .Register(registry)),
      current_req_min_(prometheus::BuildGauge()
                           .Name("mstperf_controller_current_req_min_requests_per_minute")
                           .Help("REQ_MIN of the running (or last) iteration.")
                           .Register(registry)
                           .Add({})),
      stage_(prometheus::BuildGauge()
                 .Name("mstperf_controller_stage")
                 .Help("Search stage: 1 = find unsustainable, 2 = bisect, 3 = done, 0 = idle.")
                 .Register(registry)
                 .Add({})),
      lower_bound_(prometheus::BuildGauge()
                       .Name("mstperf_controller_lower_bound_requests_per_minute")
                       .Help("m: the largest sustainable REQ_MIN so far.")
                       .Register(registry)
                       .Add({})),
      upper_bound_(prometheus::BuildGauge()
                       .Name("mstperf_controller_upper_bound_requests_per_minute")
                       .Help("M: the smallest confirmed unsustainable REQ_MIN (0 = none yet).")
                       .Register(registry)
                       .Add({})),
      iterations_(prometheus::BuildCounter()
                      .Name("mstperf_controller_iterations_total")
                      .Help("Finished iterations, by verdict.")
                      .Register(registry)),
      mst_(prometheus::BuildGauge()
               .Name("mstperf_controller_mst_requests_per_minute")
               .Help("The MST found per token pair.")
               .Register(registry)),
      iteration_seconds_(prometheus::BuildCounter()
                             .Name("mstperf_controller_iteration_seconds_total")
                             .Help("Wall time spent in iterations.")
                             .Register(registry)
                             .Add({})) {
  for (const char* v : {"sustainable", "unsustainable", "client_limited", "error"}) {
    iterations_.Add({{"verdict", v}});
  }
}

ControllerService::~ControllerService() { Shutdown(); }

absl::Status ControllerService::Start() {
  MSTPERF_RETURN_IF_ERROR(store_.Init());
  std::vector<std::string> errors;
  std::vector<v1::Experiment> loaded = store_.LoadAll(&errors);
  for (const auto& e : errors) MSTPERF_LOG(Warning) << "skipping experiment file: " << e;
  {
    absl::MutexLock lock(&mu_);
    for (v1::Experiment& experiment : loaded) {
      auto entry = std::make_unique<Entry>();
      const std::string id = experiment.id();
      if (!Terminal(experiment.state())) {
        // Rebuild the current pair's view from its completed iterations.
        const int p = static_cast<int>(experiment.current_pair());
        if (p < experiment.pairs_size()) {
          v1::PairResult* pair = experiment.mutable_pairs(p);
          Search search = Search::Replay(SearchConfigFor(experiment.spec(), p), History(*pair));
          ApplySearch(search, pair);
          MSTPERF_LOG(Info) << "resuming experiment " << id << " at pair " << pair->tokens().label()
                            << " after " << pair->iterations_size() << " completed iterations"
                            << (search.done() ? "" : absl::StrCat(", next REQ_MIN ", search.next_req_min()));
        }
        queue_.push_back(id);
      }
      entry->experiment = std::move(experiment);
      entries_[id] = std::move(entry);
    }
    UpdateStateGauges();
  }
  worker_ = std::thread([this] { WorkerLoop(); });
  return absl::OkStatus();
}

void ControllerService::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
    runner_.Stop();
  }
  if (worker_.joinable()) worker_.join();
}

ControllerService::Entry* ControllerService::Find(const std::string& id) {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.get();
}

absl::StatusOr<ControllerService::Entry*> ControllerService::FindRequested(const std::string& id) {
  MSTPERF_RETURN_IF_ERROR(ValidateExperimentId("experiment_id", id));
  Entry* entry = Find(id);
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat("experiment_id: no experiment \"", id, "\""));
  }
  return entry;
}

void ControllerService::Publish(Entry* entry, v1::ExperimentEvent event) {
  event.set_time_unix_us(NowUs());
  *event.mutable_experiment() = entry->experiment;
  entry->events.emplace_back(entry->next_seq++, std::move(event));
  while (entry->events.size() > kMaxBufferedEvents) entry->events.pop_front();
  changed_.SignalAll();
}

void ControllerService::SaveLocked(Entry* entry) {
  entry->experiment.set_updated_unix_us(NowUs());
  absl::Status status = store_.Save(entry->experiment);
  if (!status.ok()) {
    MSTPERF_LOG(Error) << "cannot save experiment " << entry->experiment.id() << ": " << status;
  }
}

void ControllerService::UpdateStateGauges() {
  std::map<std::string, double> counts = {
      {"pending", 0}, {"running", 0}, {"succeeded", 0}, {"failed", 0}, {"cancelled", 0}};
  for (const auto& [id, entry] : entries_) {
    switch (entry->experiment.state()) {
      case v1::EXPERIMENT_STATE_PENDING: counts["pending"]++; break;
      case v1::EXPERIMENT_STATE_RUNNING: counts["running"]++; break;
      case v1::EXPERIMENT_STATE_SUCCEEDED: counts["succeeded"]++; break;
      case v1::EXPERIMENT_STATE_FAILED: counts["failed"]++; break;
      case v1::EXPERIMENT_STATE_CANCELLED: counts["cancelled"]++; break;
      default: break;
    }
  }
  for (const auto& [state, n] : counts) experiments_.Add({{"state", state}}).Set(n);
}

void ControllerService::UpdateSearchGauges(const v1::PairResult& pair) {
  current_req_min_.Set(pair.current_req_min());
  stage_.Set(static_cast<double>(pair.stage()));
  lower_bound_.Set(pair.largest_sustainable_req_min());
  upper_bound_.Set(pair.smallest_unsustainable_req_min());
  if (pair.finished()) {
    mst_.Add({{"input_tokens", TokenSide(pair.tokens().input())},
              {"output_tokens", TokenSide(pair.tokens().output())}})
        .Set(pair.mst_req_min());
  }
}

bool ControllerService::InterruptibleSleep(const std::string& id, absl::Duration d) {
  absl::MutexLock lock(&mu_);
  Entry* entry = Find(id);
  auto interrupted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || entry->cancel_requested;
  };
  mu_.AwaitWithTimeout(absl::Condition(&interrupted), d);
  return interrupted();
}

void ControllerService::WorkerLoop() {
  while (true) {
    std::string id;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      id = queue_.front();
      queue_.pop_front();
    }
    RunExperiment(id);
    absl::MutexLock lock(&mu_);
    stage_.Set(0);
  }
}

void ControllerService::RunExperiment(const std::string& id) {
  int pairs = 0;
  int first = 0;
  {
    absl::MutexLock lock(&mu_);
    Entry* entry = Find(id);
    if (entry == nullptr || Terminal(entry->experiment.state())) return;
    entry->experiment.set_state(v1::EXPERIMENT_STATE_RUNNING);
    pairs = entry->experiment.pairs_size();
    first = static_cast<int>(entry->experiment.current_pair());
    SaveLocked(entry);
    UpdateStateGauges();
    v1::ExperimentEvent event;
    event.set_kind(v1::ExperimentEvent::KIND_PROGRESS);
    event.set_message("experiment running");
    Publish(entry, std::move(event));
  }
  for (int p = first; p < pairs; ++p) {
    if (!RunPair(id, p)) return;
  }
  absl::MutexLock lock(&mu_);
  Entry* entry = Find(id);
  entry->experiment.set_state(v1::EXPERIMENT_STATE_SUCCEEDED);
  SaveLocked(entry);
  UpdateStateGauges();
  v1::ExperimentEvent event;
  event.set_kind(v1::ExperimentEvent::KIND_EXPERIMENT_FINISHED);
  event.set_message("experiment finished");
  Publish(entry, std::move(event));
  MSTPERF_LOG(Info) << "experiment " << id << " finished";
}

bool ControllerService::RunPair(const std::string& id, int p) {
  v1::ExperimentSpec spec;
  std::string label;
  std::optional<Search> search;
  {
    absl::MutexLock lock(&mu_);
    Entry* entry = Find(id);
    spec = entry->experiment.spec();
    entry->experiment.set_current_pair(p);
    const v1::PairResult& pair = entry->experiment.pairs(p);
    label = pair.tokens().label();
    search.emplace(Search::Replay(SearchConfigFor(spec, p), History(pair)));
  }
  const bool stream = spec.evaluator_mode() != v1::EVALUATOR_MODE_MOST && spec.early_stop();

  // Marks the experiment ended (FAILED or CANCELLED) and publishes it.
  auto end_experiment = [&](v1::ExperimentState state, const std::string& error) {
    absl::MutexLock lock(&mu_);
    Entry* entry = Find(id);
    entry->experiment.set_state(state);
    v1::PairResult* pair = entry->experiment.mutable_pairs(p);
    pair->set_termination_reason(state == v1::EXPERIMENT_STATE_CANCELLED ? "cancelled"
                                                                         : absl::StrCat("error: ", error));
    if (!error.empty()) entry->experiment.set_error(error);
    SaveLocked(entry);
    UpdateStateGauges();
    v1::ExperimentEvent event;
    event.set_kind(v1::ExperimentEvent::KIND_EXPERIMENT_FINISHED);
    event.set_message(state == v1::EXPERIMENT_STATE_CANCELLED ? "cancelled" : error);
    Publish(entry, std::move(event));
    MSTPERF_LOG(Info) << "experiment " << id << (error.empty() ? " cancelled" : " failed: ") << error;
  };

  bool first_iteration = true;
  while (!search->done()) {
    // COOLDOWN between iterations (not before the very first one of an experiment).
    const bool any_before = p > 0 || search->iterations() > 0 || !first_iteration;
    if (any_before && spec.cooldown_s() > 0) {
      InterruptibleSleep(id, absl::Seconds(spec.cooldown_s()));  // the checks below see why
    }
    first_iteration = false;
    const double req_min = search->next_req_min();
    const bool confirmation = search->next_is_confirmation();
    const Stage stage = search->stage();
    uint32_t index = 0;
    bool cancelled = false;
    {
      absl::MutexLock lock(&mu_);
      Entry* entry = Find(id);
      if (stopping_) return false;
      cancelled = entry->cancel_requested;
    }
    if (cancelled) {
      end_experiment(v1::EXPERIMENT_STATE_CANCELLED, "");
      return false;
    }
    {
      absl::MutexLock lock(&mu_);
      Entry* entry = Find(id);
      if (stopping_) return false;
      if (entry->cancel_requested) continue;  // seen on the next turn
      runner_.Reset();  // under mu_: a Cancel() after this point stops this iteration
      v1::PairResult* pair = entry->experiment.mutable_pairs(p);
      index = pair->iterations_size();
      pair->set_stage(ToProto(stage));
      pair->set_current_req_min(req_min);
      UpdateSearchGauges(*pair);
      v1::ExperimentEvent event;
      event.set_kind(v1::ExperimentEvent::KIND_ITERATION_STARTED);
      event.set_pair_index(p);
      event.mutable_iteration()->set_index(index);
      event.mutable_iteration()->set_req_min(req_min);
      event.mutable_iteration()->set_stage(ToProto(stage));
      event.mutable_iteration()->set_started_unix_us(NowUs());
      Publish(entry, std::move(event));
    }
    MSTPERF_LOG(Info) << "experiment " << id << " pair " << label << " iteration " << index
                      << ": REQ_MIN " << req_min << (confirmation ? " (confirmation retry)" : "");

    std::vector<std::string> configured(spec.loadgen_addresses().begin(), spec.loadgen_addresses().end());
    if (configured.empty()) configured = options_.loadgen_addresses;
    absl::StatusOr<std::vector<std::string>> addresses = ResolveLoadgenAddresses(configured);
    if (!addresses.ok()) {
      end_experiment(v1::EXPERIMENT_STATE_FAILED, std::string(addresses.status().message()));
      return false;
    }

    IterationRequest request;
    request.iteration_id = absl::StrCat(id, "-p", p, "-i", index);
    request.loadgen_addresses = *addresses;
    request.start_delay = options_.start_delay;
    v1::IterationSpec& is = request.spec;
    *is.mutable_target() = spec.target();
    *is.mutable_tokens() = spec.tokens(p);
    is.set_req_min(req_min);
    is.set_duration_s(spec.duration_s());
    is.set_arrival(spec.arrival());
    is.set_gamma_shape(spec.gamma_shape());
    // A different schedule per iteration, the same on every replica of one iteration.
    is.set_seed(spec.seed() + 1000003ull * static_cast<uint64_t>(p) + index);
    *is.mutable_prompt() = spec.prompt();
    v1::EvaluationConfig& ec = request.evaluation;
    ec.set_mode(spec.evaluator_mode());
    ec.set_req_min(req_min);
    ec.set_duration_s(spec.duration_s());
    ec.set_filter_buffer_s(spec.filter_buffer_s());
    ec.set_success_rate_pct(spec.success_rate_pct());
    *ec.mutable_slo() = spec.slo();
    ec.set_early_stop(stream);
    ec.set_max_send_lag_p99_us(spec.max_send_lag_p99_us());
    request.stream_evaluation = stream;

    absl::StatusOr<IterationOutcome> outcome =
        runner_.Run(request, [&](const v1::IterationProgress& progress) {
          absl::MutexLock lock(&mu_);
          Entry* entry = Find(id);
          v1::ExperimentEvent event;
          event.set_kind(v1::ExperimentEvent::KIND_PROGRESS);
          event.set_pair_index(p);
          *event.mutable_progress() = progress;
          Publish(entry, std::move(event));
        });
    bool cancel = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return false;  // shutdown: the iteration is redone after the restart
      cancel = Find(id)->cancel_requested;
    }
    if (!outcome.ok()) {
      if (cancel) {
        end_experiment(v1::EXPERIMENT_STATE_CANCELLED, "");
        return false;
      }
      iterations_.Add({{"verdict", "error"}}).Increment();
      end_experiment(v1::EXPERIMENT_STATE_FAILED, std::string(outcome.status().message()));
      return false;
    }
    iteration_seconds_.Increment((outcome->ended_unix_us - outcome->started_unix_us) / 1e6);

    v1::IterationResult result;
    result.set_index(index);
    result.set_req_min(req_min);
    result.set_stage(ToProto(stage));
    *result.mutable_verdict() = outcome->verdict;
    result.set_started_unix_us(outcome->started_unix_us);
    result.set_ended_unix_us(outcome->ended_unix_us);
    result.set_stopped_early(outcome->stopped_early);
    *result.mutable_totals() = outcome->totals;
    if (outcome->completion_rate_per_min > 0) {
      result.mutable_totals()->set_achieved_rate_per_min(outcome->completion_rate_per_min);
    }
    if (!outcome->interrupted) {
      result.set_confirmation(confirmation && !outcome->verdict.sustainable() &&
                              outcome->verdict.state() == v1::VERDICT_STATE_UNSUSTAINABLE);
      search->Record(ObservationFrom(result));
    }

    // The iteration's files, before the state that lists it (a crash in between re-runs it).
    IterationFiles files;
    files.experiment_id = id;
    files.iteration_index = index;
    files.spec = request.spec;
    files.replica_count = static_cast<uint32_t>(request.loadgen_addresses.size());
    files.records = std::move(outcome->records);
    files.verdict = outcome->verdict;
    files.replica_summaries = outcome->summaries;
    files.started_unix_us = outcome->started_unix_us;
    files.ended_unix_us = outcome->ended_unix_us;
    files.stopped_early = outcome->stopped_early;
    files.confirmation = result.confirmation();
    files.stage = stage == Stage::kBisect ? 2 : 1;
    files.largest_true = search->largest_sustainable();
    files.smallest_false = search->smallest_unsustainable();
    files.finished = search->done();
    files.termination_reason = outcome->interrupted ? "cancelled" : search->termination_reason();
    files.warnings = outcome->warnings;
    files.target_metrics = outcome->target_metrics;
    if (outcome->interrupted) files.warnings.push_back("iteration cancelled before its end");
    absl::StatusOr<std::string> dir =
        writer_.CreateIterationDir(label, absl::FromUnixMicros(outcome->started_unix_us));
    absl::Status written = dir.ok() ? writer_.WriteIteration(*dir, files) : dir.status();
    if (!written.ok()) {
      end_experiment(v1::EXPERIMENT_STATE_FAILED, absl::StrCat("writing results: ", written.message()));
      return false;
    }
    result.set_directory(*dir);

    const char* verdict_label = "client_limited";
    if (outcome->verdict.state() == v1::VERDICT_STATE_SUSTAINABLE) verdict_label = "sustainable";
    if (outcome->verdict.state() == v1::VERDICT_STATE_UNSUSTAINABLE) verdict_label = "unsustainable";
    if (!outcome->interrupted) iterations_.Add({{"verdict", verdict_label}}).Increment();

    {
      absl::MutexLock lock(&mu_);
      Entry* entry = Find(id);
      v1::PairResult* pair = entry->experiment.mutable_pairs(p);
      *pair->add_iterations() = result;
      if (!outcome->interrupted) ApplySearch(*search, pair);
      SaveLocked(entry);
      UpdateSearchGauges(*pair);
      v1::ExperimentEvent event;
      event.set_kind(v1::ExperimentEvent::KIND_ITERATION_FINISHED);
      event.set_pair_index(p);
      *event.mutable_iteration() = result;
      event.set_message(absl::StrCat("REQ_MIN ", req_min, ": ", verdict_label,
                                     result.stopped_early() ? " (stopped early)" : ""));
      Publish(entry, std::move(event));
    }
    MSTPERF_LOG(Info) << "experiment " << id << " pair " << label << " REQ_MIN " << req_min
                      << ": " << verdict_label << " (" << outcome->verdict.deciding_rule() << ")"
                      << " -> " << *dir;
    if (outcome->interrupted) {
      end_experiment(v1::EXPERIMENT_STATE_CANCELLED, "");
      return false;
    }
  }

  absl::MutexLock lock(&mu_);
  Entry* entry = Find(id);
  v1::PairResult* pair = entry->experiment.mutable_pairs(p);
  ApplySearch(*search, pair);
  if (p + 1 < entry->experiment.pairs_size()) entry->experiment.set_current_pair(p + 1);
  SaveLocked(entry);
  UpdateSearchGauges(*pair);
  v1::ExperimentEvent event;
  event.set_kind(v1::ExperimentEvent::KIND_PAIR_FINISHED);
  event.set_pair_index(p);
  event.set_message(absl::StrCat("pair ", label, ": MST ", pair->mst_req_min(), " requests/min (",
                                 pair->termination_reason(), ")"));
  Publish(entry, std::move(event));
  MSTPERF_LOG(Info) << "experiment " << id << " pair " << label << ": MST " << pair->mst_req_min()
                    << " (" << pair->termination_reason() << ")";
  return true;
}

grpc::Status ControllerService::StartExperiment(grpc::ServerContext*,
                                                const v1::StartExperimentRequest* request,
                                                v1::Experiment* response) {
  if (absl::Status s = ValidateStartRequest(*request); !s.ok()) return ToGrpcStatus(s);
  v1::ExperimentSpec spec = request->spec();
  ApplyDefaults(&spec);
  if (spec.loadgen_addresses().empty() && options_.loadgen_addresses.empty()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "spec.loadgen_addresses: empty, and the controller has no --loadgen");
  }
  if (options_.evaluator_address.empty()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the controller has no --evaluator address");
  }
  const std::string id = request->experiment_id().empty() ? GenerateId() : request->experiment_id();
  absl::MutexLock lock(&mu_);
  if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller shutting down");
  if (Find(id) != nullptr) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("experiment_id: \"", id, "\" already exists"));
  }
  auto entry = std::make_unique<Entry>();
  v1::Experiment& e = entry->experiment;
  e.set_id(id);
  e.set_state(v1::EXPERIMENT_STATE_PENDING);
  e.set_created_unix_us(NowUs());
  e.set_results_dir(options_.results_dir);
  for (int p = 0; p < spec.tokens_size(); ++p) {
    v1::PairResult* pair = e.add_pairs();
    *pair->mutable_tokens() = spec.tokens(p);
    pair->set_stage(v1::SEARCH_STAGE_FIND_UNSUSTAINABLE);
    pair->set_current_req_min(SearchConfigFor(spec, p).start);
  }
  *e.mutable_spec() = std::move(spec);
  Entry* raw = entry.get();
  entries_[id] = std::move(entry);
  SaveLocked(raw);
  queue_.push_back(id);
  UpdateStateGauges();
  changed_.SignalAll();
  *response = raw->experiment;
  MSTPERF_LOG(Info) << "experiment " << id << " queued: " << raw->experiment.pairs_size() << " pair(s)";
  return grpc::Status::OK;
}

grpc::Status ControllerService::GetExperiment(grpc::ServerContext*,
                                              const v1::GetExperimentRequest* request,
                                              v1::Experiment* response) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Entry*> found = FindRequested(request->experiment_id());
  if (!found.ok()) return ToGrpcStatus(found.status());
  Entry* entry = *found;
  *response = entry->experiment;
  return grpc::Status::OK;
}

grpc::Status ControllerService::ListExperiments(grpc::ServerContext*,
                                                const v1::ListExperimentsRequest*,
                                                v1::ListExperimentsResponse* response) {
  absl::MutexLock lock(&mu_);
  std::vector<const v1::Experiment*> all;
  for (const auto& [id, entry] : entries_) all.push_back(&entry->experiment);
  std::sort(all.begin(), all.end(), [](const auto* a, const auto* b) {
    return a->created_unix_us() != b->created_unix_us() ? a->created_unix_us() < b->created_unix_us()
                                                        : a->id() < b->id();
  });
  for (const auto* e : all) *response->add_experiments() = *e;
  return grpc::Status::OK;
}

grpc::Status ControllerService::WatchExperiment(grpc::ServerContext* ctx,
                                                const v1::WatchExperimentRequest* request,
                                                grpc::ServerWriter<v1::ExperimentEvent>* writer) {
  uint64_t next = 0;
  Entry* entry = nullptr;
  v1::ExperimentEvent snapshot;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Entry*> found = FindRequested(request->experiment_id());
    if (!found.ok()) return ToGrpcStatus(found.status());
    entry = *found;
    snapshot.set_kind(v1::ExperimentEvent::KIND_SNAPSHOT);
    snapshot.set_time_unix_us(NowUs());
    snapshot.set_pair_index(entry->experiment.current_pair());
    *snapshot.mutable_experiment() = entry->experiment;
    next = entry->next_seq;
  }
  if (!writer->Write(snapshot)) return grpc::Status::OK;
  if (Terminal(snapshot.experiment().state())) return grpc::Status::OK;

  while (true) {
    std::vector<v1::ExperimentEvent> batch;
    bool finished = false;
    bool stopping = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || entry->next_seq > next;
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(250));
      stopping = stopping_;
      if (!entry->events.empty() && entry->events.front().first > next) {
        // This watcher fell behind the buffer: a fresh snapshot replaces what it missed.
        v1::ExperimentEvent s;
        s.set_kind(v1::ExperimentEvent::KIND_SNAPSHOT);
        s.set_time_unix_us(NowUs());
        *s.mutable_experiment() = entry->experiment;
        batch.push_back(std::move(s));
        next = entry->next_seq;
      }
      for (const auto& [seq, event] : entry->events) {
        if (seq >= next) batch.push_back(event);
      }
      next = entry->next_seq;
      finished = Terminal(entry->experiment.state());
    }
    for (const auto& event : batch) {
      if (!writer->Write(event)) return grpc::Status::OK;
    }
    if (finished) return grpc::Status::OK;
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled");
    if (stopping) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller shutting down");
  }
}

grpc::Status ControllerService::CancelExperiment(grpc::ServerContext*,
                                                 const v1::CancelExperimentRequest* request,
                                                 v1::Experiment* response) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Entry*> found = FindRequested(request->experiment_id());
  if (!found.ok()) return ToGrpcStatus(found.status());
  Entry* entry = *found;
  v1::Experiment& e = entry->experiment;
  if (e.state() == v1::EXPERIMENT_STATE_PENDING &&
      std::find(queue_.begin(), queue_.end(), e.id()) != queue_.end()) {
    std::erase(queue_, e.id());
    e.set_state(v1::EXPERIMENT_STATE_CANCELLED);
    for (auto& pair : *e.mutable_pairs()) {
      if (!pair.finished()) pair.set_termination_reason("cancelled");
    }
    SaveLocked(entry);
    UpdateStateGauges();
    v1::ExperimentEvent event;
    event.set_kind(v1::ExperimentEvent::KIND_EXPERIMENT_FINISHED);
    event.set_message("cancelled");
    Publish(entry, std::move(event));
  } else if (!Terminal(e.state())) {
    entry->cancel_requested = true;
    runner_.Stop();
    changed_.SignalAll();
    // Wait (bounded) for the worker to record what was collected.
    auto ended = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return Terminal(e.state()) || stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&ended), absl::Seconds(30));
  }
  *response = e;
  return grpc::Status::OK;
}

}  // namespace mstperf::controller
