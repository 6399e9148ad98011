#ifndef MSTPERF_SERVICES_CONTROLLER_RESULTS_H_
#define MSTPERF_SERVICES_CONTROLLER_RESULTS_H_

// The results volume: one folder per iteration in the original tool's layout and formats, plus
// mstperf's own files. Used by the controller for every iteration of a search, and by
// mstperfctl's `iterate` command for a single fixed-rate iteration.
//
//   <root>/requests/<label>/<timestamp>/
//     output.csv        one row per request (the original's columns; written by
//                       services/evaluator/output_csv.h, the one writer of the format)
//     first_half.csv    the rows of the verdict's first half, same columns
//     second_half.csv   the rows of the verdict's second half, same columns
//     results.csv       one row: the iteration's summary (the original's columns)
//     results.json      fmperf's per-token records {"results": [...], "energy": {}}
//     iteration.json    ours: spec, verdict with reasons, send-lag and latency statistics,
//                       replica summaries, target metrics samples
//     requests.jsonl    ours: one RequestRecord per line (scheduled/actual send, chunk times)
//
// Every file is written atomically (temporary file in the same folder, then rename), and every
// path is built by SafeJoin, so no label, id or name can place a file outside <root>.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "mstperf/v1/common.pb.h"
#include "mstperf/v1/evaluator.pb.h"
#include "mstperf/v1/loadgen.pb.h"

namespace mstperf::controller {

// Writes `contents` to `path` through a temporary file and rename(2), so a reader (or a
// restarted controller) sees the old file or the new one, never a torn one. With `sync`, the
// data is fsync'ed before the rename (the experiment store uses it).
absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents,
                             bool sync = false);

// `root` + components, each of which must be a safe path component ([A-Za-z0-9._-], not "."
// or ".."); INVALID_ARGUMENT otherwise. The only way paths under a results root are built.
absl::StatusOr<std::string> SafeJoin(const std::string& root,
                                     const std::vector<std::string>& components);

// What one iteration's files are made of.
struct IterationFiles {
  // Who and where (iteration.json only).
  std::string experiment_id;  // empty for mstperfctl iterate
  uint32_t iteration_index = 0;
  // The iteration as asked of the loadgens (replica fields are per replica and ignored).
  v1::IterationSpec spec;
  uint32_t replica_count = 1;
  // All replicas' records, merged (any order; written sorted by request_idx).
  std::vector<v1::RequestRecord> records;
  v1::Verdict verdict;
  std::vector<v1::IterationSummary> replica_summaries;
  int64_t started_unix_us = 0;
  int64_t ended_unix_us = 0;
  bool stopped_early = false;
  bool confirmation = false;
  // The search's state after this iteration, for results.csv's later columns.
  int stage = 1;  // 1 = find unsustainable, 2 = bisect
  double largest_true = 0;
  double smallest_false = 0;
  bool finished = false;
  std::string termination_reason;
  std::vector<std::string> warnings;
  // Samples of the target's Prometheus metrics during the iteration (null when none).
  nlohmann::json target_metrics;
};

// Latency and send-lag statistics of a set of records (the numbers in iteration.json).
struct IterationStats {
  uint64_t total = 0, succeeded = 0, failed = 0, dropped = 0;
  v1::Distribution send_lag_us;  // sent - scheduled, over sent requests
  v1::Distribution ttft_ms;      // first token - sent
  v1::Distribution itl_ms;       // per token gap between chunks
  v1::Distribution e2e_ms;       // last token - sent, successful requests
  double median_prompt_tokens = 0;
  double median_completion_tokens = 0;
  double success_rate_pct = 0;  // succeeded / total
};
IterationStats ComputeStats(const std::vector<v1::RequestRecord>& records);

// Nearest-rank percentiles of `values` (sorted in place).
v1::Distribution Summarize(std::vector<double>& values);

// The file contents, exposed for tests and for tools that re-create one file. output.csv and
// its halves come from evaluator::OutputCsvFromRecords (services/evaluator/output_csv.h).
std::string ResultsCsv(const IterationFiles& files, const IterationStats& stats);
std::string ResultsJson(const IterationFiles& files);
std::string IterationJson(const IterationFiles& files, const IterationStats& stats);
std::string RequestsJsonl(const std::vector<const v1::RequestRecord*>& rows);

class ResultsWriter {
 public:
  // `root` is the results directory (created if missing); it holds requests/ and experiments/.
  explicit ResultsWriter(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }

  // Creates requests/<label>/<UTC start, %Y%m%dT%H%M%S>[_N]/ (a suffix when two iterations
  // start in the same second) and returns its path relative to root.
  absl::StatusOr<std::string> CreateIterationDir(const std::string& label, absl::Time start) const;

  // Writes all files of an iteration into `relative_dir` (from CreateIterationDir).
  absl::Status WriteIteration(const std::string& relative_dir, const IterationFiles& files) const;

 private:
  std::string root_;
};

}  // namespace mstperf::controller

#endif  // MSTPERF_SERVICES_CONTROLLER_RESULTS_H_
