// evaluate: re-judge an iteration folder, written by mstperf or by the original tool, with the
// evaluator's rules (in-process, or through the evaluator service with --evaluator).
#include <chrono>
#include <filesystem>
#include <iostream>

#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "mstperf/v1/evaluator.grpc.pb.h"
#include "services/ctl/commands.h"
#include "services/ctl/common.h"
#include "services/ctl/env_file.h"
#include "services/ctl/format.h"
#include "services/evaluator/default_rules.h"
#include "services/evaluator/most_rules.h"
#include "services/evaluator/output_csv.h"

namespace mstperf::ctl {
namespace {

namespace fs = std::filesystem;
using mstperf::v1::RequestRecord;
using mstperf::v1::Verdict;

// What the folder says about its iteration (0 / negative when it does not say).
struct FolderFacts {
  double req_min = 0;
  double duration_s = 0;
  std::string source;  // which file told us
};

// results.csv: one header line, one row; the original's and ours share REQ_MIN and DURATION.
void ReadResultsCsv(const std::string& text, FolderFacts* f) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.size() < 2) return;
  std::vector<std::string> header = absl::StrSplit(absl::StripAsciiWhitespace(lines[0]), ',');
  std::vector<std::string> row = absl::StrSplit(absl::StripAsciiWhitespace(lines[1]), ',');
  for (size_t i = 0; i < header.size() && i < row.size(); ++i) {
    const std::string key(absl::StripAsciiWhitespace(header[i]));
    const std::string value(absl::StripAsciiWhitespace(row[i]));
    double d = 0;
    if (key == "REQ_MIN" && absl::SimpleAtod(value, &d) && d > 0) {
      f->req_min = d;
      f->source = "results.csv";
    } else if (key == "DURATION") {
      if (auto s = ParseDurationSeconds(value); s.ok()) f->duration_s = *s;
    }
  }
}

void ReadIterationJson(const std::string& text, FolderFacts* f) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return;
  if (j.contains("req_min") && j["req_min"].is_number() && j["req_min"].get<double>() > 0) {
    f->req_min = j["req_min"].get<double>();
    f->source = "iteration.json";
  }
  if (j.contains("spec") && j["spec"].is_object()) {
    const auto& s = j["spec"];
    for (const char* k : {"duration_s", "durationS"}) {
      if (s.contains(k) && s[k].is_number()) f->duration_s = s[k].get<double>();
    }
  }
}

absl::StatusOr<std::vector<RequestRecord>> ReadRequestsJsonl(const std::string& text) {
  std::vector<RequestRecord> out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    ++line_no;
    RequestRecord r;
    auto s = google::protobuf::util::JsonStringToMessage(std::string(line), &r);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("requests.jsonl line ", line_no, ": ", s.ToString()));
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

int EvaluateCommand(const CtlOptions& o, const std::string& dir) {
  if (dir.empty()) {
    return Fail(kExitUsage, "evaluate needs an iteration folder: mstperfctl evaluate [--mode most|default] DIR");
  }
  auto mode = ParseEvaluatorMode(o.mode);
  if (!mode.ok()) return Fail(kExitUsage, absl::StrCat("evaluate: --mode: ", mode.status().message()));
  if (!fs::is_directory(dir)) return Fail(kExitUsage, absl::StrCat("evaluate: ", dir, " is not a folder"));
  const bool most = *mode == mstperf::v1::EVALUATOR_MODE_MOST;

  FolderFacts facts;
  if (auto t = ReadFile(dir + "/results.csv"); t.ok()) ReadResultsCsv(*t, &facts);
  if (auto t = ReadFile(dir + "/iteration.json"); t.ok()) ReadIterationJson(*t, &facts);
  const double req_min = o.req_min > 0 ? o.req_min : facts.req_min;
  if (!(req_min > 0)) {
    return Fail(kExitUsage, absl::StrCat("evaluate: ", dir,
                                         " has no results.csv or iteration.json saying its "
                                         "REQ_MIN; pass --req-min"));
  }

  // most mode judges output.csv, the file both tools write, so verdicts can be diffed;
  // default mode prefers our per-request file (microsecond send and token times).
  std::vector<evaluator::OutputRow> rows;
  std::vector<RequestRecord> records;
  const bool have_jsonl = fs::exists(dir + "/requests.jsonl");
  if (most || !have_jsonl) {
    auto text = ReadFile(dir + "/output.csv");
    if (!text.ok()) return Fail(kExitUsage, absl::StrCat("evaluate: ", text.status().message()));
    auto parsed = evaluator::ParseOutputCsv(*text);
    if (!parsed.ok()) {
      return Fail(kExitUsage, absl::StrCat("evaluate: ", dir, "/", parsed.status().message()));
    }
    rows = *std::move(parsed);
    for (size_t i = 0; i < rows.size(); ++i) records.push_back(evaluator::RecordFromRow(rows[i], i));
    if (!most) {
      std::cerr << "warning: " << dir
                << " has no requests.jsonl; default mode judges output.csv's 1-second "
                   "timestamps and latencies only (no send lag, no token times)\n";
    }
  } else {
    auto text = ReadFile(dir + "/requests.jsonl");
    if (!text.ok()) return Fail(kExitUsage, absl::StrCat("evaluate: ", text.status().message()));
    auto parsed = ReadRequestsJsonl(*text);
    if (!parsed.ok()) {
      return Fail(kExitUsage, absl::StrCat("evaluate: ", dir, "/", parsed.status().message()));
    }
    records = *std::move(parsed);
  }
  if (records.empty()) return Fail(kExitUsage, absl::StrCat("evaluate: ", dir, " holds no requests"));

  mstperf::v1::EvaluationConfig config;
  config.set_mode(*mode);
  config.set_req_min(req_min);
  config.set_duration_s(facts.duration_s);
  config.set_filter_buffer_s(o.filter_buffer_s);
  config.set_success_rate_pct(o.success_rate_pct > 0 ? o.success_rate_pct : 95);
  const double filter = o.filter_buffer_s >= 0 ? o.filter_buffer_s : (most ? 300 : -1);
  if (most && facts.duration_s > 0 && 2 * filter >= facts.duration_s) {
    std::cerr << "warning: FILTER_BUFFER " << filter << " s trims both ends of a "
              << FormatRate(facts.duration_s)
              << " s iteration away (the original's default is 300 s); pass --filter-buffer\n";
  }
  if (most && facts.duration_s > 0 && facts.duration_s < 180) {
    std::cerr << "warning: a " << FormatRate(facts.duration_s)
              << " s iteration is short for most mode: its gate takes the median of per-minute "
                 "completion counts, and partial minutes count too (the original runs 1800 s)\n";
  }
  std::cout << "judging " << dir << ": " << records.size() << " requests at REQ_MIN "
            << FormatRate(req_min) << (facts.source.empty() || o.req_min > 0
                                           ? ""
                                           : absl::StrCat(" (from ", facts.source, ")"))
            << ", " << (most ? "most" : "default") << " mode, FILTER_BUFFER "
            << (filter >= 0 ? absl::StrCat(FormatRate(filter), " s") : std::string("auto"))
            << ", SUCCESS_RATE " << FormatRate(config.success_rate_pct()) << "%\n";

  Verdict verdict;
  if (!o.evaluator.empty()) {
    auto stub = mstperf::v1::Evaluator::NewStub(MakeChannel(o.evaluator));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    mstperf::v1::EvaluateRequest req;
    *req.mutable_config() = config;
    for (auto& r : records) *req.add_records() = r;
    grpc::Status s = stub->Evaluate(&ctx, req, &verdict);
    if (!s.ok()) return Fail(ExitCodeFor(s), DescribeRpcError(s, "evaluator", o.evaluator));
  } else if (most) {
    evaluator::MostConfig mc;
    mc.req_min = req_min;
    mc.filter_buffer_s = filter;
    mc.success_rate_pct = config.success_rate_pct();
    verdict = evaluator::EvaluateMost(rows, mc);
  } else {
    evaluator::DefaultConfig dc;
    dc.req_min = req_min;
    dc.duration_s = facts.duration_s;
    dc.filter_buffer_s = o.filter_buffer_s;
    dc.success_rate_pct = config.success_rate_pct();
    evaluator::DefaultJudge judge(dc);
    for (const auto& r : records) judge.Add(r);
    verdict = judge.Final();
  }
  std::cout << FormatVerdict(verdict);
  // Like the original's evaluate.py: exit 0 when sustainable, 1 when not.
  return verdict.sustainable() ? kExitOk : kExitFailed;
}

}  // namespace mstperf::ctl
