#ifndef MSTPERF_SERVICES_COMMON_PROM_SCRAPE_H_
#define MSTPERF_SERVICES_COMMON_PROM_SCRAPE_H_

// Reading Prometheus metrics: a parser of the text exposition format (version 0.0.4, the format
// every /metrics endpoint here and vLLM's serve), and a sampler that polls a target's /metrics
// on its own thread while an iteration runs.
//
// The parser is pure (no I/O) and strict about what it accepts: a malformed line is an
// INVALID_ARGUMENT error naming the line number, never a silently wrong value.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mstperf::prom {

// One sample line: `name{label="value",...} value [timestamp_ms]`.
struct Sample {
  // The series' own name, with any histogram/summary suffix (`foo_bucket`, `foo_sum`).
  std::string name;
  // Labels in the order they appeared, values unescaped.
  std::vector<std::pair<std::string, std::string>> labels;
  // NaN, +Inf and -Inf are kept as such.
  double value = 0;
  std::optional<int64_t> timestamp_ms;

  // The label's value, or nullopt when the sample has no such label.
  std::optional<std::string> Label(absl::string_view label_name) const;
  // `name{a="x",b="y"}` with labels sorted by name and values escaped (as Prometheus prints a
  // series); just `name` without labels. Two samples of the same series have the same key.
  std::string SeriesKey() const;
};

// A parsed exposition: the samples in order, and the TYPE and HELP of each family.
struct Exposition {
  std::vector<Sample> samples;
  // Family name -> "counter", "gauge", "histogram", "summary" or "untyped".
  std::map<std::string, std::string> types;
  // Family name -> help text (unescaped).
  std::map<std::string, std::string> help;

  // Samples whose name is `name` and which carry every label of `labels` (other labels allowed).
  std::vector<const Sample*> Find(
      absl::string_view name,
      const std::vector<std::pair<std::string, std::string>>& labels = {}) const;
  // The value of the only sample matching (name, labels); nullopt when none matches, or when
  // several do (ambiguous: ask with more labels).
  std::optional<double> Value(
      absl::string_view name,
      const std::vector<std::pair<std::string, std::string>>& labels = {}) const;
  // The sum of the values of every sample matching (name, labels); 0 when none matches.
  double Sum(absl::string_view name,
             const std::vector<std::pair<std::string, std::string>>& labels = {}) const;
  // True when any sample's name is `name`.
  bool Has(absl::string_view name) const;
};

// Parses the Prometheus text format. Accepts `# HELP`/`# TYPE` lines, other comments, blank
// lines, label values with the escapes \\ \" \n, a trailing comma in the label set, values
// NaN / +Inf / -Inf / Inf in any case, optional integer millisecond timestamps, CRLF line ends
// and a missing final newline. Errors name the 1-based line.
absl::StatusOr<Exposition> ParseTextFormat(absl::string_view text);

// True when `name` may be a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*).
bool IsValidMetricName(absl::string_view name);

// The vLLM series that tell what the server itself saw: requests running and waiting, and the
// KV-cache usage. The simulator exports the same names.
std::vector<std::string> DefaultTargetMetricNames();

// One poll of a target's /metrics.
struct TargetSample {
  int64_t time_unix_us = 0;
  // Empty when the scrape succeeded; otherwise why not (and `values` is empty).
  std::string error;
  // SeriesKey() -> value, for the selected series only.
  std::map<std::string, double> values;
};

// {"time_unix_us": .., "values": {..}} or {"time_unix_us": .., "error": ".."}; non-finite
// values become the strings "NaN", "+Inf", "-Inf" (JSON has no such numbers).
nlohmann::json TargetSampleToJson(const TargetSample& sample);
nlohmann::json TargetSamplesToJson(const std::vector<TargetSample>& samples);

// Keeps the samples of `exposition` whose name is one of `names`, or whose name is one of
// `names` plus a histogram/summary/counter suffix (_bucket, _sum, _count, _total, _created).
std::map<std::string, double> SelectSeries(const Exposition& exposition,
                                           const std::vector<std::string>& names);

// GET `url` with libcurl; the body when the status is 2xx, UNAVAILABLE otherwise (connection
// refused, timeout, HTTP error), with the reason in the message.
absl::StatusOr<std::string> HttpGetText(const std::string& url, absl::Duration timeout);

struct TargetMetricsSamplerOptions {
  // The target's Prometheus endpoint, e.g. "http://127.0.0.1:8000/metrics".
  std::string url;
  // Time between two polls; the first poll is made at Start().
  absl::Duration interval = absl::Seconds(5);
  // Per-poll HTTP timeout (connect + transfer).
  absl::Duration timeout = absl::Seconds(2);
  // Families to keep (see SelectSeries). Append to the default to keep vLLM's too.
  std::vector<std::string> metric_names = DefaultTargetMetricNames();
  // At most this many samples are kept (the oldest are dropped): bounds memory on long runs.
  size_t max_samples = 100000;
};

// Polls one target's /metrics every `interval` on its own thread between Start() and Stop(),
// and keeps a timestamped copy of the selected series each time. A failed poll is recorded
// with its error and does not stop the sampling: a target that restarts or is slow to answer
// leaves a gap, not a broken iteration. Thread-safe.
class TargetMetricsSampler {
 public:
  // Returns the body of `url` or an error; HttpGetText by default (tests may inject another).
  using Fetcher = std::function<absl::StatusOr<std::string>(const std::string& url)>;

  explicit TargetMetricsSampler(TargetMetricsSamplerOptions options, Fetcher fetcher = nullptr);
  ~TargetMetricsSampler();  // Stop()s.

  TargetMetricsSampler(const TargetMetricsSampler&) = delete;
  TargetMetricsSampler& operator=(const TargetMetricsSampler&) = delete;

  // Starts polling (first poll right away). INVALID_ARGUMENT when the url or interval is
  // unusable, FAILED_PRECONDITION when already started.
  absl::Status Start();
  // Takes one last poll (so even an iteration shorter than `interval` has a start and an end
  // sample), stops the thread and returns every sample taken. Idempotent: later calls return
  // the same samples.
  std::vector<TargetSample> Stop();
  // The samples so far, while running.
  std::vector<TargetSample> Samples() const;

 private:
  void Run();
  void PollOnce();

  const TargetMetricsSamplerOptions options_;
  const Fetcher fetcher_;
  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<TargetSample> samples_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace mstperf::prom

#endif  // MSTPERF_SERVICES_COMMON_PROM_SCRAPE_H_
