#include "services/loadgen/service.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/log.h"
#include "services/common/status.h"
#include "services/loadgen/schedule.h"

namespace mstperf::loadgen {
namespace {

constexpr uint32_t kDefaultBatchSize = 256;
constexpr double kDefaultProgressIntervalS = 1.0;
constexpr int64_t kLateSendUs = 1000;

std::string RangeLabel(const v1::TokenRange& r) {
  return r.min() == r.max() ? absl::StrCat(r.min()) : absl::StrCat(r.min(), "-", r.max());
}

absl::Status CheckRange(v1::TokenRange* r, const char* field) {
  if (r->max() == 0) r->set_max(r->min());
  if (r->min() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".min must be >= 1"));
  }
  if (r->min() > r->max()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": min (", r->min(), ") > max (", r->max(), ")"));
  }
  if (r->max() > 10'000'000) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".max is implausibly large"));
  }
  return absl::OkStatus();
}

absl::Status CheckNonNegative(double v, const char* field) {
  if (!std::isfinite(v) || v < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be >= 0 (got ", v, ")"));
  }
  return absl::OkStatus();
}

absl::Duration OrDefault(double seconds, absl::Duration fallback) {
  return seconds > 0 ? absl::Seconds(seconds) : fallback;
}

int64_t RealNowUs() { return absl::ToUnixMicros(absl::Now()); }

std::string Hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

v1::RequestRecord ToRecord(RequestResult&& r, uint32_t replica) {
  v1::RequestRecord rec;
  rec.set_request_idx(r.index);
  rec.set_replica_idx(replica);
  rec.set_scheduled_unix_us(r.scheduled_unix_us);
  rec.set_sent_unix_us(r.sent_unix_us);
  rec.set_first_byte_unix_us(r.first_byte_unix_us);
  rec.set_first_token_unix_us(r.first_token_unix_us);
  rec.set_end_unix_us(r.end_unix_us);
  rec.mutable_chunk_offset_us()->Add(r.chunk_offset_us.begin(), r.chunk_offset_us.end());
  rec.mutable_chunk_tokens()->Add(r.chunk_tokens.begin(), r.chunk_tokens.end());
  rec.set_requested_input_tokens(r.requested_input_tokens);
  rec.set_requested_output_tokens(r.requested_output_tokens);
  rec.set_prompt_tokens(r.prompt_tokens);
  rec.set_completion_tokens(r.completion_tokens);
  rec.set_http_status(r.http_status);
  rec.set_http_version(r.http_version);
  rec.set_success(r.success);
  rec.set_error_kind(r.error_kind);
  rec.set_error(std::move(r.error));
  return rec;
}

const char* ReasonLabel(v1::ErrorKind kind) {
  switch (kind) {
    case v1::ERROR_KIND_CONNECT: return "connect";
    case v1::ERROR_KIND_HTTP_STATUS: return "http_status";
    case v1::ERROR_KIND_TIMEOUT: return "timeout";
    case v1::ERROR_KIND_STREAM: return "stream";
    case v1::ERROR_KIND_SERVER_EVENT: return "server_event";
    case v1::ERROR_KIND_CANCELLED: return "cancelled";
    default: return "other";
  }
}

prometheus::Histogram::BucketBoundaries Exponential(double start, double factor, int n) {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = start; n-- > 0; v *= factor) b.push_back(v);
  return b;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct LoadGeneratorService::Metrics {
  explicit Metrics(prometheus::Registry& r)
      : scheduled(prometheus::BuildCounter()
                      .Name("mstperf_loadgen_requests_scheduled_total")
                      .Help("Requests whose scheduled send time has passed.")
                      .Register(r)
                      .Add({})),
        sent(prometheus::BuildCounter()
                 .Name("mstperf_loadgen_requests_sent_total")
                 .Help("Requests handed to the transport.")
                 .Register(r)
                 .Add({})),
        completed(prometheus::BuildCounter()
                      .Name("mstperf_loadgen_requests_completed_total")
                      .Help("Requests that finished successfully.")
                      .Register(r)
                      .Add({})),
        failed_family(prometheus::BuildCounter()
                          .Name("mstperf_loadgen_requests_failed_total")
                          .Help("Requests that failed, by reason.")
                          .Register(r)),
        dropped(prometheus::BuildCounter()
                    .Name("mstperf_loadgen_requests_dropped_total")
                    .Help("Requests never sent because the generator could not keep up.")
                    .Register(r)
                    .Add({})),
        in_flight(prometheus::BuildGauge()
                      .Name("mstperf_loadgen_requests_in_flight")
                      .Help("Requests sent and not yet finished.")
                      .Register(r)
                      .Add({})),
        target_rate(prometheus::BuildGauge()
                        .Name("mstperf_loadgen_target_rate_requests_per_minute")
                        .Help("This replica's share of the offered rate; 0 when idle.")
                        .Register(r)
                        .Add({})),
        active(prometheus::BuildGauge()
                   .Name("mstperf_loadgen_iterations_active")
                   .Help("Iterations running.")
                   .Register(r)
                   .Add({})),
        send_lag(prometheus::BuildHistogram()
                     .Name("mstperf_loadgen_send_lag_seconds")
                     .Help("Actual minus scheduled send time.")
                     .Register(r)
                     .Add({}, Exponential(1e-5, 2, 21))),
        ttft(prometheus::BuildHistogram()
                 .Name("mstperf_loadgen_ttft_seconds")
                 .Help("Time to first token.")
                 .Register(r)
                 .Add({}, Exponential(1e-3, 2, 20))),
        itl_bounds(Exponential(1e-4, 2, 20)),
        itl(prometheus::BuildHistogram()
                .Name("mstperf_loadgen_inter_token_latency_seconds")
                .Help("Gap between token chunks, per token.")
                .Register(r)
                .Add({}, itl_bounds)),
        e2e(prometheus::BuildHistogram()
                .Name("mstperf_loadgen_e2e_latency_seconds")
                .Help("Send to end of stream.")
                .Register(r)
                .Add({}, Exponential(1e-3, 2, 20))),
        tokens(prometheus::BuildCounter()
                   .Name("mstperf_loadgen_tokens_received_total")
                   .Help("Completion tokens received.")
                   .Register(r)
                   .Add({})) {
    for (auto kind : {v1::ERROR_KIND_CONNECT, v1::ERROR_KIND_HTTP_STATUS, v1::ERROR_KIND_TIMEOUT,
                      v1::ERROR_KIND_STREAM, v1::ERROR_KIND_SERVER_EVENT,
                      v1::ERROR_KIND_CANCELLED, v1::ERROR_KIND_OTHER}) {
      failed[kind] = &failed_family.Add({{"reason", ReasonLabel(kind)}});
    }
  }

  prometheus::Counter& scheduled;
  prometheus::Counter& sent;
  prometheus::Counter& completed;
  prometheus::Family<prometheus::Counter>& failed_family;
  std::map<int, prometheus::Counter*> failed;
  prometheus::Counter& dropped;
  prometheus::Gauge& in_flight;
  prometheus::Gauge& target_rate;
  prometheus::Gauge& active;
  prometheus::Histogram& send_lag;
  prometheus::Histogram& ttft;
  // A request's gaps are bucketed locally and added with one ObserveMultiple: one lock per
  // request instead of one per chunk.
  const prometheus::Histogram::BucketBoundaries itl_bounds;
  prometheus::Histogram& itl;
  prometheus::Histogram& e2e;
  prometheus::Counter& tokens;
};

// ---------------------------------------------------------------------------------------------

absl::Status ValidateAndNormalize(v1::IterationSpec* spec) {
  const std::string& id = spec->iteration_id();
  if (id.size() > 128) return absl::InvalidArgumentError("iteration_id is longer than 128");
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          "iteration_id may hold only letters, digits, '.', '_' and '-'");
    }
  }
  if (id.empty()) spec->set_iteration_id(absl::StrCat("iteration-", RealNowUs()));
  if (absl::StatusOr<std::string> url = NormalizeBaseUrl(spec->target().url()); !url.ok()) {
    return url.status();
  }
  MSTPERF_RETURN_IF_ERROR(CheckRange(spec->mutable_tokens()->mutable_input(), "tokens.input"));
  MSTPERF_RETURN_IF_ERROR(CheckRange(spec->mutable_tokens()->mutable_output(), "tokens.output"));
  if (spec->tokens().label().empty()) {
    spec->mutable_tokens()->set_label(absl::StrCat(RangeLabel(spec->tokens().input()), "_",
                                                   RangeLabel(spec->tokens().output())));
  }
  if (!std::isfinite(spec->req_min()) || spec->req_min() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("req_min must be > 0 (got ", spec->req_min(), ")"));
  }
  if (!std::isfinite(spec->duration_s()) || spec->duration_s() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("duration_s must be > 0 (got ", spec->duration_s(), ")"));
  }
  if (spec->duration_s() > 7 * 24 * 3600) {
    return absl::InvalidArgumentError("duration_s is longer than a week");
  }
  if (!v1::Arrival_IsValid(spec->arrival())) {
    return absl::InvalidArgumentError("arrival is not a known Arrival value");
  }
  if (!v1::Api_IsValid(spec->target().api())) {
    return absl::InvalidArgumentError("target.api is not a known Api value");
  }
  MSTPERF_RETURN_IF_ERROR(CheckNonNegative(spec->gamma_shape(), "gamma_shape"));
  if (spec->gamma_shape() == 0) spec->set_gamma_shape(1);
  if (spec->replica_count() == 0) spec->set_replica_count(1);
  if (spec->replica_idx() >= spec->replica_count()) {
    return absl::InvalidArgumentError(absl::StrCat("replica_idx (", spec->replica_idx(),
                                                   ") must be < replica_count (",
                                                   spec->replica_count(), ")"));
  }
  const double planned = spec->req_min() / 60.0 * spec->duration_s() / spec->replica_count();
  if (planned > 2e9) {
    return absl::InvalidArgumentError("req_min * duration_s plans more than 2e9 requests");
  }
  MSTPERF_RETURN_IF_ERROR(CheckNonNegative(spec->drain_timeout_s(), "drain_timeout_s"));
  MSTPERF_RETURN_IF_ERROR(CheckNonNegative(spec->progress_interval_s(), "progress_interval_s"));
  const v1::Target& t = spec->target();
  MSTPERF_RETURN_IF_ERROR(CheckNonNegative(t.connect_timeout_s(), "target.connect_timeout_s"));
  MSTPERF_RETURN_IF_ERROR(
      CheckNonNegative(t.first_token_timeout_s(), "target.first_token_timeout_s"));
  MSTPERF_RETURN_IF_ERROR(CheckNonNegative(t.idle_timeout_s(), "target.idle_timeout_s"));
  MSTPERF_RETURN_IF_ERROR(CheckNonNegative(t.total_timeout_s(), "target.total_timeout_s"));
  if (spec->start_at_unix_us() < 0 ||
      spec->start_at_unix_us() > RealNowUs() + int64_t{3600} * 1'000'000) {
    return absl::InvalidArgumentError("start_at_unix_us must be 0 or within the next hour");
  }
  for (const auto& [name, value] : t.headers()) {
    if (name.empty() || name.find_first_of(":\r\n ") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("target.headers: bad header \"", name, "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TargetConfig> ResolveTarget(const v1::Target& target, const ServiceOptions& opts) {
  TargetConfig c;
  absl::StatusOr<std::string> url = NormalizeBaseUrl(target.url());
  if (!url.ok()) return url.status();
  c.base_url = *url;
  c.model = target.model();
  c.chat = target.api() == v1::API_CHAT;
  for (const auto& [name, value] : target.headers()) c.headers.push_back(name + ": " + value);
  std::string key;
  if (!target.api_key_env().empty()) {
    const char* v = std::getenv(target.api_key_env().c_str());
    if (v == nullptr || *v == '\0') {
      return absl::InvalidArgumentError(absl::StrCat(
          "target.api_key_env: ", target.api_key_env(), " is not set in the loadgen's environment"));
    }
    key = v;
  } else if (!target.api_key_file().empty()) {
    std::ifstream in(target.api_key_file());
    if (!in || !std::getline(in, key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("target.api_key_file: cannot read ", target.api_key_file()));
    }
  }
  key = std::string(absl::StripAsciiWhitespace(key));
  if (!key.empty()) c.headers.push_back("Authorization: Bearer " + key);
  c.ca_bundle_path = target.ca_bundle_path();
  c.tls_insecure = target.tls_insecure();
  c.http2 = target.http2();
  if (c.http2 && absl::StartsWithIgnoreCase(c.base_url, "http://")) {
    MSTPERF_RETURN_IF_ERROR(CheckCleartextHttp2Supported());
  }
  c.connect_timeout = OrDefault(target.connect_timeout_s(), opts.connect_timeout);
  c.first_token_timeout = OrDefault(target.first_token_timeout_s(), opts.first_token_timeout);
  c.idle_timeout = OrDefault(target.idle_timeout_s(), opts.idle_timeout);
  c.total_timeout = OrDefault(target.total_timeout_s(), opts.total_timeout);
  return c;
}

v1::Distribution Summarize(std::vector<double>* values) {
  v1::Distribution d;
  if (values->empty()) return d;
  std::sort(values->begin(), values->end());
  const size_t n = values->size();
  double sum = 0;
  for (double v : *values) sum += v;
  auto q = [&](double p) {
    const double pos = p * (n - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, n - 1);
    return (*values)[lo] + ((*values)[hi] - (*values)[lo]) * (pos - lo);
  };
  d.set_count(n);
  d.set_mean(sum / n);
  d.set_min(values->front());
  d.set_p50(q(0.5));
  d.set_p90(q(0.9));
  d.set_p99(q(0.99));
  d.set_max(values->back());
  return d;
}

// ---------------------------------------------------------------------------------------------

struct LoadGeneratorService::PreparedTarget {
  TargetConfig target;
  std::shared_ptr<const PromptBuilder> prompts;
  bool send_min_tokens = true;
  absl::Duration probe_latency = absl::ZeroDuration();
  std::vector<std::string> warnings;
};

LoadGeneratorService::LoadGeneratorService(ServiceOptions options, prometheus::Registry& registry)
    : options_(std::move(options)), metrics_(std::make_unique<Metrics>(registry)) {}

LoadGeneratorService::~LoadGeneratorService() = default;

absl::StatusOr<std::shared_ptr<const PromptBuilder>> LoadGeneratorService::Prompts(
    const v1::IterationSpec& spec, const TargetConfig& target,
    std::vector<std::string>* warnings) {
  const v1::PromptSpec& p = spec.prompt();
  const std::string key = absl::StrCat(target.base_url, "|", target.model, "|", target.chat, "|",
                                       p.corpus_path(), "|", p.use_tokenize_endpoint());
  {
    absl::MutexLock lock(&mu_);
    if (auto it = prompt_cache_.find(key); it != prompt_cache_.end()) return it->second;
  }
  std::vector<std::string> words;
  if (p.corpus_path().empty()) {
    words = BuiltinCorpusWords();
  } else {
    absl::StatusOr<std::vector<std::string>> loaded = LoadCorpusWords(p.corpus_path());
    if (!loaded.ok()) return loaded.status();
    words = std::move(*loaded);
  }
  std::shared_ptr<const PromptBuilder> builder;
  if (p.use_tokenize_endpoint()) {
    HttpSession session(target);
    TokenizeFn tokenize = [&](std::string_view text, bool chat) -> absl::StatusOr<uint32_t> {
      std::string body = "{\"model\":\"";
      AppendJsonEscaped(target.model, &body);
      if (chat) {
        body += "\",\"add_generation_prompt\":true,\"messages\":[{\"role\":\"user\",\"content\":\"";
        AppendJsonEscaped(text, &body);
        body += "\"}]}";
      } else {
        body += "\",\"prompt\":\"";
        AppendJsonEscaped(text, &body);
        body += "\"}";
      }
      absl::StatusOr<HttpResponse> r = session.Call("/tokenize", body, absl::Seconds(10));
      if (!r.ok()) return r.status();
      if (r->status != 200) {
        return absl::UnavailableError(absl::StrCat("POST /tokenize returned ", r->status));
      }
      nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
      if (!j.is_object() || !j.contains("count") || !j["count"].is_number_unsigned()) {
        return absl::UnavailableError("POST /tokenize answered without a \"count\"");
      }
      return j["count"].get<uint32_t>();
    };
    absl::StatusOr<PromptBuilder> calibrated = PromptBuilder::Calibrate(words, target.chat, tokenize);
    if (calibrated.ok()) {
      if (!calibrated->exact()) {
        warnings->push_back(absl::StrCat("prompt lengths are approximate: ", calibrated->note()));
      }
      builder = std::make_shared<const PromptBuilder>(std::move(*calibrated));
    } else {
      warnings->push_back(absl::StrCat("prompt lengths are approximate: the target's /tokenize "
                                       "is not usable (", calibrated.status().message(), ")"));
    }
  }
  if (builder == nullptr) {
    builder = std::make_shared<const PromptBuilder>(PromptBuilder::Approximate(words, target.chat));
  }
  absl::MutexLock lock(&mu_);
  // Only exact builders are cached: an approximate one may be the result of a passing failure.
  if (builder->exact()) prompt_cache_[key] = builder;
  return builder;
}

absl::StatusOr<LoadGeneratorService::PreparedTarget> LoadGeneratorService::Prepare(
    const v1::IterationSpec& spec) {
  PreparedTarget p;
  absl::StatusOr<TargetConfig> target = ResolveTarget(spec.target(), options_);
  if (!target.ok()) return target.status();
  p.target = std::move(*target);

  // Reachability, and the model name when none was given.
  absl::StatusOr<HttpResponse> models = HttpCall(p.target, "/v1/models", "", absl::Seconds(10));
  if (!models.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("target unreachable: ", models.status().message()));
  }
  if (p.target.model.empty()) {
    nlohmann::json j = nlohmann::json::parse(models->body, nullptr, false);
    if (models->status == 200 && j.is_object() && j.contains("data") && j["data"].is_array() &&
        !j["data"].empty() && j["data"][0].contains("id") && j["data"][0]["id"].is_string()) {
      p.target.model = j["data"][0]["id"].get<std::string>();
    } else {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot resolve the model: GET /v1/models returned ", models->status,
          " without a model list; set target.model"));
    }
  }

  absl::StatusOr<std::shared_ptr<const PromptBuilder>> prompts =
      Prompts(spec, p.target, &p.warnings);
  if (!prompts.ok()) return prompts.status();
  p.prompts = *prompts;

  // One request of the iteration's shape: does the target take min_tokens, and how long does a
  // request take unloaded (the warm pool is sized from it)?
  const uint32_t out = spec.tokens().output().max();
  const std::string probe_key =
      absl::StrCat(p.target.base_url, "|", p.target.model, "|", p.target.chat, "|",
                   spec.tokens().input().min(), "|", out);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = probe_cache_.find(probe_key); it != probe_cache_.end()) {
      p.send_min_tokens = it->second.send_min_tokens;
      p.probe_latency = it->second.latency;
      return p;
    }
  }
  const std::string prompt = p.prompts->Build(spec.seed() ^ 0x9e37, ~uint64_t{0},
                                              spec.tokens().input().min());
  for (bool min_tokens : {true, false}) {
    BodyTemplate body(p.target, min_tokens);
    const absl::Time t0 = absl::Now();
    absl::StatusOr<HttpResponse> r =
        HttpCall(p.target, p.target.generation_path(), body.Build(prompt, out),
                 p.target.total_timeout);
    if (!r.ok()) {
      p.warnings.push_back(absl::StrCat("probe request failed: ", r.status().message()));
      break;
    }
    if (r->status == 400 && min_tokens && r->body.find("min_tokens") != std::string::npos) {
      continue;  // this server rejects min_tokens: send only max_tokens + ignore_eos
    }
    p.send_min_tokens = min_tokens;
    if (r->status / 100 == 2) {
      p.probe_latency = absl::Now() - t0;
      absl::MutexLock lock(&mu_);
      probe_cache_[probe_key] = ProbeResult{p.send_min_tokens, p.probe_latency};
    } else {
      p.warnings.push_back(absl::StrCat("probe request returned HTTP ", r->status));
    }
    break;
  }
  return p;
}

grpc::Status LoadGeneratorService::RunIteration(grpc::ServerContext* context,
                                                const v1::IterationSpec* request,
                                                grpc::ServerWriter<v1::IterationEvent>* writer) {
  v1::IterationSpec spec = *request;
  if (absl::Status s = ValidateAndNormalize(&spec); !s.ok()) return ToGrpcStatus(s);
  ScheduleSpec ss;
  const uint32_t replicas = spec.replica_count();
  ss.rate_per_s = spec.req_min() / 60.0;
  ss.duration_s = spec.duration_s();
  ss.kind = spec.arrival() == v1::ARRIVAL_CONSTANT ? ArrivalKind::kConstant
            : spec.arrival() == v1::ARRIVAL_GAMMA  ? ArrivalKind::kGamma
                                                   : ArrivalKind::kPoisson;
  ss.gamma_shape = spec.gamma_shape();
  ss.seed = spec.seed();
  ss.replica_idx = spec.replica_idx();
  ss.replica_count = replicas;
  ss.input_min = spec.tokens().input().min();
  ss.input_max = spec.tokens().input().max();
  ss.output_min = spec.tokens().output().min();
  ss.output_max = spec.tokens().output().max();
  absl::StatusOr<Schedule> schedule = Schedule::Create(ss);
  if (!schedule.ok()) return ToGrpcStatus(schedule.status());

  absl::StatusOr<PreparedTarget> prepared = Prepare(spec);
  if (!prepared.ok()) return ToGrpcStatus(prepared.status());
  if (context->IsCancelled()) return grpc::Status::CANCELLED;
  const uint64_t planned = schedule->CountRemaining();
  const double replica_rate_per_s = ss.rate_per_s / replicas;

  RunOptions ro;
  ro.target = prepared->target;
  const std::shared_ptr<const PromptBuilder> prompts = prepared->prompts;
  const BodyTemplate body(ro.target, prepared->send_min_tokens);
  const uint64_t seed = spec.seed();
  ro.make_body = [prompts, body, seed](const ScheduledRequest& r) {
    return body.Build(prompts->Build(seed, r.index, r.input_tokens), r.output_tokens);
  };
  ro.max_in_flight = spec.max_in_flight();
  ro.max_send_lag = options_.max_send_lag;
  ro.realtime = options_.realtime_event_loop;
  ro.connection_guard_lag = options_.connection_guard_lag;
  ro.drain_timeout = OrDefault(spec.drain_timeout_s(), ro.target.total_timeout);
  ro.record_chunks = !spec.omit_chunk_timeline();
  // Little's law with margin: connections needed = rate x latency, plus headroom for load.
  // At least 20 ms worth of requests: a probe on an idle target underestimates loaded latency.
  double warm = std::max(replica_rate_per_s * absl::ToDoubleSeconds(prepared->probe_latency) * 1.5,
                         replica_rate_per_s * 0.02) + 4;
  warm = std::min<double>(warm, options_.max_warm_connections);
  if (spec.max_in_flight() > 0) warm = std::min<double>(warm, spec.max_in_flight());
  ro.warm_connections = static_cast<uint32_t>(std::ceil(warm));
  std::vector<std::string> warnings = prepared->warnings;
  if (replica_rate_per_s * absl::ToDoubleSeconds(prepared->probe_latency) * 1.5 >
      options_.max_warm_connections) {
    warnings.push_back(absl::StrCat("expected concurrency exceeds the warm pool (",
                                    options_.max_warm_connections,
                                    " connections): later sends open new connections"));
  }
  ro.start_unix_us = spec.start_at_unix_us();

  const uint32_t warm_connections = ro.warm_connections;
  Runner runner(std::move(ro), std::move(*schedule));
  absl::Mutex results_mu;
  std::vector<RequestResult> results;  // finished, not yet streamed
  bool runner_done = false;
  absl::Status runner_status;
  std::thread loop_thread([&] {
    absl::Status s = runner.Run([&](RequestResult&& r) {
      absl::MutexLock lock(&results_mu);
      results.push_back(std::move(r));
    });
    absl::MutexLock lock(&results_mu);
    runner_status = s;
    runner_done = true;
  });

  // The streaming side (record conversion, serialisation, statistics) yields to the event loop
  // when they share a core: at a higher nice value this thread never delays a send wakeup by a
  // scheduler slice. Raising one's own nice value needs no privilege; it is restored below.
  const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  errno = 0;
  const int old_nice = getpriority(PRIO_PROCESS, tid);
  const bool reniced = errno == 0 && setpriority(PRIO_PROCESS, tid, std::min(old_nice + 10, 19)) == 0;
  metrics_->active.Increment();
  metrics_->target_rate.Increment(replica_rate_per_s * 60);
  const uint32_t batch_size = spec.batch_size() ? spec.batch_size() : kDefaultBatchSize;
  const absl::Duration progress_every = absl::Seconds(
      spec.progress_interval_s() > 0 ? spec.progress_interval_s() : kDefaultProgressIntervalS);
  const uint32_t replica = spec.replica_idx();
  bool stream_ok = true;
  bool started_sent = false;
  auto write = [&](const v1::IterationEvent& ev) {
    if (stream_ok && !writer->Write(ev)) stream_ok = false;
  };

  // What the streaming side keeps: send lags (for the distribution) and recent sends and
  // completions (for the window rates).
  std::vector<double> lags_us;
  lags_us.reserve(std::min<uint64_t>(planned, 1u << 24));
  uint64_t late = 0, dropped_seen = 0, prompt_mismatch = 0, with_usage = 0;
  std::deque<std::pair<absl::Time, bool>> window;  // (when, success) of recent finishes
  std::deque<std::pair<absl::Time, uint64_t>> sent_marks;
  v1::IterationEvent batch_event;
  auto flush = [&] {
    if (batch_event.records().records_size() == 0) return;
    write(batch_event);
    batch_event.Clear();
  };
  auto progress = [&](bool whole_run) {
    const RunCounters& c = runner.counters();
    v1::IterationProgress p;
    const absl::Time now = absl::Now();
    const double elapsed =
        runner.started() ? std::max(0.0, (RealNowUs() - runner.start_unix_us()) / 1e6) : 0.0;
    p.set_elapsed_s(elapsed);
    p.set_duration_s(spec.duration_s());
    p.set_scheduled(c.scheduled.load());
    p.set_sent(c.sent.load());
    p.set_completed(c.completed.load());
    p.set_failed(c.failed.load());
    p.set_dropped(c.dropped.load());
    p.set_in_flight(c.in_flight.load());
    p.set_tokens_received(c.tokens.load());
    if (whole_run) {
      const double wall = std::max(1e-9, elapsed);
      p.set_offered_rate_per_min(c.sent.load() / std::min(wall, spec.duration_s()) * 60);
      p.set_achieved_rate_per_min(c.completed.load() / wall * 60);
    } else {
      const double span = absl::ToDoubleSeconds(progress_every);
      while (!window.empty() && now - window.front().first > progress_every) window.pop_front();
      uint64_t ok = 0;
      for (const auto& w : window) ok += w.second;
      sent_marks.emplace_back(now, c.sent.load());
      while (sent_marks.size() > 1 && now - sent_marks.front().first > progress_every) {
        sent_marks.pop_front();
      }
      const double sent_span = absl::ToDoubleSeconds(now - sent_marks.front().first);
      const uint64_t sent_delta = sent_marks.back().second - sent_marks.front().second;
      p.set_offered_rate_per_min(sent_span > 0 ? sent_delta / sent_span * 60 : 0);
      p.set_achieved_rate_per_min(ok / span * 60);
    }
    std::vector<double> copy = lags_us;
    *p.mutable_send_lag_us() = Summarize(&copy);
    return p;
  };

  absl::Time next_progress = absl::Now() + progress_every;
  bool done = false;
  while (!done) {
    if (!started_sent && (runner.started() || done)) {
      v1::IterationEvent ev;
      auto* s = ev.mutable_started();
      s->set_iteration_id(spec.iteration_id());
      s->set_replica_idx(replica);
      s->set_planned_requests(planned);
      s->set_start_unix_us(runner.started() ? runner.start_unix_us() : 0);
      s->set_model(prepared->target.model);
      s->set_prompt_tokens_exact(prompts->exact());
      s->set_loadgen_version(options_.version);
      s->set_hostname(Hostname());
      write(ev);
      started_sent = true;
    }
    std::vector<RequestResult> ready;
    {
      absl::MutexLock lock(&results_mu);
      results_mu.AwaitWithTimeout(
          absl::Condition(+[](bool* d) { return *d; }, &runner_done), absl::Milliseconds(20));
      ready.swap(results);
      done = runner_done;
    }
    const absl::Time now = absl::Now();
    for (RequestResult& r : ready) {
      if (r.error_kind == v1::ERROR_KIND_DROPPED) {
        ++dropped_seen;
        metrics_->dropped.Increment();
      } else {
        const double lag = static_cast<double>(r.sent_unix_us - r.scheduled_unix_us);
        lags_us.push_back(lag);
        if (lag > kLateSendUs) ++late;
        metrics_->sent.Increment();
        metrics_->send_lag.Observe(lag * 1e-6);
        if (r.success) {
          metrics_->completed.Increment();
          if (r.first_token_unix_us) {
            metrics_->ttft.Observe((r.first_token_unix_us - r.sent_unix_us) * 1e-6);
          }
          metrics_->e2e.Observe((r.end_unix_us - r.sent_unix_us) * 1e-6);
          if (r.chunk_offset_us.size() > 1) {
            const auto& bounds = metrics_->itl_bounds;
            std::vector<double> buckets(bounds.size() + 1, 0.0);
            double sum = 0;
            for (size_t i = 1; i < r.chunk_offset_us.size(); ++i) {
              const double gap = (r.chunk_offset_us[i] - r.chunk_offset_us[i - 1]) * 1e-6 /
                                 std::max<uint32_t>(1, r.chunk_tokens[i]);
              sum += gap;
              buckets[std::lower_bound(bounds.begin(), bounds.end(), gap) - bounds.begin()] += 1;
            }
            metrics_->itl.ObserveMultiple(buckets, sum);
          }
          if (r.prompt_tokens) {
            ++with_usage;
            if (r.prompt_tokens != r.requested_input_tokens) ++prompt_mismatch;
          }
        } else {
          metrics_->failed[r.error_kind == v1::ERROR_KIND_NONE ? v1::ERROR_KIND_OTHER
                                                               : r.error_kind]
              ->Increment();
        }
        metrics_->tokens.Increment(r.tokens_counted);
        window.emplace_back(now, r.success);
      }
      metrics_->scheduled.Increment();
      *batch_event.mutable_records()->add_records() = ToRecord(std::move(r), replica);
      if (static_cast<uint32_t>(batch_event.records().records_size()) >= batch_size) flush();
    }
    metrics_->in_flight.Set(static_cast<double>(runner.counters().in_flight.load()));
    if (now >= next_progress && !done && runner.started()) {
      flush();
      v1::IterationEvent ev;
      *ev.mutable_progress() = progress(false);
      write(ev);
      next_progress = now + progress_every;
    }
    if ((!stream_ok || context->IsCancelled()) && !done) runner.Stop();
  }
  loop_thread.join();
  if (reniced) setpriority(PRIO_PROCESS, tid, old_nice);
  flush();
  metrics_->active.Decrement();
  metrics_->target_rate.Decrement(replica_rate_per_s * 60);
  metrics_->in_flight.Set(0);

  const RunCounters& c = runner.counters();
  if (c.dropped_for_lag.load() > 0) {
    warnings.push_back(absl::StrCat("generator overloaded: ", c.dropped_for_lag.load(),
                                    " requests dropped for being more than ",
                                    absl::FormatDuration(options_.max_send_lag),
                                    " behind schedule"));
  }
  if (c.dropped_for_connections.load() > 0) {
    warnings.push_back(absl::StrCat(
        "generator overloaded: ", c.dropped_for_connections.load(),
        " requests dropped for being more than ", absl::FormatDuration(options_.connection_guard_lag),
        " late with every connection busy (opening more would make the overload worse)"));
  }
  if (c.dropped_for_cap.load() > 0) {
    warnings.push_back(absl::StrCat(c.dropped_for_cap.load(),
                                    " requests dropped at max_in_flight (",
                                    spec.max_in_flight(), ")"));
  }
  if (c.sent.load() > 0 && late * 100 > c.sent.load()) {
    warnings.push_back(absl::StrFormat("%.1f%% of sends were more than 1 ms late",
                                       100.0 * late / c.sent.load()));
  }
  if (prompt_mismatch > 0) {
    warnings.push_back(absl::StrCat(prompt_mismatch, " of ", with_usage,
                                    " requests had usage.prompt_tokens != the requested length"));
  }
  if (c.connections_opened.load() > warm_connections + 16) {
    warnings.push_back(absl::StrCat(c.connections_opened.load() - warm_connections,
                                    " connections opened during the run beyond the warm pool of ",
                                    warm_connections));
  }
  if (runner.start_shift_us() > 0) {
    warnings.push_back(absl::StrCat(
        "schedule started ", runner.start_shift_us() / 1000.0,
        " ms after start_at: this replica was ready (target probed, connections warm) only "
        "then; give the iteration a longer start lead"));
  }
  if (options_.realtime_event_loop && runner.started() && !runner.realtime_active()) {
    warnings.push_back(absl::StrCat(
        "event loop ran at normal priority (", runner.realtime_error(),
        "): other processes on this host could delay sends; give the loadgen CAP_SYS_NICE"));
  }
  if (!runner_status.ok()) warnings.push_back(std::string(runner_status.message()));

  v1::IterationEvent ev;
  auto* s = ev.mutable_summary();
  s->set_iteration_id(spec.iteration_id());
  s->set_replica_idx(replica);
  *s->mutable_totals() = progress(true);
  std::vector<double> all = lags_us;
  *s->mutable_send_lag_us() = Summarize(&all);
  s->set_late_sends(late);
  s->set_wall_time_s(
      runner.started() ? std::max(0.0, (RealNowUs() - runner.start_unix_us()) / 1e6) : 0.0);
  s->set_prompt_tokens_exact(prompts->exact());
  s->set_end_reason(runner.end_reason().empty() ? "cancelled" : runner.end_reason());
  s->set_realtime_event_loop(runner.realtime_active());
  for (std::string& w : warnings) s->add_warnings(std::move(w));
  write(ev);
  MSTPERF_LOG(Info) << "iteration " << spec.iteration_id() << " replica " << replica << ": "
                    << s->end_reason() << ", sent " << c.sent.load() << ", ok "
                    << c.completed.load() << ", failed " << c.failed.load() << ", dropped "
                    << c.dropped.load() << ", lag p99 " << s->send_lag_us().p99() << " us";
  if (context->IsCancelled()) return grpc::Status::CANCELLED;
  return grpc::Status::OK;
}

}  // namespace mstperf::loadgen
