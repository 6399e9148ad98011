#include "services/evaluator/service.h"

#include <chrono>
#include <cmath>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/status.h"
#include "services/evaluator/default_rules.h"
#include "services/evaluator/most_rules.h"
#include "services/evaluator/output_csv.h"

namespace mstperf::evaluator {
namespace {

using mstperf::v1::EvaluationConfig;
using mstperf::v1::EvaluatorMode;
using mstperf::v1::Verdict;

absl::Status Invalid(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", message));
}

bool IsMost(const EvaluationConfig& c) { return c.mode() == mstperf::v1::EVALUATOR_MODE_MOST; }

MostConfig ToMostConfig(const EvaluationConfig& c) {
  MostConfig m;
  m.req_min = c.req_min();
  m.filter_buffer_s = c.filter_buffer_s() < 0 ? 300.0 : c.filter_buffer_s();
  m.success_rate_pct = c.success_rate_pct() > 0 ? c.success_rate_pct() : 95.0;
  return m;
}

DefaultConfig ToDefaultConfig(const EvaluationConfig& c) {
  DefaultConfig d;
  d.req_min = c.req_min();
  d.duration_s = c.duration_s();
  d.filter_buffer_s = c.filter_buffer_s();
  d.success_rate_pct = c.success_rate_pct() > 0 ? c.success_rate_pct() : 95.0;
  d.slo = c.slo();
  d.early_stop = c.early_stop();
  d.max_send_lag_p99_us = c.max_send_lag_p99_us() > 0 ? c.max_send_lag_p99_us() : 5000.0;
  return d;
}

const char* ResultLabel(mstperf::v1::VerdictState s) {
  switch (s) {
    case mstperf::v1::VERDICT_STATE_SUSTAINABLE: return "sustainable";
    case mstperf::v1::VERDICT_STATE_UNSUSTAINABLE: return "unsustainable";
    case mstperf::v1::VERDICT_STATE_CLIENT_LIMITED: return "client_limited";
    default: return "undecided";
  }
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One EvaluateStream call. Reads run back to back; verdicts are queued and written one at a
// time (gRPC allows one outstanding write). The final verdict is computed when the client
// half-closes, then the call finishes.
class StreamReactor
    : public grpc::ServerBidiReactor<mstperf::v1::EvaluateStreamRequest, Verdict> {
 public:
  explicit StreamReactor(EvaluatorService* service) : service_(service) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-close (or the client went away): the final verdict
      FinalVerdict();
      return;
    }
    absl::Status status = Handle();
    if (!status.ok()) {
      FinishWith(ToGrpcStatus(status));
      return;
    }
    request_.Clear();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      finish_pending_ = true;
      pending_.clear();
      pending_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
    }
    PumpLocked();
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Handle() {
    using Msg = mstperf::v1::EvaluateStreamRequest;
    switch (request_.msg_case()) {
      case Msg::kConfig: {
        if (config_.has_value()) return Invalid("config", "sent twice");
        MSTPERF_RETURN_IF_ERROR(ValidateConfig(request_.config()));
        config_ = request_.config();
        if (!IsMost(*config_)) judge_.emplace(ToDefaultConfig(*config_));
        return absl::OkStatus();
      }
      case Msg::kRecords: {
        if (!config_.has_value()) return Invalid("config", "must be the first message");
        const auto& records = request_.records().records();
        for (int i = 0; i < records.size(); ++i) {
          MSTPERF_RETURN_IF_ERROR(ValidateRecord(
              records[i], absl::StrCat("records.records[", i, "] (request_idx ",
                                       records[i].request_idx(), ")")));
          if (judge_) {
            judge_->Add(records[i]);
          } else {
            rows_.push_back(RowFromRecord(records[i]));
          }
        }
        // Early verdicts are checked on ticks only: one check per tick keeps the cost bounded
        // however the records are batched.
        return absl::OkStatus();
      }
      case Msg::kTick: {
        if (!config_.has_value()) return Invalid("config", "must be the first message");
        const double elapsed = request_.tick().elapsed_s();
        if (!std::isfinite(elapsed) || elapsed < 0) {
          return Invalid("tick.elapsed_s", absl::StrCat("must be >= 0, got ", elapsed));
        }
        last_elapsed_s_ = elapsed;
        if (judge_ && request_.tick().has_progress()) {
          judge_->ObserveProgress(elapsed, request_.tick().progress());
        }
        MaybeEarly(elapsed);
        return absl::OkStatus();
      }
      default:
        return Invalid("msg", "is empty: set config, records or tick");
    }
  }

  void MaybeEarly(double elapsed_s) {
    if (!judge_ || early_sent_) return;
    const auto start = std::chrono::steady_clock::now();
    std::optional<Verdict> early = judge_->Early(elapsed_s);
    if (!early) return;
    early_sent_ = true;
    service_->Record(*early, SecondsSince(start));
    Queue(std::move(*early), std::nullopt);
  }

  void FinalVerdict() {
    if (!config_.has_value()) {
      FinishWith(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "config must be the first message"));
      return;
    }
    const auto start = std::chrono::steady_clock::now();
    Verdict v;
    if (judge_) {
      v = judge_->Final();
    } else {
      FinishRows(rows_);
      v = EvaluateMost(std::move(rows_), ToMostConfig(*config_));
    }
    v.set_early(false);
    service_->Record(v, SecondsSince(start));
    Queue(std::move(v), grpc::Status::OK);
  }

  void FinishWith(grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    finish_pending_ = true;
    pending_status_ = std::move(status);
    PumpLocked();
  }

  void Queue(Verdict v, std::optional<grpc::Status> then_finish) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(std::move(v));
    if (then_finish) {
      finish_pending_ = true;
      pending_status_ = *then_finish;
    }
    PumpLocked();
  }

  void PumpLocked() {
    if (writing_ || finished_) return;
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      StartWrite(&current_);
      return;
    }
    if (finish_pending_) {
      finished_ = true;
      Finish(pending_status_);
    }
  }

  EvaluatorService* service_;
  mstperf::v1::EvaluateStreamRequest request_;
  std::optional<EvaluationConfig> config_;
  std::optional<DefaultJudge> judge_;
  std::vector<OutputRow> rows_;
  double last_elapsed_s_ = 0;
  bool early_sent_ = false;

  std::mutex mu_;
  std::deque<Verdict> pending_;
  Verdict current_;
  bool writing_ = false;
  bool finish_pending_ = false;
  bool finished_ = false;
  grpc::Status pending_status_;
};

}  // namespace

absl::Status ValidateConfig(const EvaluationConfig& c) {
  if (!mstperf::v1::EvaluatorMode_IsValid(c.mode())) {
    return Invalid("config.mode", absl::StrCat("is not a known mode: ", c.mode()));
  }
  if (!std::isfinite(c.req_min()) || c.req_min() <= 0) {
    return Invalid("config.req_min", absl::StrCat("must be > 0, got ", c.req_min()));
  }
  if (!std::isfinite(c.duration_s()) || c.duration_s() < 0) {
    return Invalid("config.duration_s", absl::StrCat("must be >= 0, got ", c.duration_s()));
  }
  if (!std::isfinite(c.filter_buffer_s())) {
    return Invalid("config.filter_buffer_s", "must be a finite number");
  }
  if (!std::isfinite(c.success_rate_pct()) || c.success_rate_pct() < 0 ||
      c.success_rate_pct() > 100) {
    return Invalid("config.success_rate_pct",
                   absl::StrCat("must be in [0, 100], got ", c.success_rate_pct()));
  }
  if (!std::isfinite(c.max_send_lag_p99_us()) || c.max_send_lag_p99_us() < 0) {
    return Invalid("config.max_send_lag_p99_us",
                   absl::StrCat("must be >= 0, got ", c.max_send_lag_p99_us()));
  }
  const auto& s = c.slo();
  if (!std::isfinite(s.percentile()) || s.percentile() < 0 || s.percentile() > 100) {
    return Invalid("config.slo.percentile",
                   absl::StrCat("must be in (0, 100], got ", s.percentile()));
  }
  for (auto [name, value] : {std::pair{"config.slo.ttft_ms", s.ttft_ms()},
                             std::pair{"config.slo.itl_ms", s.itl_ms()},
                             std::pair{"config.slo.e2e_ms", s.e2e_ms()},
                             std::pair{"config.slo.tpot_ms", s.tpot_ms()},
                             std::pair{"config.slo.max_error_rate_pct", s.max_error_rate_pct()}}) {
    if (!std::isfinite(value) || value < 0) {
      return Invalid(name, absl::StrCat("must be >= 0, got ", value));
    }
  }
  if (s.max_error_rate_pct() > 100) {
    return Invalid("config.slo.max_error_rate_pct", "must be <= 100");
  }
  return absl::OkStatus();
}

absl::Status ValidateRecord(const mstperf::v1::RequestRecord& r, const std::string& field) {
  if (r.sent_unix_us() < 0 || r.scheduled_unix_us() < 0 || r.end_unix_us() < 0 ||
      r.first_token_unix_us() < 0) {
    return Invalid(field, "has a negative timestamp");
  }
  if (r.end_unix_us() != 0 && r.sent_unix_us() != 0 && r.end_unix_us() < r.sent_unix_us()) {
    return Invalid(absl::StrCat(field, ".end_unix_us"), "is before sent_unix_us");
  }
  if (r.first_token_unix_us() != 0 && r.sent_unix_us() != 0 &&
      r.first_token_unix_us() < r.sent_unix_us()) {
    return Invalid(absl::StrCat(field, ".first_token_unix_us"), "is before sent_unix_us");
  }
  if (r.sent_unix_us() == 0 && r.scheduled_unix_us() == 0) {
    return Invalid(field, "has neither scheduled_unix_us nor sent_unix_us");
  }
  return absl::OkStatus();
}

Verdict Judge(const EvaluationConfig& config,
              const google::protobuf::RepeatedPtrField<mstperf::v1::RequestRecord>& records) {
  if (IsMost(config)) {
    std::vector<OutputRow> rows;
    rows.reserve(static_cast<size_t>(records.size()));
    for (const auto& r : records) rows.push_back(RowFromRecord(r));
    FinishRows(rows);
    return EvaluateMost(std::move(rows), ToMostConfig(config));
  }
  DefaultJudge judge(ToDefaultConfig(config));
  for (const auto& r : records) judge.Add(r);
  return judge.Final();
}

EvaluatorService::EvaluatorService(prometheus::Registry& registry)
    : verdicts_(prometheus::BuildCounter()
                    .Name("mstperf_evaluator_verdicts_total")
                    .Help("Verdicts given, by result and deciding rule.")
                    .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("mstperf_evaluator_evaluation_duration_seconds")
                    .Help("Time to compute one verdict.")
                    .Register(registry)
                    .Add({}, prometheus::Histogram::BucketBoundaries{
                                 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60})) {}

void EvaluatorService::Record(const Verdict& verdict, double seconds) {
  verdicts_.Add({{"result", ResultLabel(verdict.state())}, {"rule", verdict.deciding_rule()}})
      .Increment();
  duration_.Observe(seconds);
}

grpc::ServerUnaryReactor* EvaluatorService::Evaluate(grpc::CallbackServerContext* context,
                                                     const mstperf::v1::EvaluateRequest* request,
                                                     Verdict* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = ValidateConfig(request->config());
  for (int i = 0; status.ok() && i < request->records_size(); ++i) {
    status = ValidateRecord(request->records(i),
                            absl::StrCat("records[", i, "] (request_idx ",
                                         request->records(i).request_idx(), ")"));
  }
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  const auto start = std::chrono::steady_clock::now();
  *response = Judge(request->config(), request->records());
  Record(*response, SecondsSince(start));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<mstperf::v1::EvaluateStreamRequest, Verdict>*
EvaluatorService::EvaluateStream(grpc::CallbackServerContext* context) {
  return new StreamReactor(this);
}

}  // namespace mstperf::evaluator
