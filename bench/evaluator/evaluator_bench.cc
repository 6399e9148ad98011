// Times the evaluator's rule sets on synthetic iterations of N records (no gRPC, no I/O except
// an optional output.csv for the Python comparison): `most` mode (rows + the original's rules,
// including the 10,000-resample bootstrap when the t-test does not settle it) and the default
// mode (all rules). Prints one line per case: mode, shape, N, median seconds over --runs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "services/evaluator/default_rules.h"
#include "services/evaluator/most_rules.h"
#include "services/evaluator/output_csv.h"

ABSL_FLAG(std::string, sizes, "10000,100000,1000000", "Record counts to time.");
ABSL_FLAG(int, runs, 3, "Runs per case (median reported); 1 for N >= 1M.");
ABSL_FLAG(std::string, write_csv_dir, "",
          "If set, write <dir>/<shape>_<N>.csv (output.csv format) for the Python comparison.");

namespace {

using mstperf::v1::RequestRecord;

constexpr double kMinutes = 20;  // every iteration lasts 20 minutes; N sets the rate

// An iteration of `n` requests evenly spread over 20 minutes (n / 20 req/min); "stable"
// latencies are i.i.d., "drifting" ones grow by 50% over the iteration (so the t-test rejects
// and the most mode must run its bootstrap).
std::vector<RequestRecord> Make(size_t n, bool drifting) {
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> lat(std::log(2000.0), 0.2);
  const double rate_per_s = n / (kMinutes * 60);
  const int64_t t0 = 1773482400'000000;
  std::vector<RequestRecord> out(n);
  for (size_t i = 0; i < n; ++i) {
    const double t = i / rate_per_s;
    const double grow = drifting ? 1.0 + 0.5 * static_cast<double>(i) / n : 1.0;
    const int64_t sent = t0 + static_cast<int64_t>(t * 1e6);
    const int64_t e2e = static_cast<int64_t>(lat(rng) * grow * 1e3);
    RequestRecord& r = out[i];
    r.set_request_idx(i);
    r.set_scheduled_unix_us(sent - 150);
    r.set_sent_unix_us(sent);
    r.set_first_token_unix_us(sent + e2e / 20);
    r.set_end_unix_us(sent + e2e);
    r.set_completion_tokens(64);
    r.set_success(true);
  }
  return out;
}

template <typename F>
double MedianSeconds(int runs, F&& f) {
  std::vector<double> s;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::printf("%-8s %-9s %9s %10s  %s\n", "mode", "shape", "records", "seconds", "verdict");
  for (absl::string_view size_text : absl::StrSplit(absl::GetFlag(FLAGS_sizes), ',')) {
    size_t n = 0;
    if (!absl::SimpleAtoi(size_text, &n) || n == 0) {
      std::fprintf(stderr, "bad --sizes entry '%s'\n", std::string(size_text).c_str());
      return 2;
    }
    const int runs = n >= 1000000 ? 1 : absl::GetFlag(FLAGS_runs);
    for (bool drifting : {false, true}) {
      const char* shape = drifting ? "drifting" : "stable";
      const std::vector<RequestRecord> records = Make(n, drifting);
      const double minutes = kMinutes;
      const double req_min = n / kMinutes;
      const std::string csv =
          mstperf::evaluator::FormatOutputCsv(mstperf::evaluator::RowsFromRecords(records));
      if (!absl::GetFlag(FLAGS_write_csv_dir).empty()) {
        std::ofstream(absl::GetFlag(FLAGS_write_csv_dir) + "/" + shape + "_" + std::to_string(n) +
                      ".csv")
            << csv;
      }
      size_t parsed = 0;
      const double parse_s = MedianSeconds(runs, [&] {
        parsed = mstperf::evaluator::ParseOutputCsv(csv).value().size();
      });
      std::printf("%-8s %-9s %9zu %10.4f  (parse output.csv, %zu rows)\n", "csv", shape, n,
                  parse_s, parsed);

      mstperf::v1::Verdict most;
      const double most_s = MedianSeconds(runs, [&] {
        mstperf::evaluator::MostConfig c;
        c.req_min = req_min;
        c.filter_buffer_s = 120;
        most = mstperf::evaluator::EvaluateMost(mstperf::evaluator::RowsFromRecords(records), c);
      });
      std::printf("%-8s %-9s %9zu %10.4f  %s by %s\n", "most", shape, n, most_s,
                  most.sustainable() ? "TRUE" : "FALSE", most.deciding_rule().c_str());

      mstperf::v1::Verdict def;
      const double def_s = MedianSeconds(runs, [&] {
        mstperf::evaluator::DefaultConfig c;
        c.req_min = req_min;
        c.duration_s = minutes * 60;
        mstperf::evaluator::DefaultJudge judge(c);
        for (const auto& r : records) judge.Add(r);
        def = judge.Final();
      });
      std::printf("%-8s %-9s %9zu %10.4f  %s by %s\n", "default", shape, n, def_s,
                  def.sustainable() ? "TRUE" : "FALSE", def.deciding_rule().c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
