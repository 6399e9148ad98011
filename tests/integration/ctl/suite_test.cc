// mstperfctl against a real suite on loopback (simulator, two loadgen replicas, evaluator,
// controller; every port 0), the ctl binary run as a subprocess: run (with the MST table and
// the simulator's capacity), detach on Ctrl-C, status/list/cancel, iterate, evaluate.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "services/common/testing/process.h"
#include "tests/integration/ctl/subprocess.h"

namespace mstperf::ctl::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using mstperf::testing::ServiceProcess;

constexpr char kOutputCsvHeader[] =
    "received_timestamp,complete_response_time,success_rate,success,worker_idx,request_idx";

std::string Bin(const std::string& name) { return std::string(MSTPERF_BIN_DIR) + "/" + name; }

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// One suite for every test of this binary: starting it costs seconds.
class SuiteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    results_dir_ = new std::string(mstperf::testing::MakeTempDir("ctl-suite-results"));
    // A slow simulator (2 slots, 40 ms steps): its capacity for 32:16 is a few requests per
    // second, so the suite stays light on a loaded 2-core machine.
    auto sim = ServiceProcess::Start(
        Bin("mstperf-simulator"),
        {"--port=0", "--host=127.0.0.1", "--max_num_seqs=2", "--step_base_ms=40"});
    ASSERT_TRUE(sim.ok()) << sim.status();
    simulator_ = sim->release();
    std::vector<std::string> loadgens;
    for (int i = 0; i < 2; ++i) {
      auto lg = ServiceProcess::Start(Bin("mstperf-loadgen"),
                                      {"--port=0", "--metrics_port=-1", "--host=127.0.0.1"});
      ASSERT_TRUE(lg.ok()) << lg.status();
      loadgens.push_back((*lg)->grpc_address());
      loadgens_[i] = lg->release();
    }
    auto ev = ServiceProcess::Start(Bin("mstperf-evaluator"),
                                    {"--port=0", "--metrics_port=-1", "--host=127.0.0.1"});
    ASSERT_TRUE(ev.ok()) << ev.status();
    evaluator_ = ev->release();
    auto ctl = ServiceProcess::Start(
        Bin("mstperf-controller"),
        {"--port=0", "--metrics_port=-1", "--host=127.0.0.1", "--results_dir=" + *results_dir_,
         "--loadgen=" + loadgens[0] + "," + loadgens[1],
         "--evaluator=" + evaluator_->grpc_address()});
    ASSERT_TRUE(ctl.ok()) << ctl.status();
    controller_ = ctl->release();
  }

  static void TearDownTestSuite() {
    delete controller_;
    delete evaluator_;
    for (auto*& lg : loadgens_) delete lg;
    delete simulator_;
  }

  void SetUp() override {
    ASSERT_NE(controller_, nullptr);
    dir_ = mstperf::testing::MakeTempDir("ctl-suite");
  }

  static std::string SimUrl() {
    return absl::StrCat("http://127.0.0.1:", simulator_->port("http_port"));
  }
  static std::string LoadgenList() {
    return loadgens_[0]->grpc_address() + "," + loadgens_[1]->grpc_address();
  }

  // A tiny experiment: short iterations, a coarse threshold, few iterations.
  std::string TinyEnv(const std::string& extra = "") {
    const std::string path = dir_ + "/tiny.env";
    WriteText(path, absl::StrCat("# a tiny experiment for tests\n"
                                 "URL=",
                                 SimUrl(),
                                 "\n"
                                 "TOKENS_LIST=32:16\n"
                                 "REQ_MIN_START=60\n"
                                 "DURATION=4s\n"
                                 "STOP_THRESHOLD=0.5\n"
                                 "THRESHOLD_TYPE=relative\n"
                                 "FILTER_BUFFER=0\n"
                                 "MAX_ITERATIONS=4\n"
                                 "SEED=7\n",
                                 extra));
    return path;
  }

  Output Ctl(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(120)) {
    args.insert(args.begin(), CtlPath());
    args.push_back("--controller=" + controller_->grpc_address());
    return RunCmd(args, {}, timeout);
  }

  static std::string* results_dir_;
  static ServiceProcess* simulator_;
  static ServiceProcess* loadgens_[2];
  static ServiceProcess* evaluator_;
  static ServiceProcess* controller_;
  std::string dir_;
};

std::string* SuiteTest::results_dir_ = nullptr;
ServiceProcess* SuiteTest::simulator_ = nullptr;
ServiceProcess* SuiteTest::loadgens_[2] = {nullptr, nullptr};
ServiceProcess* SuiteTest::evaluator_ = nullptr;
ServiceProcess* SuiteTest::controller_ = nullptr;

TEST_F(SuiteTest, RunFollowsTheSearchAndPrintsTheMstTable) {
  Output o = Ctl({"run", "--env-file", TinyEnv(), "--progress=plain", "--progress_every_s=1"},
                 absl::Seconds(180));
  ASSERT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_THAT(o.out, HasSubstr("experiment "));
  EXPECT_THAT(o.out, HasSubstr("started: 1 pair(s) against " + SimUrl()));
  // Live lines: the first iteration, with its stage and REQ_MIN, and its verdict.
  // The first iteration may start before the watch attaches; then the snapshot says so.
  EXPECT_THAT(o.out, ::testing::ContainsRegex(
                         "(pair 32:16 \\| stage 1 \\(find unsustainable\\) \\| iteration 1 "
                         "\\| REQ_MIN 60|now: pair 32:16 \\| stage 1 \\(find unsustainable\\) "
                         "\\| REQ_MIN 60)"));
  EXPECT_THAT(o.out, HasSubstr("pair 32:16 | iteration 1 | REQ_MIN 60 | "));
  EXPECT_THAT(o.out, ::testing::ContainsRegex("sent [0-9]+ done [0-9]+"));
  // The table, with the simulator's closed-form capacity next to the MST.
  EXPECT_THAT(o.out, AllOf(HasSubstr("MST req/min"), HasSubstr("capacity req/min"),
                           HasSubstr("requests/32_16")));
  std::smatch m;
  const std::regex row(R"(\n32:16 +([0-9.]+|none) +([0-9.]+) +)");
  ASSERT_TRUE(std::regex_search(o.out, m, row)) << o.out;
  EXPECT_GT(std::stod(m[2]), 0);  // the capacity column

  // The files of every iteration, in the original's layout.
  int folders = 0;
  for (const auto& d : fs::directory_iterator(*results_dir_ + "/requests/32_16")) {
    ++folders;
    std::ifstream in(d.path() / "output.csv");
    std::string header;
    std::getline(in, header);
    EXPECT_EQ(header, kOutputCsvHeader) << d.path();
    EXPECT_TRUE(fs::exists(d.path() / "results.csv")) << d.path();
    EXPECT_TRUE(fs::exists(d.path() / "results.json")) << d.path();
  }
  EXPECT_GE(folders, 1);

  // status and list know it.
  const std::regex id_re("experiment ([A-Za-z0-9._-]+) started");
  ASSERT_TRUE(std::regex_search(o.out, m, id_re));
  const std::string id = m[1];
  Output s = Ctl({"status", id});
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_THAT(s.out, AllOf(HasSubstr("experiment " + id + ": succeeded"), HasSubstr("32:16")));
  // Without an id, status shows the latest experiment.
  Output latest = Ctl({"status"});
  EXPECT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_THAT(latest.out, AllOf(HasSubstr("experiment "), HasSubstr("MST req/min")));
  Output l = Ctl({"list"});
  EXPECT_EQ(l.exit_code, 0) << l.err;
  EXPECT_THAT(l.out, AllOf(HasSubstr(id), HasSubstr("succeeded")));
}

TEST_F(SuiteTest, BadEnvLineIsReportedByKeyAndNothingStarts) {
  Output before = Ctl({"list"});
  Output o = Ctl({"run", "--env-file", TinyEnv("DURATION=soon\n")});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, AllOf(HasSubstr("tiny.env line 11: DURATION"), HasSubstr("30s, 5m")));
  Output after = Ctl({"list"});
  EXPECT_EQ(Lines(before.out).size(), Lines(after.out).size()) << after.out;
}

TEST_F(SuiteTest, ControllerRejectionIsAClearMessage) {
  // The .env is well formed; the controller rejects an id that is not a safe name.
  Output o = Ctl({"run", "--env-file", TinyEnv(), "--id=../../escape"});
  EXPECT_EQ(o.exit_code, 2) << o.out << o.err;
  EXPECT_THAT(o.err, HasSubstr("the controller rejected the request"));
}

TEST_F(SuiteTest, CtrlCDetachesAndCancelStops) {
  Subprocess run({CtlPath(), "run", "--env-file", TinyEnv("DURATION=30s\n"), "--progress=plain",
                  "--controller=" + controller_->grpc_address()});
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::smatch m;
  const std::regex id_re("experiment ([A-Za-z0-9._-]+) started");
  std::string so_far;
  while (absl::Now() < deadline) {
    so_far = run.OutSoFar();
    if (std::regex_search(so_far, m, id_re)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(std::regex_search(so_far, m, id_re)) << so_far;
  const std::string id = m[1];
  run.Signal(SIGINT);
  Output o = run.Wait(absl::Seconds(20));
  EXPECT_EQ(o.exit_code, 130) << o.out << o.err;
  EXPECT_THAT(o.out, AllOf(HasSubstr("detached: experiment " + id + " keeps running"),
                           HasSubstr("mstperfctl cancel " + id)));

  Output s = Ctl({"status", id});
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_THAT(s.out, ::testing::AnyOf(HasSubstr(": running"), HasSubstr(": pending")));

  Output c = Ctl({"cancel", id});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  // Cancelling is clean but may take a moment to settle.
  std::string state;
  for (int i = 0; i < 100; ++i) {
    state = Ctl({"status", id}).out;
    if (state.find(": cancelled") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(state, HasSubstr("experiment " + id + ": cancelled"));

  Output missing = Ctl({"cancel", "no-such-experiment"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("not found"));
}

TEST_F(SuiteTest, RunReattachesWhenTheControllerRestarts) {
  // A controller of this test's own, killed with SIGKILL mid-experiment and restarted on the
  // same port and results directory: it resumes the experiment and `run` follows it to the end.
  const std::string results = mstperf::testing::MakeTempDir("ctl-restart-results");
  const std::vector<std::string> flags = {"--metrics_port=-1", "--host=127.0.0.1",
                                          "--results_dir=" + results, "--loadgen=" + LoadgenList(),
                                          "--evaluator=" + evaluator_->grpc_address()};
  std::vector<std::string> args = flags;
  args.push_back("--port=0");
  auto first = ServiceProcess::Start(Bin("mstperf-controller"), args);
  ASSERT_TRUE(first.ok()) << first.status();
  const int port = (*first)->port("grpc_port");
  Subprocess run({CtlPath(), "run", "--env-file", TinyEnv("DURATION=3s\nMAX_ITERATIONS=3\n"),
                  "--progress=plain", absl::StrCat("--controller=127.0.0.1:", port)});
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline && run.OutSoFar().find("started") == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_THAT(run.OutSoFar(), HasSubstr("started"));
  (*first)->Signal(SIGKILL);
  (*first)->Wait(absl::Seconds(10));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  args = flags;
  args.push_back(absl::StrCat("--port=", port));
  auto second = ServiceProcess::Start(Bin("mstperf-controller"), args);
  ASSERT_TRUE(second.ok()) << second.status();
  Output o = run.Wait(absl::Seconds(120));
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_THAT(o.err, HasSubstr("lost the controller"));
  EXPECT_THAT(o.out, AllOf(HasSubstr("MST req/min"), HasSubstr("32:16")));
}

TEST_F(SuiteTest, IterateWritesTheIterationFiles) {
  const std::string out = dir_ + "/iter";
  Output o = RunCmd({CtlPath(), "iterate", "--url", SimUrl(), "--tokens", "32:16", "--req-min",
                     "120", "--duration", "3s", "--arrival", "constant", "--loadgen",
                     LoadgenList(), "--out", out});
  ASSERT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_THAT(o.out, AllOf(HasSubstr("through 2 loadgen(s)"), HasSubstr("succeeded"),
                           HasSubstr("send lag p50")));

  const std::vector<std::string> rows = Lines(ReadText(out + "/output.csv"));
  ASSERT_GE(rows.size(), 2u);
  EXPECT_EQ(rows[0], kOutputCsvHeader);
  // 120 req/min for 3 s, constant spacing: 6 requests, split over both replicas.
  EXPECT_EQ(rows.size() - 1, 6u);
  std::set<std::string> workers;
  for (size_t i = 1; i < rows.size(); ++i) {
    std::vector<std::string> cells = absl::StrSplit(rows[i], ',');
    ASSERT_EQ(cells.size(), 6u) << rows[i];
    EXPECT_EQ(cells[3], "True") << rows[i];
    workers.insert(cells[4]);
  }
  EXPECT_EQ(workers.size(), 2u);

  // results.json: fmperf's per-token records.
  nlohmann::json results = nlohmann::json::parse(ReadText(out + "/results.json"));
  ASSERT_TRUE(results.contains("results"));
  ASSERT_TRUE(results.contains("energy"));
  ASSERT_GE(results["results"].size(), 6u);
  for (const char* key : {"response", "ok", "error", "timestamp", "exp_num_users", "exp_duration",
                          "duration_ms", "exclude", "worker_idx", "request_idx", "sample_idx",
                          "response_idx", "n_tokens", "exp_req_min"}) {
    EXPECT_TRUE(results["results"][0].contains(key)) << key;
  }
  // Ours: one record per request with its scheduled and actual send.
  const std::vector<std::string> records = Lines(ReadText(out + "/requests.jsonl"));
  EXPECT_EQ(records.size(), 6u);
  nlohmann::json first = nlohmann::json::parse(records[0]);
  EXPECT_TRUE(first.contains("scheduled_unix_us"));
  EXPECT_TRUE(first.contains("sent_unix_us"));
  EXPECT_TRUE(fs::exists(out + "/iteration.json"));

  // evaluate on what iterate wrote: REQ_MIN comes from iteration.json.
  Output e = RunCmd({CtlPath(), "evaluate", "--mode", "default", out});
  EXPECT_TRUE(e.exit_code == 0 || e.exit_code == 1) << e.out << e.err;
  EXPECT_THAT(e.out, AllOf(HasSubstr("REQ_MIN 120 (from iteration.json)"), HasSubstr("verdict: ")));
}

// One replica of two cannot be reached: the other's half of the schedule is still written, the
// unreachable one is named, and the exit code says the iteration is incomplete.
TEST_F(SuiteTest, IterateKeepsWhatTheReachableReplicaSent) {
  const std::string out = dir_ + "/iter-partial";
  Output o = RunCmd({CtlPath(), "iterate", "--url", SimUrl(), "--tokens", "32:16", "--req-min",
                     "120", "--duration", "3s", "--arrival", "constant", "--loadgen",
                     loadgens_[0]->grpc_address() + ",127.0.0.1:1", "--out", out});
  EXPECT_EQ(o.exit_code, 1) << o.out << o.err;
  EXPECT_THAT(o.err, HasSubstr("cannot reach the loadgen at 127.0.0.1:1"));
  EXPECT_THAT(o.out, HasSubstr("warning: loadgen 127.0.0.1:1 failed"));
  // 6 requests in the common schedule; replica 0 sends the even ones.
  const std::vector<std::string> rows = Lines(ReadText(out + "/output.csv"));
  ASSERT_EQ(rows.size(), 1u + 3u) << ReadText(out + "/output.csv");
  for (size_t i = 1; i < rows.size(); ++i) {
    std::vector<std::string> cells = absl::StrSplit(rows[i], ',');
    ASSERT_EQ(cells.size(), 6u) << rows[i];
    EXPECT_EQ(cells[4], "0") << rows[i];
    EXPECT_EQ(std::stoi(cells[5]) % 2, 0) << rows[i];
  }
}

TEST_F(SuiteTest, IterateBadInputIsNamed) {
  Output o = RunCmd({CtlPath(), "iterate", "--url", SimUrl(), "--tokens", "32", "--req-min",
                     "60", "--duration", "3s", "--out", dir_ + "/x"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("--tokens"));
  o = RunCmd({CtlPath(), "iterate", "--url", SimUrl(), "--tokens", "32:16", "--req-min", "-5",
              "--duration", "3s", "--out", dir_ + "/x"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("--req-min"));
  o = RunCmd({CtlPath(), "iterate", "--url", SimUrl(), "--tokens", "32:16", "--req-min", "60",
              "--duration", "0s", "--out", dir_ + "/x"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("--duration"));
  o = RunCmd({CtlPath(), "iterate", "--url", SimUrl(), "--tokens", "32:16", "--req-min", "60",
              "--duration", "3s", "--out", dir_ + "/x", "--loadgen", "127.0.0.1:1"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_THAT(o.err, HasSubstr("cannot reach the loadgen at 127.0.0.1:1"));
}

// The evaluator's recorded output.csv files (SciPy reference verdicts), re-judged with
// `evaluate --mode most`, in-process and through the evaluator service.
TEST_F(SuiteTest, EvaluateMostGivesTheRecordedVerdicts) {
  const std::string data = std::string(MSTPERF_TEST_DATA_DIR) + "/evaluator";
  nlohmann::json ref = nlohmann::json::parse(ReadText(data + "/most_reference.json"));
  ASSERT_GE(ref["cases"].size(), 5u);
  int checked = 0;
  for (const auto& c : ref["cases"]) {
    const std::string name = c["name"];
    const bool verdict = c["verdict"];
    const std::string rule = c["deciding_rule"];
    for (bool service : {false, true}) {
      std::vector<std::string> args = {
          CtlPath(), "evaluate", "--mode", "most", "--req-min", c["req_min"].dump(),
          "--filter-buffer", c["filter_buffer_s"].dump(), "--success-rate",
          c["success_rate_threshold"].dump(), data + "/" + name};
      if (service) args.push_back("--evaluator=" + evaluator_->grpc_address());
      Output o = RunCmd(args);
      EXPECT_EQ(o.exit_code, verdict ? 0 : 1) << name << "\n" << o.out << o.err;
      EXPECT_THAT(o.out, HasSubstr(verdict ? "(EVALUATION=True)" : "(EVALUATION=False)")) << name;
      EXPECT_THAT(o.out, HasSubstr("decided by " + rule)) << name << "\n" << o.out;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2 * static_cast<int>(ref["cases"].size()));
}

TEST_F(SuiteTest, EvaluateReadsReqMinFromTheOriginalsResultsCsv) {
  // A folder as the original tool leaves it: output.csv and results.csv (no iteration.json).
  const std::string data = std::string(MSTPERF_TEST_DATA_DIR) + "/evaluator";
  const std::string dir = dir_ + "/original";
  fs::create_directories(dir);
  fs::copy_file(data + "/stable/output.csv", dir + "/output.csv");
  WriteText(dir + "/results.csv",
            "INPUT_TOKENS,OUTPUT_TOKENS,EVALUATION,REQ_MIN,DURATION\n32,32,True,60,900s\n");
  Output o = RunCmd({CtlPath(), "evaluate", "--mode", "most", dir});
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_THAT(o.out, AllOf(HasSubstr("REQ_MIN 60 (from results.csv)"),
                           HasSubstr("FILTER_BUFFER 300 s"), HasSubstr("EVALUATION=True")));

  Output none = RunCmd({CtlPath(), "evaluate", "--mode", "most", data + "/stable"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("--req-min"));
  Output bad_mode = RunCmd({CtlPath(), "evaluate", "--mode", "strict", dir});
  EXPECT_EQ(bad_mode.exit_code, 2);
  EXPECT_THAT(bad_mode.err, HasSubstr("--mode"));
  Output no_dir = RunCmd({CtlPath(), "evaluate", dir_ + "/nothing-here"});
  EXPECT_EQ(no_dir.exit_code, 2);
  EXPECT_THAT(no_dir.err, HasSubstr("is not a folder"));
}

}  // namespace
}  // namespace mstperf::ctl::testing
