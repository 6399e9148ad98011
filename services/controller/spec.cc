#include "services/controller/spec.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "services/common/status.h"

namespace mstperf::controller {
namespace {

using v1::ExperimentSpec;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

bool Finite(double x) { return std::isfinite(x); }

bool IsSafeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

bool SafeName(const std::string& s, size_t max_len) {
  if (s.empty() || s.size() > max_len || s == "." || s == "..") return false;
  for (char c : s) {
    if (!IsSafeChar(c)) return false;
  }
  return true;
}

// "host:port", "http://host[:port][/path]" or "https://...".
absl::Status ValidateUrl(absl::string_view field, const std::string& url) {
  if (url.empty()) return Invalid(field, "required (the endpoint under test, e.g. 127.0.0.1:8000)");
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return Invalid(field, absl::StrCat("contains a space or control character: \"", url, "\""));
    }
  }
  absl::string_view rest = url;
  const bool has_scheme = absl::ConsumePrefix(&rest, "http://") || absl::ConsumePrefix(&rest, "https://");
  if (!has_scheme && absl::StrContains(rest, "://")) {
    return Invalid(field, absl::StrCat("scheme must be http or https: \"", url, "\""));
  }
  absl::string_view authority = rest.substr(0, rest.find('/'));
  if (!has_scheme && authority.size() != rest.size()) {
    return Invalid(field, absl::StrCat("a bare host:port has no path: \"", url, "\""));
  }
  if (authority.empty()) return Invalid(field, absl::StrCat("no host in \"", url, "\""));
  size_t colon = authority.rfind(':');
  const bool bracketed = authority.front() == '[';
  if (colon != absl::string_view::npos && (!bracketed || colon > authority.find(']'))) {
    int port = 0;
    if (!absl::SimpleAtoi(authority.substr(colon + 1), &port) || port <= 0 || port > 65535) {
      return Invalid(field, absl::StrCat("bad port in \"", url, "\""));
    }
    if (colon == 0) return Invalid(field, absl::StrCat("no host in \"", url, "\""));
  } else if (!has_scheme) {
    return Invalid(field, absl::StrCat("expected host:port or http(s)://host[:port], got \"", url, "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateRange(const std::string& field, const v1::TokenRange& r) {
  if (r.min() == 0) return Invalid(field + ".min", "must be >= 1 token");
  if (r.max() == 0) return Invalid(field + ".max", "must be >= 1 token (a fixed length has max == min)");
  if (r.max() < r.min()) {
    return Invalid(field + ".max", absl::StrCat("must be >= min (", r.min(), "), got ", r.max()));
  }
  if (r.max() > 1000000) return Invalid(field + ".max", absl::StrCat("too large: ", r.max()));
  return absl::OkStatus();
}

absl::Status ValidateLoadgenAddress(const std::string& field, const std::string& address) {
  absl::string_view rest = address;
  if (absl::ConsumePrefix(&rest, "dns:///")) {
    // resolved at run time
  } else if (absl::StrContains(rest, "://") || absl::StrContains(rest, "/")) {
    return Invalid(field, absl::StrCat("expected host:port or dns:///name:port, got \"", address, "\""));
  }
  size_t colon = rest.rfind(':');
  int port = 0;
  if (rest.empty() || colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(rest.substr(colon + 1), &port) || port <= 0 || port > 65535) {
    return Invalid(field, absl::StrCat("expected host:port or dns:///name:port, got \"", address, "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateSpec(const ExperimentSpec& spec) {
  // A display name only, but it ends up in logs, file contents and UIs: nothing path-like.
  const std::string& name = spec.name();
  if (name.size() > 128) return Invalid("spec.name", "at most 128 characters");
  if (absl::StrContains(name, "/") || absl::StrContains(name, "\\") || absl::StrContains(name, "..")) {
    return Invalid("spec.name", absl::StrCat("must not look like a path: \"", name, "\""));
  }
  for (char c : name) {
    if (static_cast<unsigned char>(c) < ' ' || c == 0x7f) {
      return Invalid("spec.name", "must not contain control characters");
    }
  }

  MSTPERF_RETURN_IF_ERROR(ValidateUrl("spec.target.url", spec.target().url()));
  if (!v1::Api_IsValid(spec.target().api())) {
    return Invalid("spec.target.api", absl::StrCat("unknown API ", spec.target().api()));
  }
  if (!spec.target().metrics_url().empty()) {
    MSTPERF_RETURN_IF_ERROR(ValidateUrl("spec.target.metrics_url", spec.target().metrics_url()));
  }
  for (double t : {spec.target().connect_timeout_s(), spec.target().first_token_timeout_s(),
                   spec.target().idle_timeout_s(), spec.target().total_timeout_s()}) {
    if (!Finite(t) || t < 0) return Invalid("spec.target", "timeouts must be >= 0 seconds");
  }

  if (spec.tokens_size() == 0) {
    return Invalid("spec.tokens", "at least one input:output pair is required (TOKENS_LIST)");
  }
  for (int i = 0; i < spec.tokens_size(); ++i) {
    const std::string field = absl::StrCat("spec.tokens[", i, "]");
    const v1::TokenPair& pair = spec.tokens(i);
    if (!pair.has_input()) return Invalid(field + ".input", "required");
    if (!pair.has_output()) return Invalid(field + ".output", "required");
    MSTPERF_RETURN_IF_ERROR(ValidateRange(field + ".input", pair.input()));
    MSTPERF_RETURN_IF_ERROR(ValidateRange(field + ".output", pair.output()));
    if (!pair.label().empty() && !IsSafePathComponent(pair.label())) {
      return Invalid(field + ".label",
                     absl::StrCat("must be [A-Za-z0-9._-], not path-like: \"", pair.label(), "\""));
    }
  }

  if (!Finite(spec.duration_s()) || spec.duration_s() <= 0) {
    return Invalid("spec.duration_s", absl::StrCat("must be > 0 seconds, got ", spec.duration_s()));
  }
  if (spec.duration_s() > 7 * 24 * 3600) return Invalid("spec.duration_s", "longer than a week");

  if (spec.req_min_start_size() == 0) {
    return Invalid("spec.req_min_start", "required (REQ_MIN_START)");
  }
  if (spec.req_min_start_size() != 1 && spec.req_min_start_size() != spec.tokens_size()) {
    return Invalid("spec.req_min_start",
                   absl::StrCat("one value, or one per pair (", spec.tokens_size(), "); got ",
                                spec.req_min_start_size()));
  }
  for (int i = 0; i < spec.req_min_start_size(); ++i) {
    double v = spec.req_min_start(i);
    if (!Finite(v) || v <= 0) {
      return Invalid(absl::StrCat("spec.req_min_start[", i, "]"), absl::StrCat("must be > 0, got ", v));
    }
  }

  // 0 means the default (2); anything else must grow the rate.
  if (!Finite(spec.multiplier()) || (spec.multiplier() != 0 && spec.multiplier() <= 1)) {
    return Invalid("spec.multiplier", absl::StrCat("must be > 1, got ", spec.multiplier()));
  }
  if (!v1::ThresholdType_IsValid(spec.threshold_type())) {
    return Invalid("spec.threshold_type", absl::StrCat("unknown threshold type ", spec.threshold_type()));
  }
  if (!Finite(spec.stop_threshold()) || spec.stop_threshold() <= 0) {
    return Invalid("spec.stop_threshold", absl::StrCat("must be > 0, got ", spec.stop_threshold()));
  }
  if (spec.threshold_type() == v1::THRESHOLD_TYPE_RELATIVE && spec.stop_threshold() >= 1) {
    return Invalid("spec.stop_threshold",
                   absl::StrCat("a relative threshold is a fraction of M, must be < 1, got ",
                                spec.stop_threshold()));
  }
  if (!Finite(spec.filter_buffer_s())) return Invalid("spec.filter_buffer_s", "must be finite");
  if (spec.filter_buffer_s() >= 0 && 2 * spec.filter_buffer_s() >= spec.duration_s()) {
    return Invalid("spec.filter_buffer_s",
                   absl::StrCat("trims ", spec.filter_buffer_s(), " s from both ends of a ",
                                spec.duration_s(), " s iteration: nothing would be left"));
  }
  if (!Finite(spec.success_rate_pct()) || spec.success_rate_pct() < 0 || spec.success_rate_pct() > 100) {
    return Invalid("spec.success_rate_pct", absl::StrCat("must be in [0, 100], got ", spec.success_rate_pct()));
  }
  if (!Finite(spec.cooldown_s()) || spec.cooldown_s() < 0) {
    return Invalid("spec.cooldown_s", absl::StrCat("must be >= 0 seconds, got ", spec.cooldown_s()));
  }
  if (!v1::EvaluatorMode_IsValid(spec.evaluator_mode())) {
    return Invalid("spec.evaluator_mode", absl::StrCat("unknown mode ", spec.evaluator_mode()));
  }
  if (!v1::Arrival_IsValid(spec.arrival())) {
    return Invalid("spec.arrival", absl::StrCat("unknown arrival process ", spec.arrival()));
  }
  if (!Finite(spec.gamma_shape()) || spec.gamma_shape() < 0) {
    return Invalid("spec.gamma_shape", absl::StrCat("must be >= 0, got ", spec.gamma_shape()));
  }
  if (!Finite(spec.max_send_lag_p99_us()) || spec.max_send_lag_p99_us() < 0) {
    return Invalid("spec.max_send_lag_p99_us", absl::StrCat("must be >= 0, got ", spec.max_send_lag_p99_us()));
  }
  if (spec.max_iterations() > 10000) {
    return Invalid("spec.max_iterations", absl::StrCat("at most 10000, got ", spec.max_iterations()));
  }
  for (int i = 0; i < spec.loadgen_addresses_size(); ++i) {
    MSTPERF_RETURN_IF_ERROR(ValidateLoadgenAddress(absl::StrCat("spec.loadgen_addresses[", i, "]"),
                                                     spec.loadgen_addresses(i)));
  }
  const v1::Slo& slo = spec.slo();
  if (!Finite(slo.percentile()) || slo.percentile() < 0 || slo.percentile() > 100) {
    return Invalid("spec.slo.percentile", absl::StrCat("must be in (0, 100], got ", slo.percentile()));
  }
  for (auto [field, value] : {std::pair{"spec.slo.ttft_ms", slo.ttft_ms()},
                              std::pair{"spec.slo.itl_ms", slo.itl_ms()},
                              std::pair{"spec.slo.e2e_ms", slo.e2e_ms()},
                              std::pair{"spec.slo.tpot_ms", slo.tpot_ms()}}) {
    if (!Finite(value) || value < 0) return Invalid(field, absl::StrCat("must be >= 0, got ", value));
  }
  if (!Finite(slo.max_error_rate_pct()) || slo.max_error_rate_pct() < 0 || slo.max_error_rate_pct() > 100) {
    return Invalid("spec.slo.max_error_rate_pct", "must be in [0, 100]");
  }
  if (absl::StrContains(spec.prompt().corpus_path(), std::string(1, '\0'))) {
    return Invalid("spec.prompt.corpus_path", "must not contain NUL");
  }
  return absl::OkStatus();
}

}  // namespace

bool IsSafePathComponent(const std::string& name) { return SafeName(name, 128); }

absl::Status ValidateExperimentId(const std::string& field, const std::string& id) {
  if (id.empty()) return Invalid(field, "required");
  if (!SafeName(id, 64)) {
    return Invalid(field, absl::StrCat("must be 1-64 characters of [A-Za-z0-9._-], not path-like: \"",
                                       id, "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateStartRequest(const v1::StartExperimentRequest& request) {
  if (!request.experiment_id().empty()) {
    MSTPERF_RETURN_IF_ERROR(ValidateExperimentId("experiment_id", request.experiment_id()));
  }
  if (!request.has_spec()) return Invalid("spec", "required");
  return ValidateSpec(request.spec());
}

std::string PairLabel(const v1::TokenPair& pair) {
  auto side = [](const v1::TokenRange& r) {
    return r.min() == r.max() ? absl::StrCat(r.min()) : absl::StrCat(r.min(), "-", r.max());
  };
  return absl::StrCat(side(pair.input()), "_", side(pair.output()));
}

void ApplyDefaults(ExperimentSpec* spec) {
  if (spec->multiplier() == 0) spec->set_multiplier(2.0);
  if (spec->max_iterations() == 0) spec->set_max_iterations(100);
  if (spec->success_rate_pct() == 0) spec->set_success_rate_pct(95);
  if (spec->threshold_type() == v1::THRESHOLD_TYPE_UNSPECIFIED) {
    spec->set_threshold_type(v1::THRESHOLD_TYPE_ABSOLUTE);
  }
  if (spec->evaluator_mode() == v1::EVALUATOR_MODE_UNSPECIFIED) {
    spec->set_evaluator_mode(v1::EVALUATOR_MODE_DEFAULT);
  }
  if (spec->arrival() == v1::ARRIVAL_UNSPECIFIED) spec->set_arrival(v1::ARRIVAL_POISSON);
  if (spec->target().api() == v1::API_UNSPECIFIED) spec->mutable_target()->set_api(v1::API_COMPLETIONS);
  if (spec->filter_buffer_s() < 0 && spec->evaluator_mode() == v1::EVALUATOR_MODE_MOST) {
    spec->set_filter_buffer_s(300);
  }
  for (v1::TokenPair& pair : *spec->mutable_tokens()) {
    if (pair.label().empty()) pair.set_label(PairLabel(pair));
  }
}

SearchConfig SearchConfigFor(const ExperimentSpec& spec, int pair_index) {
  SearchConfig config;
  config.mode = spec.evaluator_mode() == v1::EVALUATOR_MODE_MOST ? SearchMode::kMost
                                                                  : SearchMode::kDefault;
  config.start = spec.req_min_start_size() == 1 ? spec.req_min_start(0)
                                                : spec.req_min_start(pair_index);
  config.multiplier = spec.multiplier() == 0 ? 2.0 : spec.multiplier();
  config.stop_threshold = spec.stop_threshold();
  config.relative = spec.threshold_type() == v1::THRESHOLD_TYPE_RELATIVE;
  config.max_iterations = spec.max_iterations() == 0 ? 100 : spec.max_iterations();
  return config;
}

}  // namespace mstperf::controller
