#include "services/ctl/env_file.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace mstperf::ctl {
namespace {

using mstperf::v1::ExperimentSpec;
using mstperf::v1::TokenPair;
using mstperf::v1::TokenRange;

bool IsKeyStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsKeyChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

absl::Status LineError(int line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", message));
}

// Parses the value part of a line (after '='): quotes, escapes, trailing comments.
absl::StatusOr<std::string> ParseValue(absl::string_view raw, int line, absl::string_view key) {
  absl::string_view v = absl::StripAsciiWhitespace(raw);
  if (v.empty()) return std::string();
  const char quote = v.front();
  if (quote == '"' || quote == '\'') {
    std::string out;
    size_t i = 1;
    bool closed = false;
    for (; i < v.size(); ++i) {
      char c = v[i];
      if (c == quote) {
        closed = true;
        ++i;
        break;
      }
      if (quote == '"' && c == '\\' && i + 1 < v.size()) {
        char n = v[++i];
        switch (n) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '$': out += '$'; break;
          default: out += '\\'; out += n; break;
        }
        continue;
      }
      out += c;
    }
    if (!closed) {
      return LineError(line, absl::StrCat(key, ": unterminated ", quote == '"' ? "double" : "single",
                                          " quote (expected a closing ", std::string(1, quote),
                                          " on the same line)"));
    }
    absl::string_view rest = absl::StripAsciiWhitespace(v.substr(i));
    if (!rest.empty() && rest.front() != '#') {
      return LineError(line, absl::StrCat(key, ": unexpected text after the closing quote: \"",
                                          rest, "\" (expected nothing or a # comment)"));
    }
    return out;
  }
  // Unquoted: a '#' that starts the value or follows whitespace begins a comment.
  size_t cut = v.size();
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(v[i - 1])))) {
      cut = i;
      break;
    }
  }
  return std::string(absl::StripAsciiWhitespace(v.substr(0, cut)));
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

absl::StatusOr<uint32_t> ParseTokenCount(absl::string_view text) {
  uint32_t n = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &n) || n == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a positive whole number of tokens"));
  }
  return n;
}

// "n" or "a-b" (a <= b) -> range; `text` is also what the folder label uses.
absl::StatusOr<TokenRange> ParseTokenRange(absl::string_view text, std::string* label) {
  text = absl::StripAsciiWhitespace(text);
  TokenRange range;
  std::vector<absl::string_view> parts = absl::StrSplit(text, '-');
  if (parts.size() == 1) {
    auto n = ParseTokenCount(parts[0]);
    if (!n.ok()) return n.status();
    range.set_min(*n);
    range.set_max(*n);
    *label = absl::StrCat(*n);
  } else if (parts.size() == 2) {
    auto a = ParseTokenCount(parts[0]);
    if (!a.ok()) return a.status();
    auto b = ParseTokenCount(parts[1]);
    if (!b.ok()) return b.status();
    if (*a > *b) {
      return absl::InvalidArgumentError(
          absl::StrCat("range \"", text, "\" has its minimum above its maximum"));
    }
    range.set_min(*a);
    range.set_max(*b);
    *label = absl::StrCat(*a, "-", *b);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is neither a token count nor a range min-max"));
  }
  return range;
}

absl::StatusOr<double> ParseNumber(absl::string_view text) {
  double d = 0;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &d) || !std::isfinite(d)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a number"));
  }
  return d;
}

absl::StatusOr<bool> ParseBool(absl::string_view text) {
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (s == "1" || s == "true" || s == "yes" || s == "y" || s == "on") return true;
  if (s == "0" || s == "false" || s == "no" || s == "n" || s == "off") return false;
  return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not true or false"));
}

// Everything the key handlers fill, before the cross-key checks.
struct Builder {
  ExperimentSpec spec;
  std::map<std::string, int> line_of;  // key -> line it was set on
  std::vector<double> req_min_start;
  // MIN/MAX_INPUT/OUTPUT_TOKENS, used only when TOKENS_LIST is absent.
  std::map<std::string, uint32_t> legacy_tokens;
};

using Handler = std::function<absl::Status(absl::string_view value, Builder& b)>;

struct KeyInfo {
  EnvKeyDoc doc;
  Handler handle;
};

// Wraps a parser so its message becomes "expected <what>, got ...".
absl::Status Expect(const absl::Status& s, absl::string_view what) {
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat("expected ", what, "; ", s.message()));
}

Handler NumberKey(std::function<void(double, Builder&)> set, std::function<bool(double)> ok,
                  std::string what) {
  return [set, ok, what](absl::string_view v, Builder& b) -> absl::Status {
    auto d = ParseNumber(v);
    if (!d.ok()) return Expect(d.status(), what);
    if (!ok(*d)) return absl::InvalidArgumentError(absl::StrCat("expected ", what, ", got ", v));
    set(*d, b);
    return absl::OkStatus();
  };
}

Handler DurationKey(std::function<void(double, Builder&)> set, bool allow_zero) {
  return [set, allow_zero](absl::string_view v, Builder& b) -> absl::Status {
    auto d = ParseDurationSeconds(v, allow_zero);
    if (!d.ok()) return d.status();
    set(*d, b);
    return absl::OkStatus();
  };
}

Handler BoolKey(std::function<void(bool, Builder&)> set) {
  return [set](absl::string_view v, Builder& b) -> absl::Status {
    auto x = ParseBool(v);
    if (!x.ok()) return Expect(x.status(), "true or false");
    set(*x, b);
    return absl::OkStatus();
  };
}

Handler StringKey(std::function<void(std::string, Builder&)> set) {
  return [set](absl::string_view v, Builder& b) -> absl::Status {
    set(std::string(v), b);
    return absl::OkStatus();
  };
}

Handler LegacyTokenKey(std::string key) {
  return [key](absl::string_view v, Builder& b) -> absl::Status {
    auto n = ParseTokenCount(v);
    if (!n.ok()) return Expect(n.status(), "a positive whole number of tokens");
    b.legacy_tokens[key] = *n;
    return absl::OkStatus();
  };
}

bool Positive(double d) { return d > 0; }
bool NonNegative(double d) { return d >= 0; }

const std::vector<KeyInfo>& Keys() {
  static const auto* keys = new std::vector<KeyInfo>{
      // --- the original tool's keys ---
      {{"URL", "(required)",
        "endpoint: http(s)://host:port or the original's bare host:port; /v1/... is appended"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         for (char c : v) {
           if (std::isspace(static_cast<unsigned char>(c))) {
             return absl::InvalidArgumentError(
                 absl::StrCat("expected a URL such as http://127.0.0.1:8000 without spaces, got \"",
                              v, "\""));
           }
         }
         b.spec.mutable_target()->set_url(std::string(v));
         return absl::OkStatus();
       }},
      {{"DURATION", "(required)",
        "length of one iteration: 1800s, 30s, 5m, 1h30m, or bare seconds"},
       DurationKey([](double d, Builder& b) { b.spec.set_duration_s(d); }, false)},
      {{"TOKENS_LIST", "(required)",
        "comma-separated in:out pairs, either side may be a range min-max: 32:32,64:64,16-64:128"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         auto pairs = ParseTokensList(v);
         if (!pairs.ok()) return pairs.status();
         b.spec.clear_tokens();
         for (auto& p : *pairs) *b.spec.add_tokens() = p;
         return absl::OkStatus();
       }},
      {{"REQ_MIN_START", "1", "first REQ_MIN (requests/min): one value, or one per TOKENS_LIST pair"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         b.req_min_start.clear();
         for (absl::string_view part : absl::StrSplit(v, ',')) {
           auto d = ParseNumber(part);
           if (!d.ok() || *d <= 0) {
             return absl::InvalidArgumentError(absl::StrCat(
                 "expected positive requests per minute, one value or one per pair "
                 "(e.g. 60 or 60,30,15), got \"",
                 absl::StripAsciiWhitespace(part), "\""));
           }
           b.req_min_start.push_back(*d);
         }
         return absl::OkStatus();
       }},
      {{"REQ_MIN_INCREASE_MULTIPLIER", "2", "stage-1 growth factor (> 1)"},
       NumberKey([](double d, Builder& b) { b.spec.set_multiplier(d); },
                 [](double d) { return d > 1; }, "a number greater than 1")},
      {{"STOP_THRESHOLD", "0.5",
        "stage-2 stop: M - m <= STOP_THRESHOLD (absolute) or <= M * STOP_THRESHOLD (relative)"},
       NumberKey([](double d, Builder& b) { b.spec.set_stop_threshold(d); }, Positive,
                 "a positive number")},
      {{"THRESHOLD_TYPE", "absolute", "absolute or relative (see STOP_THRESHOLD)"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         std::string s = absl::AsciiStrToLower(v);
         if (s == "absolute") {
           b.spec.set_threshold_type(mstperf::v1::THRESHOLD_TYPE_ABSOLUTE);
         } else if (s == "relative") {
           b.spec.set_threshold_type(mstperf::v1::THRESHOLD_TYPE_RELATIVE);
         } else {
           return absl::InvalidArgumentError(
               absl::StrCat("expected absolute or relative, got \"", v, "\""));
         }
         return absl::OkStatus();
       }},
      {{"FILTER_BUFFER", "(mode default: 300 s in most mode)",
        "seconds trimmed from both ends of an iteration before judging it"},
       DurationKey([](double d, Builder& b) { b.spec.set_filter_buffer_s(d); }, true)},
      {{"SUCCESS_RATE", "95", "minimum success rate, percent (0, 100]"},
       NumberKey([](double d, Builder& b) { b.spec.set_success_rate_pct(d); },
                 [](double d) { return d > 0 && d <= 100; }, "a percentage in (0, 100]")},
      {{"COOLDOWN", "0", "wait between iterations (seconds or a duration; alias ITERATION_COOLDOWN_SECONDS)"},
       DurationKey([](double d, Builder& b) { b.spec.set_cooldown_s(d); }, true)},
      {{"MODEL", "(first model of GET /v1/models)", "model name sent with every request"},
       StringKey([](std::string s, Builder& b) { b.spec.mutable_target()->set_model(s); })},
      // --- mstperf's keys ---
      {{"NAME", "(empty)", "display name of the experiment"},
       StringKey([](std::string s, Builder& b) { b.spec.set_name(s); })},
      {{"API", "completions", "completions (/v1/completions) or chat (/v1/chat/completions)"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         auto a = ParseApi(v);
         if (!a.ok()) return a.status();
         b.spec.mutable_target()->set_api(*a);
         return absl::OkStatus();
       }},
      {{"EVALUATOR_MODE", "default",
        "most (the original's verdict, exactly) or default (mstperf's: backlog, drift, SLOs)"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         auto m = ParseEvaluatorMode(v);
         if (!m.ok()) return m.status();
         b.spec.set_evaluator_mode(*m);
         return absl::OkStatus();
       }},
      {{"ARRIVAL", "poisson", "arrival process: constant, poisson or gamma"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         auto a = ParseArrival(v);
         if (!a.ok()) return a.status();
         b.spec.set_arrival(*a);
         return absl::OkStatus();
       }},
      {{"GAMMA_SHAPE", "1", "gamma arrivals: shape (< 1 is burstier than Poisson)"},
       NumberKey([](double d, Builder& b) { b.spec.set_gamma_shape(d); }, Positive,
                 "a positive number")},
      {{"SEED", "0", "seed of schedules, token lengths and prompts (same seed, same load)"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         uint64_t s = 0;
         if (!absl::SimpleAtoi(v, &s)) {
           return absl::InvalidArgumentError(
               absl::StrCat("expected a non-negative whole number, got \"", v, "\""));
         }
         b.spec.set_seed(s);
         return absl::OkStatus();
       }},
      {{"MAX_ITERATIONS", "100", "most iterations per pair (the original's limit is 100; alias ITERATION_HARD_LIMIT)"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         uint32_t n = 0;
         if (!absl::SimpleAtoi(v, &n) || n == 0) {
           return absl::InvalidArgumentError(
               absl::StrCat("expected a positive whole number, got \"", v, "\""));
         }
         b.spec.set_max_iterations(n);
         return absl::OkStatus();
       }},
      {{"LOADGEN_ADDRESSES", "(the controller's --loadgen)",
        "comma-separated loadgen gRPC addresses host:port, or one dns:///name:port"},
       [](absl::string_view v, Builder& b) -> absl::Status {
         b.spec.clear_loadgen_addresses();
         for (absl::string_view a : absl::StrSplit(v, ',')) {
           a = absl::StripAsciiWhitespace(a);
           if (a.empty() || a.find(' ') != absl::string_view::npos) {
             return absl::InvalidArgumentError(absl::StrCat(
                 "expected comma-separated host:port addresses, got \"", v, "\""));
           }
           b.spec.add_loadgen_addresses(std::string(a));
         }
         return absl::OkStatus();
       }},
      {{"EARLY_STOP", "true (default mode)",
        "default mode: stop an iteration as soon as its verdict is certain"},
       BoolKey([](bool x, Builder& b) { b.spec.set_early_stop(x); })},
      {{"MAX_SEND_LAG_MS", "5",
        "default mode: send-lag p99 above which the client, not the server, is the limit"},
       NumberKey([](double d, Builder& b) { b.spec.set_max_send_lag_p99_us(d * 1000); },
                 [](double d) { return d > 0; }, "milliseconds > 0")},
      {{"SLO_PERCENTILE", "99", "percentile the SLO_*_MS limits apply to"},
       NumberKey([](double d, Builder& b) { b.spec.mutable_slo()->set_percentile(d); },
                 [](double d) { return d > 0 && d <= 100; }, "a percentile in (0, 100]")},
      {{"SLO_TTFT_MS", "(not checked)", "time-to-first-token limit, ms"},
       NumberKey([](double d, Builder& b) { b.spec.mutable_slo()->set_ttft_ms(d); }, NonNegative,
                 "milliseconds >= 0")},
      {{"SLO_ITL_MS", "(not checked)", "inter-token latency limit, ms"},
       NumberKey([](double d, Builder& b) { b.spec.mutable_slo()->set_itl_ms(d); }, NonNegative,
                 "milliseconds >= 0")},
      {{"SLO_TPOT_MS", "(not checked)", "time-per-output-token limit, ms"},
       NumberKey([](double d, Builder& b) { b.spec.mutable_slo()->set_tpot_ms(d); }, NonNegative,
                 "milliseconds >= 0")},
      {{"SLO_E2E_MS", "(not checked)", "end-to-end latency limit, ms"},
       NumberKey([](double d, Builder& b) { b.spec.mutable_slo()->set_e2e_ms(d); }, NonNegative,
                 "milliseconds >= 0")},
      {{"SLO_ERROR_RATE", "(not checked)", "largest error rate, percent"},
       NumberKey([](double d, Builder& b) { b.spec.mutable_slo()->set_max_error_rate_pct(d); },
                 [](double d) { return d >= 0 && d <= 100; }, "a percentage in [0, 100]")},
      {{"API_KEY_ENV", "(none)",
        "environment variable of the loadgen holding an API key (sent as Bearer)"},
       StringKey([](std::string s, Builder& b) { b.spec.mutable_target()->set_api_key_env(s); })},
      {{"API_KEY_FILE", "(none)", "file on the loadgen host holding an API key"},
       StringKey([](std::string s, Builder& b) { b.spec.mutable_target()->set_api_key_file(s); })},
      {{"CA_BUNDLE", "(system)", "CA bundle for https targets"},
       StringKey(
           [](std::string s, Builder& b) { b.spec.mutable_target()->set_ca_bundle_path(s); })},
      {{"TLS_INSECURE", "false", "skip TLS verification (self-signed test servers only)"},
       BoolKey([](bool x, Builder& b) { b.spec.mutable_target()->set_tls_insecure(x); })},
      {{"HTTP2", "false", "prefer HTTP/2"},
       BoolKey([](bool x, Builder& b) { b.spec.mutable_target()->set_http2(x); })},
      {{"CONNECT_TIMEOUT", "(loadgen default)", "connect timeout"},
       DurationKey(
           [](double d, Builder& b) { b.spec.mutable_target()->set_connect_timeout_s(d); }, true)},
      {{"FIRST_TOKEN_TIMEOUT", "(loadgen default)", "send -> first token timeout (alias TTFT_TIMEOUT)"},
       DurationKey(
           [](double d, Builder& b) { b.spec.mutable_target()->set_first_token_timeout_s(d); },
           true)},
      {{"IDLE_TIMEOUT", "(loadgen default)", "longest gap between two chunks"},
       DurationKey([](double d, Builder& b) { b.spec.mutable_target()->set_idle_timeout_s(d); },
                   true)},
      {{"TOTAL_TIMEOUT", "(loadgen default)", "send -> end of stream timeout (alias REQUEST_TIMEOUT)"},
       DurationKey([](double d, Builder& b) { b.spec.mutable_target()->set_total_timeout_s(d); },
                   true)},
      {{"METRICS_URL", "(none)", "the target's Prometheus /metrics URL, sampled per iteration"},
       StringKey([](std::string s, Builder& b) { b.spec.mutable_target()->set_metrics_url(s); })},
      {{"PROMPT_CORPUS", "(built-in)", "prompt corpus on the loadgen host (.txt or .jsonl)"},
       StringKey([](std::string s, Builder& b) { b.spec.mutable_prompt()->set_corpus_path(s); })},
      {{"USE_TOKENIZE", "true", "make prompts exact with the target's POST /tokenize"},
       BoolKey([](bool x, Builder& b) { b.spec.mutable_prompt()->set_use_tokenize_endpoint(x); })},
      // Derived per pair from TOKENS_LIST in the original; read only when TOKENS_LIST is absent.
      {{"MIN_INPUT_TOKENS", "(from TOKENS_LIST)", "used only when TOKENS_LIST is absent"},
       LegacyTokenKey("MIN_INPUT_TOKENS")},
      {{"MAX_INPUT_TOKENS", "(from TOKENS_LIST)", "used only when TOKENS_LIST is absent"},
       LegacyTokenKey("MAX_INPUT_TOKENS")},
      {{"MIN_OUTPUT_TOKENS", "(from TOKENS_LIST)", "used only when TOKENS_LIST is absent"},
       LegacyTokenKey("MIN_OUTPUT_TOKENS")},
      {{"MAX_OUTPUT_TOKENS", "(from TOKENS_LIST)", "used only when TOKENS_LIST is absent"},
       LegacyTokenKey("MAX_OUTPUT_TOKENS")},
  };
  return *keys;
}

// Later versions of the original spelled some keys differently.
const std::map<std::string, std::string>& Aliases() {
  static const auto* aliases = new std::map<std::string, std::string>{
      {"ITERATION_HARD_LIMIT", "MAX_ITERATIONS"},
      {"ITERATION_COOLDOWN_SECONDS", "COOLDOWN"},
      {"REQUEST_TIMEOUT", "TOTAL_TIMEOUT"},
      {"TTFT_TIMEOUT", "FIRST_TOKEN_TIMEOUT"},
  };
  return *aliases;
}

// Keys the original (or fmperf) reads that have no meaning here: accepted with a warning, so
// an existing .env works unchanged and the user learns what is not used.
bool IsIgnoredOriginalKey(absl::string_view key) {
  static const auto* keys = new std::vector<std::string>{
      "GPUS", "CPUS", "NODE", "TARGET", "MODEL_DISCOVERY_TIMEOUT", "BACKOFF", "GRACE_PERIOD",
      "TPOT_TIMEOUT", "WORKER_RPM_CAPACITY", "MAX_WORKERS", "FRAC_GREEDY", "SAMPLE_SIZE",
      "EXPERIMENT_TYPE", "SERVICE_TYPE", "USE_CASES_YAML", "WORKLOAD_MIXES",
      "TOKENS_LIST_PROPORTION", "ADDITIVE", "REQUESTS_FILENAME", "REQ_MIN", "PROMPTS_FILE"};
  return std::find(keys->begin(), keys->end(), key) != keys->end();
}

const KeyInfo* FindKey(absl::string_view key) {
  for (const auto& k : Keys()) {
    if (key == k.doc.key) return &k;
  }
  return nullptr;
}

std::string ClosestKey(absl::string_view key) {
  std::string best;
  size_t best_d = 4;  // suggest only near misses
  for (const auto& k : Keys()) {
    size_t d = EditDistance(key, k.doc.key);
    if (d < best_d) {
      best_d = d;
      best = k.doc.key;
    }
  }
  return best;
}

}  // namespace

absl::StatusOr<std::vector<EnvEntry>> ParseEnvEntries(absl::string_view text) {
  std::vector<EnvEntry> entries;
  int line_no = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_no;
    absl::string_view line = absl::StripAsciiWhitespace(raw);  // also drops a trailing \r
    if (line.empty() || line.front() == '#') continue;
    if (absl::StartsWith(line, "export") && line.size() > 6 &&
        std::isspace(static_cast<unsigned char>(line[6]))) {
      line = absl::StripLeadingAsciiWhitespace(line.substr(6));
    }
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return LineError(line_no, absl::StrCat("expected KEY=VALUE, got \"", line, "\""));
    }
    absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, eq));
    if (key.empty() || !IsKeyStart(key.front()) ||
        !std::all_of(key.begin(), key.end(), IsKeyChar)) {
      return LineError(line_no, absl::StrCat("expected a KEY made of letters, digits and _ before "
                                             "'=', got \"",
                                             key, "\""));
    }
    auto value = ParseValue(line.substr(eq + 1), line_no, key);
    if (!value.ok()) return value.status();
    entries.push_back({std::string(key), *std::move(value), line_no});
  }
  return entries;
}

absl::StatusOr<EnvSpec> SpecFromEnvText(absl::string_view text, absl::string_view source) {
  auto entries = ParseEnvEntries(text);
  if (!entries.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, " ", entries.status().message()));
  }
  EnvSpec out;
  Builder b;
  auto where = [&](int line, absl::string_view key) {
    return absl::StrCat(source, " line ", line, ": ", key);
  };
  for (const EnvEntry& e : *entries) {
    std::string key = e.key;
    if (auto a = Aliases().find(key); a != Aliases().end()) key = a->second;
    const KeyInfo* info = FindKey(key);
    if (info == nullptr) {
      if (IsIgnoredOriginalKey(key)) {
        out.warnings.push_back(absl::StrCat(
            where(e.line, key), " is read by the original tool but has no effect in mstperf "
                                "(ignored)"));
      } else {
        std::string hint = ClosestKey(key);
        out.warnings.push_back(absl::StrCat(
            where(e.line, key), " is not a key mstperf knows (ignored)",
            hint.empty() ? "" : absl::StrCat("; did you mean ", hint, "?")));
      }
      continue;
    }
    if (auto prev = b.line_of.find(key); prev != b.line_of.end()) {
      out.warnings.push_back(absl::StrCat(where(e.line, key), " is also set on line ",
                                          prev->second, "; the later line wins"));
    }
    b.line_of[key] = e.line;
    if (e.value.empty()) continue;  // KEY= means "not set", as in the original
    absl::Status s = info->handle(e.value, b);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where(e.line, e.key), ": ", s.message()));
    }
  }

  // Cross-key checks and defaults.
  auto missing = [&](absl::string_view key, absl::string_view example) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", key, " is required (e.g. ", key, "=", example, ")"));
  };
  ExperimentSpec& spec = b.spec;
  if (spec.target().url().empty()) return missing("URL", "127.0.0.1:8000");
  if (spec.duration_s() <= 0) return missing("DURATION", "30s");
  if (spec.tokens_size() == 0) {
    auto& lt = b.legacy_tokens;
    if (lt.count("MIN_INPUT_TOKENS") && lt.count("MIN_OUTPUT_TOKENS")) {
      // The seed's own form: one pair from MIN/MAX_INPUT/OUTPUT_TOKENS.
      uint32_t in_min = lt["MIN_INPUT_TOKENS"];
      uint32_t in_max = lt.count("MAX_INPUT_TOKENS") ? lt["MAX_INPUT_TOKENS"] : in_min;
      uint32_t out_min = lt["MIN_OUTPUT_TOKENS"];
      uint32_t out_max = lt.count("MAX_OUTPUT_TOKENS") ? lt["MAX_OUTPUT_TOKENS"] : out_min;
      std::string text =
          absl::StrCat(in_min == in_max ? absl::StrCat(in_min) : absl::StrCat(in_min, "-", in_max),
                       ":",
                       out_min == out_max ? absl::StrCat(out_min)
                                          : absl::StrCat(out_min, "-", out_max));
      auto pair = ParseTokenPair(text);
      if (!pair.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": MIN/MAX_INPUT/OUTPUT_TOKENS: ", pair.status().message()));
      }
      *spec.add_tokens() = *pair;
      out.warnings.push_back(absl::StrCat(source, ": TOKENS_LIST is not set; using the pair ",
                                          text, " from MIN/MAX_INPUT/OUTPUT_TOKENS"));
    } else {
      return missing("TOKENS_LIST", "32:32,64:64");
    }
  }
  if (b.req_min_start.empty()) b.req_min_start.push_back(1);  // the original's default
  if (b.req_min_start.size() != 1 &&
      static_cast<int>(b.req_min_start.size()) != spec.tokens_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where(b.line_of["REQ_MIN_START"], "REQ_MIN_START"), ": has ", b.req_min_start.size(),
        " values but TOKENS_LIST has ", spec.tokens_size(),
        " pairs; expected one value, or one per pair"));
  }
  for (double r : b.req_min_start) spec.add_req_min_start(r);
  if (spec.multiplier() == 0) spec.set_multiplier(2.0);
  if (spec.stop_threshold() == 0) spec.set_stop_threshold(0.5);
  if (spec.threshold_type() == mstperf::v1::THRESHOLD_TYPE_UNSPECIFIED) {
    spec.set_threshold_type(mstperf::v1::THRESHOLD_TYPE_ABSOLUTE);
  }
  // Negative asks the controller for the mode's default; an explicit 0 stays 0.
  if (!b.line_of.count("FILTER_BUFFER")) spec.set_filter_buffer_s(-1);
  if (spec.success_rate_pct() == 0) spec.set_success_rate_pct(95);
  if (spec.evaluator_mode() == mstperf::v1::EVALUATOR_MODE_UNSPECIFIED) {
    spec.set_evaluator_mode(mstperf::v1::EVALUATOR_MODE_DEFAULT);
  }
  if (spec.arrival() == mstperf::v1::ARRIVAL_UNSPECIFIED) {
    spec.set_arrival(mstperf::v1::ARRIVAL_POISSON);
  }
  if (spec.max_iterations() == 0) spec.set_max_iterations(100);
  if (spec.target().api() == mstperf::v1::API_UNSPECIFIED) {
    spec.mutable_target()->set_api(mstperf::v1::API_COMPLETIONS);
  }
  if (!b.line_of.count("EARLY_STOP")) {
    spec.set_early_stop(spec.evaluator_mode() == mstperf::v1::EVALUATOR_MODE_DEFAULT);
  } else if (spec.early_stop() &&
             spec.evaluator_mode() == mstperf::v1::EVALUATOR_MODE_MOST) {
    out.warnings.push_back(absl::StrCat(where(b.line_of["EARLY_STOP"], "EARLY_STOP"),
                                        " has no effect with EVALUATOR_MODE=most (the original "
                                        "always runs the full DURATION)"));
    spec.set_early_stop(false);
  }
  if (!b.line_of.count("USE_TOKENIZE")) spec.mutable_prompt()->set_use_tokenize_endpoint(true);
  if (spec.arrival() != mstperf::v1::ARRIVAL_GAMMA && b.line_of.count("GAMMA_SHAPE")) {
    out.warnings.push_back(absl::StrCat(where(b.line_of["GAMMA_SHAPE"], "GAMMA_SHAPE"),
                                        " only applies with ARRIVAL=gamma (ignored)"));
  }
  out.spec = std::move(spec);
  return out;
}

const std::vector<EnvKeyDoc>& EnvKeyDocs() {
  static const auto* docs = [] {
    auto* v = new std::vector<EnvKeyDoc>;
    for (const auto& k : Keys()) v->push_back(k.doc);
    return v;
  }();
  return *docs;
}

absl::StatusOr<TokenPair> ParseTokenPair(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  std::vector<absl::string_view> sides = absl::StrSplit(text, ':');
  if (sides.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected in:out such as 32:64 or 16-64:128-256, got \"", text, "\""));
  }
  TokenPair pair;
  std::string in_label, out_label;
  auto in = ParseTokenRange(sides[0], &in_label);
  if (!in.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pair \"", text, "\": input side: ", in.status().message()));
  }
  auto out = ParseTokenRange(sides[1], &out_label);
  if (!out.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pair \"", text, "\": output side: ", out.status().message()));
  }
  *pair.mutable_input() = *in;
  *pair.mutable_output() = *out;
  pair.set_label(absl::StrCat(in_label, "_", out_label));
  return pair;
}

absl::StatusOr<std::vector<TokenPair>> ParseTokensList(absl::string_view text) {
  std::vector<TokenPair> pairs;
  int index = 0;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    ++index;
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expected comma-separated in:out pairs; entry ", index, " is empty"));
    }
    auto pair = ParseTokenPair(item);
    if (!pair.ok()) return pair.status();
    pairs.push_back(*std::move(pair));
  }
  if (pairs.empty()) {
    return absl::InvalidArgumentError("expected at least one in:out pair");
  }
  return pairs;
}

absl::StatusOr<double> ParseDurationSeconds(absl::string_view text, bool allow_zero) {
  text = absl::StripAsciiWhitespace(text);
  double seconds = 0;
  absl::Duration d;
  if (absl::SimpleAtod(text, &seconds) && std::isfinite(seconds)) {
    // A bare number is seconds.
  } else if (!text.empty() && std::isdigit(static_cast<unsigned char>(text.front())) &&
             absl::ParseDuration(text, &d) && d != absl::InfiniteDuration()) {
    seconds = absl::ToDoubleSeconds(d);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a duration such as 30s, 5m, 1800s or 1h30m, got \"", text, "\""));
  }
  if (seconds < 0 || (!allow_zero && seconds == 0)) {
    return absl::InvalidArgumentError(absl::StrCat("expected a duration ",
                                                   allow_zero ? ">= 0" : "> 0", ", got \"",
                                                   text, "\""));
  }
  return seconds;
}

absl::StatusOr<mstperf::v1::Api> ParseApi(absl::string_view text) {
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (s == "completions") return mstperf::v1::API_COMPLETIONS;
  if (s == "chat") return mstperf::v1::API_CHAT;
  return absl::InvalidArgumentError(
      absl::StrCat("expected completions or chat, got \"", text, "\""));
}

absl::StatusOr<mstperf::v1::Arrival> ParseArrival(absl::string_view text) {
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (s == "constant") return mstperf::v1::ARRIVAL_CONSTANT;
  if (s == "poisson") return mstperf::v1::ARRIVAL_POISSON;
  if (s == "gamma") return mstperf::v1::ARRIVAL_GAMMA;
  return absl::InvalidArgumentError(
      absl::StrCat("expected constant, poisson or gamma, got \"", text, "\""));
}

absl::StatusOr<mstperf::v1::EvaluatorMode> ParseEvaluatorMode(absl::string_view text) {
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (s == "most") return mstperf::v1::EVALUATOR_MODE_MOST;
  if (s == "default") return mstperf::v1::EVALUATOR_MODE_DEFAULT;
  return absl::InvalidArgumentError(
      absl::StrCat("expected most or default, got \"", text, "\""));
}

}  // namespace mstperf::ctl
