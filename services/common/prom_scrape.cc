#include "services/common/prom_scrape.h"

#include <curl/curl.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace mstperf::prom {
namespace {

bool IsNameStart(char c) { return absl::ascii_isalpha(c) || c == '_' || c == ':'; }
bool IsNameChar(char c) { return IsNameStart(c) || absl::ascii_isdigit(c); }
bool IsLabelNameStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsLabelNameChar(char c) { return IsLabelNameStart(c) || absl::ascii_isdigit(c); }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// A cursor over one line.
class LineReader {
 public:
  explicit LineReader(absl::string_view line) : line_(line) {}
  bool done() const { return pos_ >= line_.size(); }
  char peek() const { return done() ? '\0' : line_[pos_]; }
  void SkipBlanks() {
    while (!done() && IsBlank(line_[pos_])) ++pos_;
  }
  bool Consume(char c) {
    if (peek() != c || done()) return false;
    ++pos_;
    return true;
  }
  absl::string_view TakeWhile(bool (*pred)(char)) {
    size_t start = pos_;
    while (!done() && pred(line_[pos_])) ++pos_;
    return line_.substr(start, pos_ - start);
  }
  absl::string_view TakeToken() {  // up to the next blank
    size_t start = pos_;
    while (!done() && !IsBlank(line_[pos_])) ++pos_;
    return line_.substr(start, pos_ - start);
  }
  absl::string_view Rest() const { return done() ? absl::string_view() : line_.substr(pos_); }

 private:
  absl::string_view line_;
  size_t pos_ = 0;
};

// Go's strconv.ParseFloat, which Prometheus uses, accepts NaN/Inf in any case with an optional
// sign; strtod does too, plus hex floats and "infinity", which are rare enough to allow.
std::optional<double> ParseValue(absl::string_view token) {
  if (token.empty()) return std::nullopt;
  std::string copy(token);
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size()) return std::nullopt;
  // ERANGE on overflow gives +-HUGE_VAL (= Inf), on underflow a tiny number; both are what
  // ParseFloat returns too, so keep them.
  return v;
}

// Label value between quotes; the opening quote has been consumed.
absl::Status ReadLabelValue(LineReader& r, std::string* out) {
  while (!r.done()) {
    char c = r.peek();
    r.Consume(c);
    if (c == '"') return absl::OkStatus();
    if (c == '\\') {
      if (r.done()) break;
      char e = r.peek();
      r.Consume(e);
      switch (e) {
        case '\\': out->push_back('\\'); break;
        case '"': out->push_back('"'); break;
        case 'n': out->push_back('\n'); break;
        default:
          return absl::InvalidArgumentError(absl::StrCat("invalid escape '\\", std::string(1, e),
                                                         "' in label value"));
      }
      continue;
    }
    out->push_back(c);
  }
  return absl::InvalidArgumentError("unterminated label value");
}

absl::Status ParseSampleLine(absl::string_view line, Sample* sample) {
  LineReader r(line);
  r.SkipBlanks();
  if (!IsNameStart(r.peek())) return absl::InvalidArgumentError("expected a metric name");
  sample->name = std::string(r.TakeWhile(IsNameChar));
  r.SkipBlanks();
  if (r.Consume('{')) {
    while (true) {
      r.SkipBlanks();
      if (r.Consume('}')) break;
      if (!IsLabelNameStart(r.peek())) {
        return absl::InvalidArgumentError("expected a label name or '}'");
      }
      std::string label(r.TakeWhile(IsLabelNameChar));
      r.SkipBlanks();
      if (!r.Consume('=')) {
        return absl::InvalidArgumentError(absl::StrCat("expected '=' after label ", label));
      }
      r.SkipBlanks();
      if (!r.Consume('"')) {
        return absl::InvalidArgumentError(absl::StrCat("expected '\"' for label ", label));
      }
      std::string value;
      if (absl::Status s = ReadLabelValue(r, &value); !s.ok()) return s;
      for (const auto& [existing, unused] : sample->labels) {
        if (existing == label) {
          return absl::InvalidArgumentError(absl::StrCat("duplicate label ", label));
        }
      }
      sample->labels.emplace_back(std::move(label), std::move(value));
      r.SkipBlanks();
      if (r.Consume(',')) continue;
      if (r.Consume('}')) break;
      return absl::InvalidArgumentError("expected ',' or '}' in label set");
    }
  }
  r.SkipBlanks();
  absl::string_view value_token = r.TakeToken();
  std::optional<double> value = ParseValue(value_token);
  if (!value) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid value '", value_token, "' for ", sample->name));
  }
  sample->value = *value;
  r.SkipBlanks();
  if (!r.done()) {
    absl::string_view ts_token = r.TakeToken();
    int64_t ts = 0;
    if (!absl::SimpleAtoi(ts_token, &ts)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid timestamp '", ts_token, "'"));
    }
    sample->timestamp_ms = ts;
    r.SkipBlanks();
    if (!r.done()) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected text after timestamp: '",
                                                     r.Rest(), "'"));
    }
  }
  return absl::OkStatus();
}

std::string UnescapeHelp(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      if (text[i + 1] == '\\') { out.push_back('\\'); ++i; continue; }
      if (text[i + 1] == 'n') { out.push_back('\n'); ++i; continue; }
    }
    out.push_back(text[i]);
  }
  return out;
}

absl::Status ParseCommentLine(absl::string_view line, Exposition* out) {
  LineReader r(line);
  r.Consume('#');
  r.SkipBlanks();
  absl::string_view keyword = r.TakeToken();
  if (keyword != "HELP" && keyword != "TYPE") return absl::OkStatus();  // a plain comment
  r.SkipBlanks();
  absl::string_view name = r.TakeToken();
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid metric name '", name, "' in ",
                                                   keyword));
  }
  r.SkipBlanks();
  absl::string_view rest = r.Rest();
  if (keyword == "HELP") {
    out->help[std::string(name)] = UnescapeHelp(rest);
    return absl::OkStatus();
  }
  std::string type(absl::StripTrailingAsciiWhitespace(rest));
  static const char* const kTypes[] = {"counter", "gauge", "histogram", "summary", "untyped"};
  if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown type '", type, "' for ", name));
  }
  if (!out->types.emplace(std::string(name), type).second) {
    return absl::InvalidArgumentError(absl::StrCat("second TYPE line for ", name));
  }
  return absl::OkStatus();
}

void AppendEscapedLabelValue(absl::string_view value, std::string* out) {
  for (char c : value) {
    switch (c) {
      case '\\': out->append("\\\\"); break;
      case '"': out->append("\\\""); break;
      case '\n': out->append("\\n"); break;
      default: out->push_back(c);
    }
  }
}

bool Matches(const Sample& s, absl::string_view name,
             const std::vector<std::pair<std::string, std::string>>& labels) {
  if (s.name != name) return false;
  for (const auto& [k, v] : labels) {
    std::optional<std::string> have = s.Label(k);
    if (!have || *have != v) return false;
  }
  return true;
}

nlohmann::json NumberToJson(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return v;
}

}  // namespace

std::optional<std::string> Sample::Label(absl::string_view label_name) const {
  for (const auto& [k, v] : labels) {
    if (k == label_name) return v;
  }
  return std::nullopt;
}

std::string Sample::SeriesKey() const {
  if (labels.empty()) return name;
  std::vector<std::pair<std::string, std::string>> sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  std::string key = name + "{";
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0) key.push_back(',');
    absl::StrAppend(&key, sorted[i].first, "=\"");
    AppendEscapedLabelValue(sorted[i].second, &key);
    key.push_back('"');
  }
  key.push_back('}');
  return key;
}

std::vector<const Sample*> Exposition::Find(
    absl::string_view name, const std::vector<std::pair<std::string, std::string>>& labels) const {
  std::vector<const Sample*> found;
  for (const Sample& s : samples) {
    if (Matches(s, name, labels)) found.push_back(&s);
  }
  return found;
}

std::optional<double> Exposition::Value(
    absl::string_view name, const std::vector<std::pair<std::string, std::string>>& labels) const {
  std::vector<const Sample*> found = Find(name, labels);
  if (found.size() != 1) return std::nullopt;
  return found[0]->value;
}

double Exposition::Sum(absl::string_view name,
                       const std::vector<std::pair<std::string, std::string>>& labels) const {
  double sum = 0;
  for (const Sample* s : Find(name, labels)) sum += s->value;
  return sum;
}

bool Exposition::Has(absl::string_view name) const {
  return std::any_of(samples.begin(), samples.end(),
                     [&](const Sample& s) { return s.name == name; });
}

bool IsValidMetricName(absl::string_view name) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  return std::all_of(name.begin(), name.end(), IsNameChar);
}

absl::StatusOr<Exposition> ParseTextFormat(absl::string_view text) {
  Exposition out;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(line);
    if (trimmed.empty()) continue;
    absl::Status status;
    if (trimmed[0] == '#') {
      status = ParseCommentLine(trimmed, &out);
    } else {
      Sample sample;
      status = ParseSampleLine(trimmed, &sample);
      if (status.ok()) out.samples.push_back(std::move(sample));
    }
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", status.message()));
    }
  }
  return out;
}

std::vector<std::string> DefaultTargetMetricNames() {
  return {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc"};
}

std::map<std::string, double> SelectSeries(const Exposition& exposition,
                                           const std::vector<std::string>& names) {
  static const absl::string_view kSuffixes[] = {"_bucket", "_sum", "_count", "_total",
                                                   "_created"};
  auto wanted = [&](absl::string_view name) {
    if (std::find(names.begin(), names.end(), name) != names.end()) return true;
    for (absl::string_view suffix : kSuffixes) {
      if (absl::ConsumeSuffix(&name, suffix) &&
          std::find(names.begin(), names.end(), name) != names.end()) {
        return true;
      }
    }
    return false;
  };
  std::map<std::string, double> selected;
  for (const Sample& s : exposition.samples) {
    if (wanted(s.name)) selected[s.SeriesKey()] = s.value;
  }
  return selected;
}

nlohmann::json TargetSampleToJson(const TargetSample& sample) {
  nlohmann::json j;
  j["time_unix_us"] = sample.time_unix_us;
  if (!sample.error.empty()) {
    j["error"] = sample.error;
    return j;
  }
  nlohmann::json values = nlohmann::json::object();
  for (const auto& [key, value] : sample.values) values[key] = NumberToJson(value);
  j["values"] = std::move(values);
  return j;
}

nlohmann::json TargetSamplesToJson(const std::vector<TargetSample>& samples) {
  nlohmann::json j = nlohmann::json::array();
  for (const TargetSample& s : samples) j.push_back(TargetSampleToJson(s));
  return j;
}

absl::StatusOr<std::string> HttpGetText(const std::string& url, absl::Duration timeout) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::string body;
  char error[CURL_ERROR_SIZE] = {0};
  long timeout_ms = std::max<long>(1, absl::ToInt64Milliseconds(timeout));
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // safe on a worker thread
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION,
                   +[](char* p, size_t size, size_t n, void* user) -> size_t {
                     static_cast<std::string*>(user)->append(p, size * n);
                     return size * n;
                   });
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat("GET ", url, ": ", error[0] != '\0' ? error : curl_easy_strerror(rc)));
  }
  if (status < 200 || status >= 300) {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": HTTP ", status));
  }
  return body;
}

TargetMetricsSampler::TargetMetricsSampler(TargetMetricsSamplerOptions options, Fetcher fetcher)
    : options_(std::move(options)),
      fetcher_(fetcher ? std::move(fetcher) : Fetcher([timeout = options_.timeout](
                                                          const std::string& url) {
        return HttpGetText(url, timeout);
      })) {}

TargetMetricsSampler::~TargetMetricsSampler() { Stop(); }

absl::Status TargetMetricsSampler::Start() {
  if (options_.url.empty()) return absl::InvalidArgumentError("metrics_url: empty");
  if (!absl::StartsWith(options_.url, "http://") && !absl::StartsWith(options_.url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_url: '", options_.url, "' is not an http(s) URL"));
  }
  if (options_.interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("interval: must be > 0");
  }
  absl::MutexLock lock(&mu_);
  if (started_) return absl::FailedPreconditionError("sampler already started");
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

std::vector<TargetSample> TargetMetricsSampler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (!started_ || stopped_) return samples_;
    if (stopping_) {  // another thread is joining: wait for it rather than join twice
      mu_.Await(absl::Condition(&stopped_));
      return samples_;
    }
    stopping_ = true;
  }
  thread_.join();
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  return samples_;
}

std::vector<TargetSample> TargetMetricsSampler::Samples() const {
  absl::MutexLock lock(&mu_);
  return samples_;
}

void TargetMetricsSampler::Run() {
  absl::Time next = absl::Now();
  while (true) {
    PollOnce();
    next += options_.interval;
    // Skip polls missed while a slow scrape was running rather than bursting to catch up.
    absl::Time now = absl::Now();
    if (next < now) next = now + options_.interval;
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithDeadline(absl::Condition(&stopping_), next)) break;
  }
  PollOnce();  // the closing sample
}

void TargetMetricsSampler::PollOnce() {
  TargetSample sample;
  sample.time_unix_us = absl::ToUnixMicros(absl::Now());
  absl::StatusOr<std::string> body = fetcher_(options_.url);
  if (!body.ok()) {
    sample.error = std::string(body.status().message());
  } else {
    absl::StatusOr<Exposition> parsed = ParseTextFormat(*body);
    if (!parsed.ok()) {
      sample.error = std::string(parsed.status().message());
    } else {
      sample.values = SelectSeries(*parsed, options_.metric_names);
    }
  }
  absl::MutexLock lock(&mu_);
  samples_.push_back(std::move(sample));
  if (samples_.size() > options_.max_samples) samples_.erase(samples_.begin());
}

}  // namespace mstperf::prom
