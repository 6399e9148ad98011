#include "services/controller/runner.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/common/log.h"
#include "services/common/prom_scrape.h"
#include "services/common/status.h"

namespace mstperf::controller {
namespace {

absl::Status Annotate(const grpc::Status& status, absl::string_view what) {
  absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

void FillTotals(IterationOutcome* out, double duration_s) {
  v1::IterationProgress& t = out->totals;
  std::vector<int64_t> ends;
  for (const auto& r : out->records) {
    if (r.error_kind() == v1::ERROR_KIND_DROPPED) {
      t.set_dropped(t.dropped() + 1);
    } else {
      t.set_sent(t.sent() + 1);
    }
    if (r.success()) {
      t.set_completed(t.completed() + 1);
      if (r.end_unix_us() > 0) ends.push_back(r.end_unix_us());
    } else if (r.error_kind() != v1::ERROR_KIND_DROPPED) {
      t.set_failed(t.failed() + 1);
    }
    t.set_tokens_received(t.tokens_received() + r.completion_tokens());
  }
  t.set_scheduled(out->records.size());
  t.set_duration_s(duration_s);
  const double elapsed = std::max(0.0, (out->ended_unix_us - out->started_unix_us) / 1e6);
  t.set_elapsed_s(elapsed);
  if (elapsed > 0) {
    t.set_offered_rate_per_min(t.sent() * 60.0 / std::min(elapsed, duration_s));
    t.set_achieved_rate_per_min(t.completed() * 60.0 / elapsed);
  }
  std::sort(ends.begin(), ends.end());
  if (ends.size() >= 10 && ends.back() > ends.front()) {
    out->completion_rate_per_min =
        (ends.size() - 1) * 60e6 / static_cast<double>(ends.back() - ends.front());
  }
}

}  // namespace

v1::IterationProgress MergeProgress(const std::vector<v1::IterationProgress>& parts) {
  v1::IterationProgress m;
  for (const auto& p : parts) {
    m.set_elapsed_s(std::max(m.elapsed_s(), p.elapsed_s()));
    m.set_duration_s(std::max(m.duration_s(), p.duration_s()));
    m.set_scheduled(m.scheduled() + p.scheduled());
    m.set_sent(m.sent() + p.sent());
    m.set_completed(m.completed() + p.completed());
    m.set_failed(m.failed() + p.failed());
    m.set_dropped(m.dropped() + p.dropped());
    m.set_in_flight(m.in_flight() + p.in_flight());
    m.set_tokens_received(m.tokens_received() + p.tokens_received());
    m.set_offered_rate_per_min(m.offered_rate_per_min() + p.offered_rate_per_min());
    m.set_achieved_rate_per_min(m.achieved_rate_per_min() + p.achieved_rate_per_min());
    // Percentiles do not add up; the worst replica's lag is what matters for trust.
    if (p.send_lag_us().p99() >= m.send_lag_us().p99()) {
      uint64_t count = m.send_lag_us().count() + p.send_lag_us().count();
      *m.mutable_send_lag_us() = p.send_lag_us();
      m.mutable_send_lag_us()->set_count(count);
    } else {
      m.mutable_send_lag_us()->set_count(m.send_lag_us().count() + p.send_lag_us().count());
    }
  }
  return m;
}


absl::StatusOr<std::vector<std::string>> ResolveLoadgenAddresses(
    const std::vector<std::string>& addresses) {
  std::vector<std::string> out;
  for (const std::string& address : addresses) {
    absl::string_view rest = address;
    if (!absl::ConsumePrefix(&rest, "dns:///")) {
      out.push_back(address);
      continue;
    }
    const size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("loadgen address \"", address, "\" has no port"));
    }
    const std::string host(rest.substr(0, colon)), port(rest.substr(colon + 1));
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
    if (rc != 0) {
      return absl::UnavailableError(absl::StrCat("cannot resolve ", address, ": ", gai_strerror(rc)));
    }
    std::set<std::string> seen;
    for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
      char ip[NI_MAXHOST];
      if (::getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof(ip), nullptr, 0, NI_NUMERICHOST) != 0) {
        continue;
      }
      std::string one = ai->ai_family == AF_INET6 ? absl::StrCat("[", ip, "]:", port)
                                                  : absl::StrCat(ip, ":", port);
      if (seen.insert(one).second) out.push_back(one);
    }
    ::freeaddrinfo(result);
  }
  if (out.empty()) return absl::FailedPreconditionError("no loadgen address (spec.loadgen_addresses or --loadgen)");
  return out;
}

IterationRunner::IterationRunner(std::string evaluator_address)
    : evaluator_address_(std::move(evaluator_address)) {}

std::shared_ptr<grpc::Channel> IterationRunner::Channel(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& channel = channels_[address];
  if (channel == nullptr) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(256 * 1024 * 1024);
    args.SetMaxSendMessageSize(256 * 1024 * 1024);
    channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  return channel;
}

void IterationRunner::CancelCalls() {
  absl::MutexLock lock(&mu_);
  for (grpc::ClientContext* ctx : active_) ctx->TryCancel();
}

void IterationRunner::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
  for (grpc::ClientContext* ctx : active_) ctx->TryCancel();
}

void IterationRunner::Reset() {
  absl::MutexLock lock(&mu_);
  stop_ = false;
}

absl::StatusOr<IterationOutcome> IterationRunner::Run(
    const IterationRequest& request,
    const std::function<void(const v1::IterationProgress&)>& on_progress) {
  if (request.loadgen_addresses.empty()) {
    return absl::FailedPreconditionError("no loadgen address");
  }
  if (request.evaluate && evaluator_address_.empty()) {
    return absl::FailedPreconditionError("no evaluator address (--evaluator)");
  }
  const bool stream = request.evaluate && request.stream_evaluation;
  // How often the replicas report progress and the loop below looks at it.
  const absl::Duration tick =
      stream ? std::min(request.evaluation_tick, request.progress_interval)
             : request.progress_interval;
  const size_t n = request.loadgen_addresses.size();
  IterationOutcome out;
  out.started_unix_us = absl::ToUnixMicros(absl::Now() + request.start_delay);

  struct Replica {
    grpc::ClientContext ctx;
    v1::IterationProgress progress;
    v1::IterationSummary summary;
    bool has_summary = false;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Replica>> replicas;
  for (size_t r = 0; r < n; ++r) replicas.push_back(std::make_unique<Replica>());

  // Evaluator stream (early verdicts), when asked for.
  std::unique_ptr<v1::Evaluator::Stub> evaluator;
  if (request.evaluate) evaluator = v1::Evaluator::NewStub(Channel(evaluator_address_));
  grpc::ClientContext eval_ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::EvaluateStreamRequest, v1::Verdict>> eval_stream;
  std::mutex data_mu;     // records, progress, and writes on eval_stream
  std::mutex verdict_mu;  // the verdicts read from eval_stream (never held while writing it,
                          // so a slow evaluator cannot deadlock reads against writes)
  std::atomic<bool> early{false};
  v1::Verdict early_verdict, last_stream_verdict;
  std::thread eval_reader;

  {
    absl::MutexLock lock(&mu_);
    if (stop_) {
      out.interrupted = true;
      return out;
    }
    for (auto& replica : replicas) active_.push_back(&replica->ctx);
    if (stream) active_.push_back(&eval_ctx);
  }
  auto unregister = [&] {
    absl::MutexLock lock(&mu_);
    std::erase_if(active_, [&](grpc::ClientContext* c) {
      if (c == &eval_ctx) return true;
      for (auto& replica : replicas) {
        if (c == &replica->ctx) return true;
      }
      return false;
    });
  };

  if (stream) {
    eval_stream = evaluator->EvaluateStream(&eval_ctx);
    v1::EvaluateStreamRequest first;
    *first.mutable_config() = request.evaluation;
    eval_stream->Write(first);
    eval_reader = std::thread([&] {
      v1::Verdict v;
      while (eval_stream->Read(&v)) {
        std::lock_guard<std::mutex> lock(verdict_mu);
        last_stream_verdict = v;
        if (v.early() && v.state() != v1::VERDICT_STATE_UNDECIDED && !early.exchange(true)) {
          early_verdict = v;
          // The outcome is certain: stop sending, the rest of the duration is saved.
          for (auto& replica : replicas) replica->ctx.TryCancel();
        }
      }
    });
  }

  // The target's own view (vLLM's running/waiting requests, KV-cache use) next to ours.
  std::unique_ptr<prom::TargetMetricsSampler> sampler;
  if (!request.spec.target().metrics_url().empty()) {
    prom::TargetMetricsSamplerOptions options;
    options.url = request.spec.target().metrics_url();
    options.interval = request.metrics_interval;
    sampler = std::make_unique<prom::TargetMetricsSampler>(options);
    if (absl::Status s = sampler->Start(); !s.ok()) {
      out.warnings.push_back(absl::StrCat("target metrics not sampled: ", s.message()));
      sampler.reset();
    }
  }

  std::atomic<size_t> running{n};
  std::mutex done_mu;
  std::condition_variable done_cv;
  std::vector<std::thread> threads;
  for (size_t r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      Replica& replica = *replicas[r];
      v1::IterationSpec spec = request.spec;
      spec.set_iteration_id(request.iteration_id);
      spec.set_replica_idx(static_cast<uint32_t>(r));
      spec.set_replica_count(static_cast<uint32_t>(n));
      spec.set_start_at_unix_us(out.started_unix_us);
      if (spec.progress_interval_s() <= 0 && tick < absl::Seconds(1)) {
        spec.set_progress_interval_s(absl::ToDoubleSeconds(tick));
      }
      auto stub = v1::LoadGenerator::NewStub(Channel(request.loadgen_addresses[r]));
      auto reader = stub->RunIteration(&replica.ctx, spec);
      v1::IterationEvent event;
      while (reader->Read(&event)) {
        std::lock_guard<std::mutex> lock(data_mu);
        switch (event.event_case()) {
          case v1::IterationEvent::kRecords:
            for (auto& rec : *event.mutable_records()->mutable_records()) {
              out.records.push_back(std::move(rec));
            }
            if (eval_stream != nullptr && !early) {
              v1::EvaluateStreamRequest msg;
              // Re-read what was just appended (moved-from above).
              auto* batch = msg.mutable_records();
              const size_t count = event.records().records_size();
              for (size_t i = out.records.size() - count; i < out.records.size(); ++i) {
                *batch->add_records() = out.records[i];
              }
              eval_stream->Write(msg);
            }
            break;
          case v1::IterationEvent::kProgress:
            replica.progress = event.progress();
            break;
          case v1::IterationEvent::kSummary:
            replica.summary = event.summary();
            replica.has_summary = true;
            break;
          default:
            break;
        }
      }
      replica.status = reader->Finish();
      if (--running == 0) {
        std::lock_guard<std::mutex> lock(done_mu);
        done_cv.notify_all();
      }
    });
  }

  // Live progress to `on_progress` every progress_interval and, when streaming, a tick with the
  // merged live counts to the evaluator every evaluation_tick.
  {
    absl::Time next_progress = absl::Now() + request.progress_interval;
    std::unique_lock<std::mutex> lock(done_mu);
    while (running > 0) {
      done_cv.wait_for(lock, absl::ToChronoMilliseconds(tick));
      if (running == 0) break;
      v1::IterationProgress merged;
      {
        std::lock_guard<std::mutex> data_lock(data_mu);
        std::vector<v1::IterationProgress> parts;
        for (auto& replica : replicas) parts.push_back(replica->progress);
        merged = MergeProgress(parts);
        if (eval_stream != nullptr && !early) {
          v1::EvaluateStreamRequest msg;
          msg.mutable_tick()->set_elapsed_s(merged.elapsed_s());
          *msg.mutable_tick()->mutable_progress() = merged;
          eval_stream->Write(msg);
        }
      }
      const absl::Time now = absl::Now();
      if (now >= next_progress) {
        next_progress = now + request.progress_interval;
        if (on_progress) on_progress(merged);
      }
    }
  }
  for (auto& t : threads) t.join();
  out.ended_unix_us = absl::ToUnixMicros(absl::Now());
  if (sampler != nullptr) out.target_metrics = prom::TargetSamplesToJson(sampler->Stop());

  bool stopped;
  {
    absl::MutexLock lock(&mu_);
    stopped = stop_;
  }
  absl::Status error;
  for (size_t r = 0; r < n; ++r) {
    Replica& replica = *replicas[r];
    if (replica.has_summary) {
      out.summaries.push_back(replica.summary);
      for (const auto& w : replica.summary.warnings()) {
        out.warnings.push_back(absl::StrCat("replica ", r, ": ", w));
      }
    }
    const bool cancelled_by_us =
        replica.status.error_code() == grpc::StatusCode::CANCELLED && (early || stopped);
    if (replica.status.ok() || cancelled_by_us) continue;
    if (request.keep_records_on_replica_error) {
      out.replica_errors.push_back({request.loadgen_addresses[r], replica.status});
    } else if (error.ok()) {
      error = Annotate(replica.status, absl::StrCat("loadgen ", request.loadgen_addresses[r]));
    }
  }
  FillTotals(&out, request.spec.duration_s());

  if (stopped || !error.ok()) {
    if (eval_stream != nullptr) {
      eval_ctx.TryCancel();
      eval_reader.join();
      (void)eval_stream->Finish();
    }
    unregister();
    if (!error.ok() && !stopped) return error;
    out.interrupted = true;
    return out;
  }

  if (!request.evaluate) {
    unregister();
    return out;
  }
  if (eval_stream != nullptr) {
    if (early) {
      eval_ctx.TryCancel();
      eval_reader.join();
      (void)eval_stream->Finish();
      out.verdict = early_verdict;
      out.stopped_early = true;
      unregister();
      return out;
    }
    {
      std::lock_guard<std::mutex> lock(data_mu);
      eval_stream->WritesDone();
    }
    eval_reader.join();
    grpc::Status status = eval_stream->Finish();
    unregister();
    if (status.ok() && last_stream_verdict.state() != v1::VERDICT_STATE_UNDECIDED) {
      out.verdict = last_stream_verdict;
      return out;
    }
    if (status.ok() || status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      MSTPERF_LOG(Warning) << "EvaluateStream gave no final verdict ("
                           << (status.ok() ? "undecided" : status.error_message())
                           << "); asking Evaluate";
    } else {
      return Annotate(status, absl::StrCat("evaluator ", evaluator_address_));
    }
  } else {
    unregister();
  }

  v1::EvaluateRequest evaluate;
  *evaluate.mutable_config() = request.evaluation;
  for (const auto& r : out.records) *evaluate.add_records() = r;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  {
    absl::MutexLock lock(&mu_);
    active_.push_back(&ctx);
  }
  grpc::Status status = evaluator->Evaluate(&ctx, evaluate, &out.verdict);
  {
    absl::MutexLock lock(&mu_);
    std::erase(active_, &ctx);
    if (stop_) {
      out.interrupted = true;
      out.verdict.Clear();
      return out;
    }
  }
  if (!status.ok()) return Annotate(status, absl::StrCat("evaluator ", evaluator_address_));
  return out;
}

}  // namespace mstperf::controller
