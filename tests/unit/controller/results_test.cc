// The results writer: the original's file formats and column names, our own files, atomic
// writes, and a path join that never leaves the results directory.
#include "services/controller/results.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "services/common/testing/process.h"
#include "services/controller/store.h"

namespace mstperf::controller {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// 2026-11-28T10:15:00Z
constexpr int64_t kT0 = 1795860900LL * 1000000;

v1::RequestRecord Record(uint64_t idx, uint32_t replica, int64_t sent_offset_us, bool ok) {
  v1::RequestRecord r;
  r.set_request_idx(idx);
  r.set_replica_idx(replica);
  r.set_scheduled_unix_us(kT0 + sent_offset_us - 100);
  r.set_sent_unix_us(kT0 + sent_offset_us);
  if (ok) {
    r.set_first_token_unix_us(kT0 + sent_offset_us + 50000);
    for (uint32_t off : {50000u, 70000u, 90000u}) r.add_chunk_offset_us(off);
    for (uint32_t n : {1u, 2u, 1u}) r.add_chunk_tokens(n);
    r.set_end_unix_us(kT0 + sent_offset_us + 91000);
    r.set_prompt_tokens(32);
    r.set_completion_tokens(4);
    r.set_success(true);
  } else {
    r.set_end_unix_us(kT0 + sent_offset_us + 3000);
    r.set_http_status(503);
    r.set_error_kind(v1::ERROR_KIND_HTTP_STATUS);
    r.set_error("HTTP 503");
  }
  return r;
}

IterationFiles Files() {
  IterationFiles f;
  f.experiment_id = "exp1";
  f.iteration_index = 2;
  f.spec.mutable_target()->set_url("127.0.0.1:8000");
  f.spec.mutable_target()->mutable_headers()->insert({"Authorization", "Bearer secret"});
  f.spec.mutable_tokens()->mutable_input()->set_min(32);
  f.spec.mutable_tokens()->mutable_input()->set_max(32);
  f.spec.mutable_tokens()->mutable_output()->set_min(4);
  f.spec.mutable_tokens()->mutable_output()->set_max(4);
  f.spec.mutable_tokens()->set_label("32_4");
  f.spec.set_req_min(120);
  f.spec.set_duration_s(30);
  f.replica_count = 2;
  f.records = {Record(3, 1, 2500000, true), Record(0, 0, 0, true), Record(1, 1, 500000, false),
               Record(2, 0, 1000000, true)};
  f.verdict.set_state(v1::VERDICT_STATE_SUSTAINABLE);
  f.verdict.set_sustainable(true);
  f.verdict.set_deciding_rule("welch_t_test");
  f.verdict.set_success_rate_pct(75);
  f.verdict.add_first_half_request_idx(0);
  f.verdict.add_first_half_request_idx(1);
  f.verdict.add_second_half_request_idx(2);
  f.verdict.add_second_half_request_idx(3);
  auto* reason = f.verdict.add_reasons();
  reason->set_rule("welch_t_test");
  reason->set_passed(true);
  reason->set_detail("p = 0.4 >= 0.1");
  f.stage = 2;
  f.largest_true = 120;
  f.smallest_false = 160;
  return f;
}

TEST(SafeJoinTest, RejectsEverythingPathLike) {
  EXPECT_EQ(*SafeJoin("/r", {"requests", "32_32", "20261128T101500"}), "/r/requests/32_32/20261128T101500");
  for (const std::string bad : {"..", ".", "", "a/b", "../x", "/abs", "a\\b", "x y", "a\nb"}) {
    EXPECT_FALSE(SafeJoin("/r", {"requests", bad}).ok()) << bad;
  }
}

TEST(ResultsWriterTest, WritesTheOriginalFilesAndOurs) {
  const std::string root = testing::MakeTempDir("results");
  ResultsWriter writer(root);
  IterationFiles f = Files();
  absl::StatusOr<std::string> dir = writer.CreateIterationDir("32_4", absl::FromUnixMicros(kT0));
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, "requests/32_4/20261128T101500");
  // Same second again: a suffix, never the same folder.
  EXPECT_EQ(*writer.CreateIterationDir("32_4", absl::FromUnixMicros(kT0)),
            "requests/32_4/20261128T101500_2");
  ASSERT_TRUE(writer.WriteIteration(*dir, f).ok());
  const std::string d = root + "/" + *dir;

  // output.csv: the original's columns, one row per request.
  std::vector<std::string> out = Lines(Slurp(d + "/output.csv"));
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0], "received_timestamp,complete_response_time,success_rate,success,worker_idx,request_idx");
  for (size_t i = 1; i < out.size(); ++i) {
    std::vector<std::string> cells = absl::StrSplit(out[i], ',');
    ASSERT_EQ(cells.size(), 6u) << out[i];
    EXPECT_TRUE(absl::StartsWith(cells[0], "20261128T10150")) << cells[0];
    EXPECT_EQ(cells[2], "75.0");
  }
  EXPECT_NE(Slurp(d + "/output.csv").find("20261128T101500,91.000,75.0,True,0,0\n"), std::string::npos);
  EXPECT_NE(Slurp(d + "/output.csv").find("20261128T101500,3.000,75.0,False,1,1\n"), std::string::npos);

  // The halves: the verdict's request lists, same columns.
  std::vector<std::string> first = Lines(Slurp(d + "/first_half.csv"));
  std::vector<std::string> second = Lines(Slurp(d + "/second_half.csv"));
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(second.size(), 3u);
  EXPECT_EQ(first[0], out[0]);
  EXPECT_EQ(second[0], out[0]);
  EXPECT_TRUE(absl::EndsWith(first[1], ",0,0"));
  EXPECT_TRUE(absl::EndsWith(second[2], ",1,3"));

  // results.csv: one row with the original's column names.
  std::vector<std::string> results = Lines(Slurp(d + "/results.csv"));
  ASSERT_EQ(results.size(), 2u);
  std::vector<std::string> header = absl::StrSplit(results[0], ',');
  std::vector<std::string> row = absl::StrSplit(results[1], ',');
  ASSERT_EQ(header.size(), row.size());
  std::map<std::string, std::string> cell;
  for (size_t i = 0; i < header.size(); ++i) cell[header[i]] = row[i];
  EXPECT_EQ(cell["INPUT_TOKENS"], "32");
  EXPECT_EQ(cell["OUTPUT_TOKENS"], "4");
  EXPECT_EQ(cell["EVALUATION"], "True");
  EXPECT_EQ(cell["REQ_MIN"], "120");
  EXPECT_EQ(cell["DURATION"], "30s");
  EXPECT_EQ(cell["URL"], "127.0.0.1:8000");
  EXPECT_EQ(cell["TOTAL_REQUESTS"], "4");
  EXPECT_EQ(cell["STAGE"], "2");
  EXPECT_EQ(cell["LARGEST_TRUE"], "120");
  EXPECT_EQ(cell["SMALLEST_FALSE"], "160");
  EXPECT_EQ(cell["FINISHED"], "False");
  EXPECT_EQ(cell["MEDIAN_PROMPT_TOKENS"], "32.0");

  // results.json: fmperf's shape, one record per chunk plus one for the failed request.
  nlohmann::json rj = nlohmann::json::parse(Slurp(d + "/results.json"));
  ASSERT_TRUE(rj.contains("energy"));
  ASSERT_EQ(rj["results"].size(), 3u * 3 + 1);
  const nlohmann::json& tok = rj["results"][0];
  for (const char* key : {"response", "ok", "error", "timestamp", "exp_num_users", "exp_duration",
                          "duration_ms", "exclude", "worker_idx", "request_idx", "sample_idx",
                          "response_idx", "n_tokens", "exp_req_min"}) {
    EXPECT_TRUE(tok.contains(key)) << key;
  }
  EXPECT_EQ(tok["duration_ms"].get<double>(), 50.0);  // first token: TTFT
  EXPECT_EQ(rj["results"][1]["duration_ms"].get<double>(), 20.0);
  EXPECT_EQ(rj["results"][1]["n_tokens"].get<int>(), 2);
  EXPECT_EQ(tok["timestamp"].get<int64_t>(), (kT0 + 50000) * 1000);
  EXPECT_EQ(tok["exp_req_min"].get<int>(), 120);
  EXPECT_EQ(rj["results"][3]["ok"].get<bool>(), false);
  EXPECT_EQ(rj["results"][3]["error"].get<std::string>(), "HTTP 503");

  // iteration.json: spec (without headers), verdict with reasons, statistics.
  nlohmann::json ij = nlohmann::json::parse(Slurp(d + "/iteration.json"));
  EXPECT_EQ(ij["experiment_id"], "exp1");
  EXPECT_EQ(ij["verdict"]["deciding_rule"], "welch_t_test");
  EXPECT_EQ(ij["verdict"]["reasons"][0]["detail"], "p = 0.4 >= 0.1");
  EXPECT_FALSE(ij["spec"]["target"].contains("headers"));
  EXPECT_EQ(Slurp(d + "/iteration.json").find("secret"), std::string::npos);
  EXPECT_EQ(ij["statistics"]["requests"]["total"], 4);
  EXPECT_EQ(ij["statistics"]["requests"]["failed"], 1);
  EXPECT_EQ(ij["statistics"]["send_lag_us"]["p50"].get<double>(), 100.0);
  EXPECT_EQ(ij["statistics"]["ttft_ms"]["max"].get<double>(), 50.0);
  EXPECT_FALSE(ij.contains("early_stop"));  // ran its whole duration

  // requests.jsonl: one record per line with the scheduled and actual send times.
  std::vector<std::string> reqs = Lines(Slurp(d + "/requests.jsonl"));
  ASSERT_EQ(reqs.size(), 4u);
  nlohmann::json r0 = nlohmann::json::parse(reqs[0]);
  EXPECT_EQ(r0["request_idx"], nullptr);  // 0 is the proto3 default, omitted
  EXPECT_TRUE(r0.contains("scheduled_unix_us"));
  EXPECT_TRUE(r0.contains("chunk_offset_us"));

  // No temporary files left behind.
  for (const auto& e : fs::directory_iterator(d)) {
    EXPECT_FALSE(absl::StrContains(e.path().filename().string(), ".tmp")) << e.path();
  }
}

TEST(ResultsWriterTest, AnEarlyStopSaysWhenAndByWhichRule) {
  const std::string root = testing::MakeTempDir("results-early");
  ResultsWriter writer(root);
  IterationFiles f = Files();
  f.stopped_early = true;
  f.verdict.set_early(true);
  f.verdict.set_state(v1::VERDICT_STATE_UNSUSTAINABLE);
  f.verdict.set_deciding_rule("backlog_trend");
  f.verdict.set_judged_at_elapsed_s(7.25);
  absl::StatusOr<std::string> dir = writer.CreateIterationDir("32_4", absl::FromUnixMicros(kT0));
  ASSERT_TRUE(dir.ok()) << dir.status();
  ASSERT_TRUE(writer.WriteIteration(*dir, f).ok());
  nlohmann::json ij = nlohmann::json::parse(Slurp(root + "/" + *dir + "/iteration.json"));
  EXPECT_TRUE(ij["stopped_early"].get<bool>());
  ASSERT_TRUE(ij.contains("early_stop")) << ij.dump(2);
  EXPECT_EQ(ij["early_stop"]["rule"], "backlog_trend");
  EXPECT_EQ(ij["early_stop"]["at_elapsed_s"].get<double>(), 7.25);
  EXPECT_EQ(ij["early_stop"]["duration_s"].get<double>(), 30.0);
  EXPECT_EQ(ij["early_stop"]["saved_s"].get<double>(), 30.0 - 7.25);
}

TEST(ResultsWriterTest, UnsafeLabelsWriteNothing) {
  const std::string root = testing::MakeTempDir("results-unsafe");
  ResultsWriter writer(root + "/inner");
  EXPECT_FALSE(writer.CreateIterationDir("../../x", absl::Now()).ok());
  EXPECT_FALSE(writer.WriteIteration("requests/../../x", Files()).ok());
  EXPECT_FALSE(writer.WriteIteration("/tmp/x", Files()).ok());
  EXPECT_TRUE(fs::is_empty(root));
}

TEST(ExperimentStoreTest, SavesLoadsAndSkipsBrokenFiles) {
  const std::string root = testing::MakeTempDir("store");
  ExperimentStore store(root);
  ASSERT_TRUE(store.Init().ok());
  v1::Experiment a;
  a.set_id("a");
  a.set_created_unix_us(2);
  a.set_state(v1::EXPERIMENT_STATE_RUNNING);
  a.add_pairs()->add_iterations()->set_req_min(60);
  v1::Experiment b;
  b.set_id("b");
  b.set_created_unix_us(1);
  ASSERT_TRUE(store.Save(a).ok());
  ASSERT_TRUE(store.Save(b).ok());
  a.mutable_pairs(0)->add_iterations()->set_req_min(120);
  ASSERT_TRUE(store.Save(a).ok());  // overwrite
  std::ofstream(root + "/experiments/c.json") << "{ torn";
  std::ofstream(root + "/experiments/d.json") << R"({"id": "not-d"})";
  std::ofstream(root + "/experiments/a.json.tmp.1.0") << "leftover";
  std::vector<std::string> errors;
  std::vector<v1::Experiment> all = store.LoadAll(&errors);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id(), "b");  // by creation time
  EXPECT_EQ(all[1].id(), "a");
  EXPECT_EQ(all[1].pairs(0).iterations_size(), 2);
  EXPECT_EQ(all[1].pairs(0).iterations(1).req_min(), 120);
  EXPECT_EQ(errors.size(), 2u);
  EXPECT_FALSE(store.Save([] { v1::Experiment x; x.set_id("../x"); return x; }()).ok());
}

}  // namespace
}  // namespace mstperf::controller
