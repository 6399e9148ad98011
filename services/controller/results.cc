#include "services/controller/results.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/status.h"
#include "services/controller/spec.h"
#include "services/evaluator/output_csv.h"

namespace mstperf::controller {
namespace {

namespace fs = std::filesystem;
using evaluator::OutputCsvFromRecords;
using evaluator::PythonFloat;

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

std::string ProtoJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

nlohmann::json ProtoToJson(const google::protobuf::Message& message) {
  return nlohmann::json::parse(ProtoJson(message), nullptr, /*allow_exceptions=*/false);
}

// Time of the last token: the last chunk's arrival, else the end of the response.
int64_t LastTokenUnixUs(const v1::RequestRecord& r) {
  if (r.chunk_offset_us_size() > 0 && r.sent_unix_us() > 0) {
    return r.sent_unix_us() + r.chunk_offset_us(r.chunk_offset_us_size() - 1);
  }
  if (r.end_unix_us() > 0) return r.end_unix_us();
  return r.sent_unix_us() > 0 ? r.sent_unix_us() : r.scheduled_unix_us();
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

const char* PyBool(bool b) { return b ? "True" : "False"; }

// REQ_MIN as the original prints it: an int when it is one.
std::string Number(double x) {
  if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(x));
  }
  return PythonFloat(x);
}

std::vector<const v1::RequestRecord*> SortedRows(const std::vector<v1::RequestRecord>& records) {
  std::vector<const v1::RequestRecord*> rows;
  rows.reserve(records.size());
  for (const auto& r : records) rows.push_back(&r);
  std::sort(rows.begin(), rows.end(), [](const auto* a, const auto* b) {
    return a->request_idx() < b->request_idx();
  });
  return rows;
}

std::string SideText(const v1::TokenRange& r) {
  return r.min() == r.max() ? absl::StrCat(r.min()) : absl::StrCat(r.min(), "-", r.max());
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents, bool sync) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid(), ".", counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", tmp);
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status status = Errno("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return status;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (sync && ::fsync(fd) != 0) {
    absl::Status status = Errno("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return status;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Errno("cannot close", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status status = Errno("cannot rename to", path);
    ::unlink(tmp.c_str());
    return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SafeJoin(const std::string& root,
                                     const std::vector<std::string>& components) {
  std::string path = root.empty() ? "." : root;
  for (const std::string& c : components) {
    if (!IsSafePathComponent(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unsafe path component \"", c, "\" (allowed: [A-Za-z0-9._-], not . or ..)"));
    }
    if (path.back() != '/') path += '/';
    path += c;
  }
  return path;
}

v1::Distribution Summarize(std::vector<double>& values) {
  v1::Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  auto rank = [&](double p) {
    size_t k = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
    return values[std::min(n - 1, k == 0 ? 0 : k - 1)];
  };
  double sum = 0;
  for (double v : values) sum += v;
  d.set_count(n);
  d.set_mean(sum / static_cast<double>(n));
  d.set_min(values.front());
  d.set_p50(rank(50));
  d.set_p90(rank(90));
  d.set_p99(rank(99));
  d.set_max(values.back());
  return d;
}

IterationStats ComputeStats(const std::vector<v1::RequestRecord>& records) {
  IterationStats s;
  std::vector<double> lag, ttft, itl, e2e, prompt, completion;
  for (const v1::RequestRecord& r : records) {
    ++s.total;
    if (r.success()) {
      ++s.succeeded;
    } else if (r.error_kind() == v1::ERROR_KIND_DROPPED) {
      ++s.dropped;
    } else {
      ++s.failed;
    }
    if (r.sent_unix_us() > 0 && r.scheduled_unix_us() > 0) {
      lag.push_back(static_cast<double>(r.sent_unix_us() - r.scheduled_unix_us()));
    }
    if (!r.success()) continue;
    if (r.first_token_unix_us() > 0) {
      ttft.push_back((r.first_token_unix_us() - r.sent_unix_us()) / 1000.0);
    }
    e2e.push_back((LastTokenUnixUs(r) - r.sent_unix_us()) / 1000.0);
    for (int i = 1; i < r.chunk_offset_us_size(); ++i) {
      const double gap_ms = (r.chunk_offset_us(i) - r.chunk_offset_us(i - 1)) / 1000.0;
      const uint32_t tokens = i < r.chunk_tokens_size() ? std::max<uint32_t>(1, r.chunk_tokens(i)) : 1;
      for (uint32_t t = 0; t < tokens; ++t) itl.push_back(gap_ms / tokens);
    }
    if (r.prompt_tokens() > 0) prompt.push_back(r.prompt_tokens());
    if (r.completion_tokens() > 0) completion.push_back(r.completion_tokens());
  }
  s.send_lag_us = Summarize(lag);
  s.ttft_ms = Summarize(ttft);
  s.itl_ms = Summarize(itl);
  s.e2e_ms = Summarize(e2e);
  s.median_prompt_tokens = Median(prompt);
  s.median_completion_tokens = Median(completion);
  s.success_rate_pct = s.total ? 100.0 * static_cast<double>(s.succeeded) / s.total : 0;
  return s;
}

std::string ResultsCsv(const IterationFiles& f, const IterationStats& stats) {
  const v1::TokenPair& t = f.spec.tokens();
  const double success_rate =
      f.verdict.success_rate_pct() > 0 || stats.total == 0 ? f.verdict.success_rate_pct()
                                                          : stats.success_rate_pct;
  std::vector<std::string> header = {
      "INPUT_TOKENS", "OUTPUT_TOKENS", "MIN_INPUT_TOKENS", "MAX_INPUT_TOKENS",
      "MIN_OUTPUT_TOKENS", "MAX_OUTPUT_TOKENS", "DURATION", "URL", "REQ_MIN", "TOTAL_REQUESTS",
      "SUCCESS_RATE", "MEDIAN_PROMPT_TOKENS", "MEDIAN_RESPONSE_TOKENS", "EVALUATION", "STAGE",
      "TERMINATION_REASON", "LARGEST_TRUE", "SMALLEST_FALSE", "FINISHED"};
  std::vector<std::string> row = {
      SideText(t.input()), SideText(t.output()), absl::StrCat(t.input().min()),
      absl::StrCat(t.input().max()), absl::StrCat(t.output().min()),
      absl::StrCat(t.output().max()), absl::StrCat(Number(f.spec.duration_s()), "s"),
      CsvField(f.spec.target().url()), Number(f.spec.req_min()), absl::StrCat(stats.total),
      PythonFloat(success_rate), PythonFloat(stats.median_prompt_tokens),
      PythonFloat(stats.median_completion_tokens), PyBool(f.verdict.sustainable()),
      absl::StrCat(f.stage), CsvField(f.termination_reason), Number(f.largest_true),
      Number(f.smallest_false), PyBool(f.finished)};
  return absl::StrCat(absl::StrJoin(header, ","), "\n", absl::StrJoin(row, ","), "\n");
}

std::string ResultsJson(const IterationFiles& f) {
  // fmperf's shape: one record per streamed chunk ("token"), duration_ms since the previous
  // one (the first since the send: TTFT). Built by hand: it can hold 10^5 records.
  std::string out = "{\"results\": [";
  bool first = true;
  const double duration = f.spec.duration_s();
  const std::string req_min = Number(f.spec.req_min());
  auto add = [&](const v1::RequestRecord& r, bool ok, const std::string& error, int64_t ts_us,
                 double duration_ms, int response_idx, uint32_t n_tokens) {
    nlohmann::json j = {{"response", ""},
                        {"ok", ok},
                        {"error", ok ? nlohmann::json() : nlohmann::json(error)},
                        {"timestamp", ts_us * 1000},
                        {"exp_num_users", f.replica_count},
                        {"exp_duration", duration},
                        {"duration_ms", duration_ms},
                        {"exclude", false},
                        {"worker_idx", r.replica_idx()},
                        {"request_idx", r.request_idx()},
                        {"sample_idx", r.request_idx()},
                        {"response_idx", response_idx},
                        {"n_tokens", n_tokens},
                        {"exp_req_min", nlohmann::json::parse(req_min)}};
    absl::StrAppend(&out, first ? "\n" : ",\n", j.dump());
    first = false;
  };
  for (const v1::RequestRecord* r : SortedRows(f.records)) {
    if (r->chunk_offset_us_size() > 0 && r->sent_unix_us() > 0) {
      uint32_t prev = 0;
      for (int i = 0; i < r->chunk_offset_us_size(); ++i) {
        const uint32_t off = r->chunk_offset_us(i);
        const uint32_t tokens = i < r->chunk_tokens_size() ? r->chunk_tokens(i) : 1;
        add(*r, true, "", r->sent_unix_us() + off, (off - prev) / 1000.0, i, tokens);
        prev = off;
      }
      if (!r->success()) add(*r, false, r->error(), LastTokenUnixUs(*r), 0, r->chunk_offset_us_size(), 0);
    } else {
      const int64_t ts = LastTokenUnixUs(*r);
      const double ms = r->sent_unix_us() > 0 ? (ts - r->sent_unix_us()) / 1000.0 : 0;
      add(*r, r->success(), r->error().empty() ? "no tokens received" : r->error(), ts, ms, 0,
          r->completion_tokens());
    }
  }
  out += "\n], \"energy\": {}}\n";
  return out;
}

std::string IterationJson(const IterationFiles& f, const IterationStats& stats) {
  v1::Verdict verdict = f.verdict;
  // The halves' request lists are first_half.csv / second_half.csv already.
  verdict.clear_first_half_request_idx();
  verdict.clear_second_half_request_idx();
  v1::IterationSpec spec = f.spec;
  spec.clear_replica_idx();
  spec.set_replica_count(f.replica_count);
  spec.mutable_target()->clear_headers();  // may carry credentials
  auto dist = [](const v1::Distribution& d) { return ProtoToJson(d); };
  nlohmann::json j = {
      {"experiment_id", f.experiment_id},
      {"iteration_index", f.iteration_index},
      {"pair_label", f.spec.tokens().label()},
      {"req_min", f.spec.req_min()},
      {"stage", f.stage},
      {"confirmation", f.confirmation},
      {"stopped_early", f.stopped_early},
      {"started_unix_us", f.started_unix_us},
      {"ended_unix_us", f.ended_unix_us},
      {"spec", ProtoToJson(spec)},
      {"verdict", ProtoToJson(verdict)},
      {"statistics",
       {{"requests",
         {{"total", stats.total},
          {"succeeded", stats.succeeded},
          {"failed", stats.failed},
          {"dropped", stats.dropped}}},
        {"success_rate_pct", stats.success_rate_pct},
        {"send_lag_us", dist(stats.send_lag_us)},
        {"ttft_ms", dist(stats.ttft_ms)},
        {"itl_ms", dist(stats.itl_ms)},
        {"e2e_ms", dist(stats.e2e_ms)},
        {"median_prompt_tokens", stats.median_prompt_tokens},
        {"median_completion_tokens", stats.median_completion_tokens}}},
      {"search",
       {{"largest_sustainable_req_min", f.largest_true},
        {"smallest_unsustainable_req_min", f.smallest_false},
        {"finished", f.finished},
        {"termination_reason", f.termination_reason}}},
      {"warnings", f.warnings},
  };
  nlohmann::json replicas = nlohmann::json::array();
  for (const auto& s : f.replica_summaries) replicas.push_back(ProtoToJson(s));
  j["replicas"] = replicas;
  if (!f.target_metrics.is_null()) j["target_metrics"] = f.target_metrics;
  if (f.stopped_early) {
    // When and why the evaluator ended the iteration before its DURATION, and what it saved.
    const double at = f.verdict.judged_at_elapsed_s();
    j["early_stop"] = {{"rule", f.verdict.deciding_rule()},
                       {"at_elapsed_s", at},
                       {"duration_s", f.spec.duration_s()},
                       {"saved_s", std::max(0.0, f.spec.duration_s() - at)}};
  }
  return j.dump(2) + "\n";
}

std::string RequestsJsonl(const std::vector<const v1::RequestRecord*>& rows) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  for (const v1::RequestRecord* r : rows) {
    std::string line;
    (void)google::protobuf::util::MessageToJsonString(*r, &line, options);
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

absl::StatusOr<std::string> ResultsWriter::CreateIterationDir(const std::string& label,
                                                              absl::Time start) const {
  const std::string stamp = absl::FormatTime("%Y%m%dT%H%M%S", start, absl::UTCTimeZone());
  absl::StatusOr<std::string> parent = SafeJoin(root_, {"requests", label});
  if (!parent.ok()) return parent.status();
  std::error_code ec;
  fs::create_directories(*parent, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", *parent, ": ", ec.message()));
  for (int n = 1; n < 1000; ++n) {
    const std::string name = n == 1 ? stamp : absl::StrCat(stamp, "_", n);
    const std::string path = absl::StrCat(*parent, "/", name);
    if (::mkdir(path.c_str(), 0755) == 0) return absl::StrCat("requests/", label, "/", name);
    if (errno != EEXIST) return Errno("cannot create", path);
  }
  return absl::ResourceExhaustedError("too many iterations started in one second");
}

absl::Status ResultsWriter::WriteIteration(const std::string& relative_dir,
                                           const IterationFiles& files) const {
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(relative_dir, '/')) parts.emplace_back(p);
  absl::StatusOr<std::string> dir = SafeJoin(root_, parts);
  if (!dir.ok()) return dir.status();

  const IterationStats stats = ComputeStats(files.records);
  const std::vector<const v1::RequestRecord*> rows = SortedRows(files.records);
  const double success_rate = files.verdict.success_rate_pct() > 0 || stats.total == 0
                                  ? files.verdict.success_rate_pct()
                                  : stats.success_rate_pct;
  std::map<uint64_t, const v1::RequestRecord*> by_idx;
  for (const auto* r : rows) by_idx[r->request_idx()] = r;
  auto half = [&](const google::protobuf::RepeatedField<uint64_t>& idx) {
    std::vector<const v1::RequestRecord*> out;
    for (uint64_t i : idx) {
      auto it = by_idx.find(i);
      if (it != by_idx.end()) out.push_back(it->second);
    }
    return out;
  };

  const std::pair<const char*, std::string> contents[] = {
      {"output.csv", OutputCsvFromRecords(rows, success_rate)},
      {"first_half.csv", OutputCsvFromRecords(half(files.verdict.first_half_request_idx()), success_rate)},
      {"second_half.csv", OutputCsvFromRecords(half(files.verdict.second_half_request_idx()), success_rate)},
      {"results.csv", ResultsCsv(files, stats)},
      {"results.json", ResultsJson(files)},
      {"requests.jsonl", RequestsJsonl(rows)},
      // Last: its presence says the folder is complete.
      {"iteration.json", IterationJson(files, stats)},
  };
  for (const auto& [name, text] : contents) {
    MSTPERF_RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(*dir, "/", name), text));
  }
  return absl::OkStatus();
}

}  // namespace mstperf::controller
