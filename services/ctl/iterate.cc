// iterate: one fixed-rate iteration through the loadgen service(s), run by the controller's
// IterationRunner (the same split over replicas, common start and merged progress a search
// iteration gets, without a verdict) and written with the controller's results library.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "services/controller/results.h"
#include "services/controller/runner.h"
#include "services/ctl/commands.h"
#include "services/ctl/common.h"
#include "services/ctl/env_file.h"
#include "services/ctl/format.h"
#include "services/evaluator/output_csv.h"

namespace mstperf::ctl {
namespace {

namespace fs = std::filesystem;
using mstperf::v1::IterationProgress;
using mstperf::v1::IterationSpec;
using mstperf::v1::RequestRecord;

}  // namespace

int IterateCommand(const CtlOptions& o) {
  // Flags first: every problem named by its flag.
  if (o.url.empty()) return Fail(kExitUsage, "iterate: --url is required (e.g. http://127.0.0.1:8000)");
  if (o.tokens.empty()) return Fail(kExitUsage, "iterate: --tokens is required (e.g. 128:64)");
  auto pair = ParseTokenPair(o.tokens);
  if (!pair.ok()) return Fail(kExitUsage, absl::StrCat("iterate: --tokens: ", pair.status().message()));
  if (!(o.req_min > 0)) {
    return Fail(kExitUsage, "iterate: --req-min must be a positive number of requests per minute");
  }
  if (o.duration.empty()) return Fail(kExitUsage, "iterate: --duration is required (e.g. 30s)");
  auto duration = ParseDurationSeconds(o.duration);
  if (!duration.ok()) {
    return Fail(kExitUsage, absl::StrCat("iterate: --duration: ", duration.status().message()));
  }
  auto api = ParseApi(o.api);
  if (!api.ok()) return Fail(kExitUsage, absl::StrCat("iterate: --api: ", api.status().message()));
  auto arrival = ParseArrival(o.arrival);
  if (!arrival.ok()) {
    return Fail(kExitUsage, absl::StrCat("iterate: --arrival: ", arrival.status().message()));
  }
  if (o.out.empty()) return Fail(kExitUsage, "iterate: --out is required (a folder for the files)");
  std::vector<std::string> addresses;
  for (absl::string_view a : absl::StrSplit(o.loadgen, ',', absl::SkipWhitespace())) {
    addresses.emplace_back(absl::StripAsciiWhitespace(a));
  }
  if (addresses.empty()) return Fail(kExitUsage, "iterate: --loadgen names no address");
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec || !fs::is_directory(o.out)) {
    return Fail(kExitUsage, absl::StrCat("iterate: --out: cannot create ", o.out, ": ",
                                         ec ? ec.message() : "not a directory"));
  }

  IterationSpec spec;
  const absl::Time start = absl::Now();
  spec.set_iteration_id(
      absl::StrCat("iterate-", absl::FormatTime("%Y%m%dT%H%M%S", start, absl::UTCTimeZone())));
  spec.mutable_target()->set_url(o.url);
  spec.mutable_target()->set_model(o.model);
  spec.mutable_target()->set_api(*api);
  *spec.mutable_tokens() = *pair;
  spec.set_req_min(o.req_min);
  spec.set_duration_s(*duration);
  spec.set_arrival(*arrival);
  spec.set_seed(o.seed);
  spec.mutable_prompt()->set_use_tokenize_endpoint(true);

  // The runner splits the rate over the replicas (same seed, common start 1.5 s from now) and
  // merges their records and progress; no evaluator: iterate only records.
  controller::IterationRunner runner(/*evaluator_address=*/"");
  controller::IterationRequest request;
  request.iteration_id = spec.iteration_id();
  request.spec = spec;
  request.loadgen_addresses = addresses;
  request.evaluate = false;
  request.keep_records_on_replica_error = true;
  request.progress_interval = absl::Milliseconds(250);
  std::atomic<bool> interrupted{false};
  absl::StatusOr<controller::IterationOutcome> outcome;
  {
    ScopedInterruptHandler on_ctrl_c([&] {
      interrupted = true;
      runner.Stop();
    });
    std::cout << "iteration " << spec.iteration_id() << ": " << FormatRate(o.req_min)
              << " req/min of " << PairText(*pair) << " tokens for " << FormatRate(*duration)
              << " s against " << o.url << " through " << addresses.size() << " loadgen(s)"
              << std::endl;
    const bool bar = isatty(STDOUT_FILENO) == 1;
    double last_plain = -1e9;
    outcome = runner.Run(request, [&](const IterationProgress& p) {
      if (p.duration_s() <= 0) return;
      if (bar) {
        std::cout << "\r\033[K  " << FormatProgress(p, o.req_min, true) << std::flush;
      } else if (p.elapsed_s() - last_plain >= 5) {
        last_plain = p.elapsed_s();
        std::cout << "  " << FormatProgress(p, o.req_min, false) << std::endl;
      }
    });
    if (bar) std::cout << "\r\033[K" << std::flush;
  }
  if (!outcome.ok()) return Fail(kExitFailed, std::string(outcome.status().message()));
  controller::IterationFiles files;
  files.spec = spec;
  files.replica_count = addresses.size();
  files.started_unix_us = outcome->started_unix_us;
  files.ended_unix_us = outcome->ended_unix_us;
  files.records = std::move(outcome->records);
  files.replica_summaries = outcome->summaries;
  files.warnings = outcome->warnings;
  files.target_metrics = outcome->target_metrics;
  const int failed_replicas = static_cast<int>(outcome->replica_errors.size());
  for (const auto& e : outcome->replica_errors) {
    std::cerr << "mstperfctl: " << DescribeRpcError(e.status, "loadgen", e.address) << "\n";
    files.warnings.push_back(
        absl::StrCat("loadgen ", e.address, " failed: ", e.status.error_message()));
  }
  if (files.records.empty()) {
    if (failed_replicas > 0) {
      const grpc::StatusCode code = outcome->replica_errors.front().status.error_code();
      return code == grpc::StatusCode::INVALID_ARGUMENT ||
                     code == grpc::StatusCode::FAILED_PRECONDITION
                 ? kExitUsage
                 : kExitFailed;
    }
    if (interrupted) return Fail(kExitInterrupted, "interrupted before any request ended");
  }
  if (interrupted) files.warnings.push_back("interrupted by the user (Ctrl-C): partial iteration");
  std::sort(files.records.begin(), files.records.end(),
            [](const RequestRecord& a, const RequestRecord& b) {
              return a.request_idx() < b.request_idx();
            });
  std::vector<const RequestRecord*> rows;
  for (const auto& r : files.records) rows.push_back(&r);
  const controller::IterationStats stats = controller::ComputeStats(files.records);

  const std::pair<const char*, std::string> contents[] = {
      {"output.csv", evaluator::OutputCsvFromRecords(rows, stats.success_rate_pct)},
      {"results.json", controller::ResultsJson(files)},
      {"requests.jsonl", controller::RequestsJsonl(rows)},
      {"iteration.json", controller::IterationJson(files, stats)},
  };
  for (const auto& [name, text] : contents) {
    absl::Status s = controller::WriteFileAtomic(absl::StrCat(o.out, "/", name), text);
    if (!s.ok()) return Fail(kExitFailed, absl::StrCat("cannot write ", name, ": ", s.message()));
  }

  const double window_s = std::max(*duration, 1e-9);
  std::cout << absl::StrFormat(
      "%d requests: %d succeeded, %d failed, %d dropped; success rate %.2f%%\n"
      "achieved %.1f req/min of %s offered; send lag p50 %.3f ms p99 %.3f ms\n"
      "latency: TTFT p50 %.1f ms p99 %.1f ms, end-to-end p50 %.1f ms p99 %.1f ms\n",
      stats.total, stats.succeeded, stats.failed, stats.dropped, stats.success_rate_pct,
      stats.succeeded * 60.0 / window_s, FormatRate(o.req_min),
      stats.send_lag_us.p50() / 1000, stats.send_lag_us.p99() / 1000, stats.ttft_ms.p50(),
      stats.ttft_ms.p99(), stats.e2e_ms.p50(), stats.e2e_ms.p99());
  for (const auto& w : files.warnings) std::cout << "warning: " << w << "\n";
  std::cout << "files: " << o.out << "/{output.csv,results.json,requests.jsonl,iteration.json}\n"
            << "judge it: mstperfctl evaluate --mode most " << o.out << std::endl;
  if (interrupted) return kExitInterrupted;
  return failed_replicas > 0 ? kExitFailed : kExitOk;
}

}  // namespace mstperf::ctl
