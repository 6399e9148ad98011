// The .env reader: syntax, every key, defaults, and every malformed case named by key and line.
#include "services/ctl/env_file.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mstperf::ctl {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using mstperf::v1::ExperimentSpec;

// A minimal valid file; cases append their own lines after it.
constexpr char kBase[] = "URL=127.0.0.1:8000\nDURATION=30s\nTOKENS_LIST=32:32\n";

ExperimentSpec MustParse(const std::string& text, std::vector<std::string>* warnings = nullptr) {
  auto parsed = SpecFromEnvText(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return {};
  if (warnings != nullptr) *warnings = parsed->warnings;
  return parsed->spec;
}

TEST(EnvFileTest, ReadsTheSeedStyleFile) {
  // The shape of the original's .env, with comments, export, quotes and CRLF endings.
  const std::string text =
      "# MoST configuration\r\n"
      "\r\n"
      "export URL=\"http://127.0.0.1:8000\"\r\n"
      "DURATION=1800s   # half an hour\r\n"
      "TOKENS_LIST='32:32,64:64'\r\n"
      "REQ_MIN_START=2048\r\n"
      "REQ_MIN_INCREASE_MULTIPLIER=2\r\n"
      "STOP_THRESHOLD=10\r\n"
      "FILTER_BUFFER=300\r\n"
      "SUCCESS_RATE=95\r\n";
  std::vector<std::string> warnings;
  ExperimentSpec spec = MustParse(text, &warnings);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ(spec.target().url(), "http://127.0.0.1:8000");
  EXPECT_EQ(spec.duration_s(), 1800);
  ASSERT_EQ(spec.tokens_size(), 2);
  EXPECT_EQ(spec.tokens(0).input().min(), 32u);
  EXPECT_EQ(spec.tokens(1).output().max(), 64u);
  EXPECT_EQ(spec.tokens(1).label(), "64_64");
  EXPECT_THAT(spec.req_min_start(), ElementsAre(2048));
  EXPECT_EQ(spec.multiplier(), 2);
  EXPECT_EQ(spec.stop_threshold(), 10);
  EXPECT_EQ(spec.threshold_type(), mstperf::v1::THRESHOLD_TYPE_ABSOLUTE);
  EXPECT_EQ(spec.filter_buffer_s(), 300);
  EXPECT_EQ(spec.success_rate_pct(), 95);
}

TEST(EnvFileTest, FillsDefaults) {
  ExperimentSpec spec = MustParse(kBase);
  EXPECT_THAT(spec.req_min_start(), ElementsAre(1));  // the original's default
  EXPECT_EQ(spec.multiplier(), 2);
  EXPECT_EQ(spec.stop_threshold(), 0.5);
  EXPECT_EQ(spec.threshold_type(), mstperf::v1::THRESHOLD_TYPE_ABSOLUTE);
  EXPECT_EQ(spec.filter_buffer_s(), -1);  // the controller's per-mode default
  EXPECT_EQ(spec.success_rate_pct(), 95);
  EXPECT_EQ(spec.cooldown_s(), 0);
  EXPECT_EQ(spec.evaluator_mode(), mstperf::v1::EVALUATOR_MODE_DEFAULT);
  EXPECT_EQ(spec.arrival(), mstperf::v1::ARRIVAL_POISSON);
  EXPECT_EQ(spec.max_iterations(), 100u);
  EXPECT_TRUE(spec.early_stop());
  EXPECT_TRUE(spec.prompt().use_tokenize_endpoint());
  EXPECT_EQ(spec.target().api(), mstperf::v1::API_COMPLETIONS);
}

TEST(EnvFileTest, ReadsEveryMstperfKey) {
  const std::string text = std::string(kBase) +
                           "MODEL=facebook/opt-125m\n"
                           "NAME=\"demo run\"\n"
                           "API=chat\n"
                           "EVALUATOR_MODE=most\n"
                           "ARRIVAL=gamma\n"
                           "GAMMA_SHAPE=0.5\n"
                           "SEED=42\n"
                           "MAX_ITERATIONS=12\n"
                           "LOADGEN_ADDRESSES=127.0.0.1:50052, 127.0.0.1:50062\n"
                           "EARLY_STOP=false\n"
                           "MAX_SEND_LAG_MS=20\n"
                           "THRESHOLD_TYPE=relative\n"
                           "COOLDOWN=5s\n"
                           "SLO_PERCENTILE=95\n"
                           "SLO_TTFT_MS=500\n"
                           "SLO_ITL_MS=50\n"
                           "SLO_TPOT_MS=40\n"
                           "SLO_E2E_MS=9000\n"
                           "SLO_ERROR_RATE=1\n"
                           "API_KEY_ENV=OPENAI_API_KEY\n"
                           "API_KEY_FILE=/etc/key\n"
                           "CA_BUNDLE=/etc/ca.pem\n"
                           "TLS_INSECURE=yes\n"
                           "HTTP2=on\n"
                           "CONNECT_TIMEOUT=5\n"
                           "FIRST_TOKEN_TIMEOUT=1m\n"
                           "IDLE_TIMEOUT=30s\n"
                           "TOTAL_TIMEOUT=10m\n"
                           "METRICS_URL=http://127.0.0.1:8000/metrics\n"
                           "PROMPT_CORPUS=/data/prompts.jsonl\n"
                           "USE_TOKENIZE=false\n";
  std::vector<std::string> warnings;
  ExperimentSpec spec = MustParse(text, &warnings);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ(spec.target().model(), "facebook/opt-125m");
  EXPECT_EQ(spec.name(), "demo run");
  EXPECT_EQ(spec.target().api(), mstperf::v1::API_CHAT);
  EXPECT_EQ(spec.evaluator_mode(), mstperf::v1::EVALUATOR_MODE_MOST);
  EXPECT_EQ(spec.arrival(), mstperf::v1::ARRIVAL_GAMMA);
  EXPECT_EQ(spec.gamma_shape(), 0.5);
  EXPECT_EQ(spec.seed(), 42u);
  EXPECT_EQ(spec.max_iterations(), 12u);
  EXPECT_THAT(spec.loadgen_addresses(), ElementsAre("127.0.0.1:50052", "127.0.0.1:50062"));
  EXPECT_FALSE(spec.early_stop());
  EXPECT_DOUBLE_EQ(spec.max_send_lag_p99_us(), 20000);
  EXPECT_EQ(spec.threshold_type(), mstperf::v1::THRESHOLD_TYPE_RELATIVE);
  EXPECT_EQ(spec.cooldown_s(), 5);
  EXPECT_EQ(spec.slo().percentile(), 95);
  EXPECT_EQ(spec.slo().ttft_ms(), 500);
  EXPECT_EQ(spec.slo().itl_ms(), 50);
  EXPECT_EQ(spec.slo().tpot_ms(), 40);
  EXPECT_EQ(spec.slo().e2e_ms(), 9000);
  EXPECT_EQ(spec.slo().max_error_rate_pct(), 1);
  EXPECT_EQ(spec.target().api_key_env(), "OPENAI_API_KEY");
  EXPECT_EQ(spec.target().api_key_file(), "/etc/key");
  EXPECT_EQ(spec.target().ca_bundle_path(), "/etc/ca.pem");
  EXPECT_TRUE(spec.target().tls_insecure());
  EXPECT_TRUE(spec.target().http2());
  EXPECT_EQ(spec.target().connect_timeout_s(), 5);
  EXPECT_EQ(spec.target().first_token_timeout_s(), 60);
  EXPECT_EQ(spec.target().idle_timeout_s(), 30);
  EXPECT_EQ(spec.target().total_timeout_s(), 600);
  EXPECT_EQ(spec.target().metrics_url(), "http://127.0.0.1:8000/metrics");
  EXPECT_EQ(spec.prompt().corpus_path(), "/data/prompts.jsonl");
  EXPECT_FALSE(spec.prompt().use_tokenize_endpoint());
}

TEST(EnvFileTest, TokenRangesAndPerPairStartValues) {
  ExperimentSpec spec = MustParse(
      "URL=127.0.0.1:8000\nDURATION=5m\nTOKENS_LIST=16-64:128-256, 32:64-128,64-64:256\n"
      "REQ_MIN_START=2048,2048,1024\n");
  ASSERT_EQ(spec.tokens_size(), 3);
  EXPECT_EQ(spec.tokens(0).input().min(), 16u);
  EXPECT_EQ(spec.tokens(0).input().max(), 64u);
  EXPECT_EQ(spec.tokens(0).output().min(), 128u);
  EXPECT_EQ(spec.tokens(0).output().max(), 256u);
  EXPECT_EQ(spec.tokens(0).label(), "16-64_128-256");
  EXPECT_EQ(spec.tokens(1).label(), "32_64-128");
  EXPECT_EQ(spec.tokens(2).label(), "64-64_256");  // the original's folder keeps the range text
  EXPECT_THAT(spec.req_min_start(), ElementsAre(2048, 2048, 1024));
  EXPECT_EQ(spec.duration_s(), 300);
}

TEST(EnvFileTest, DurationForms) {
  struct Case {
    const char* text;
    double seconds;
  };
  for (const Case& c : {Case{"1800s", 1800}, Case{"30s", 30}, Case{"5m", 300},
                        Case{"1h30m", 5400}, Case{"2.5m", 150}, Case{"45", 45},
                        Case{"0.5", 0.5}, Case{" 90s ", 90}, Case{"1500ms", 1.5}}) {
    auto d = ParseDurationSeconds(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_DOUBLE_EQ(*d, c.seconds) << c.text;
  }
  EXPECT_TRUE(ParseDurationSeconds("0s", /*allow_zero=*/true).ok());
  EXPECT_FALSE(ParseDurationSeconds("0s").ok());
}

TEST(EnvFileTest, AliasesOfLaterOriginalVersions) {
  ExperimentSpec spec = MustParse(std::string(kBase) +
                                  "ITERATION_HARD_LIMIT=15\nITERATION_COOLDOWN_SECONDS=180\n"
                                  "REQUEST_TIMEOUT=120\nTTFT_TIMEOUT=30\n");
  EXPECT_EQ(spec.max_iterations(), 15u);
  EXPECT_EQ(spec.cooldown_s(), 180);
  EXPECT_EQ(spec.target().total_timeout_s(), 120);
  EXPECT_EQ(spec.target().first_token_timeout_s(), 30);
}

TEST(EnvFileTest, SeedFormWithoutTokensList) {
  std::vector<std::string> warnings;
  ExperimentSpec spec = MustParse(
      "URL=127.0.0.1:8000\nDURATION=30s\nMIN_INPUT_TOKENS=100\nMAX_INPUT_TOKENS=200\n"
      "MIN_OUTPUT_TOKENS=50\nMAX_OUTPUT_TOKENS=50\n",
      &warnings);
  ASSERT_EQ(spec.tokens_size(), 1);
  EXPECT_EQ(spec.tokens(0).label(), "100-200_50");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("TOKENS_LIST is not set"));
}

TEST(EnvFileTest, MinMaxTokensAreSilentNextToTokensList) {
  std::vector<std::string> warnings;
  ExperimentSpec spec =
      MustParse(std::string(kBase) + "MIN_INPUT_TOKENS=1\nMAX_OUTPUT_TOKENS=9\n", &warnings);
  EXPECT_TRUE(warnings.empty());
  ASSERT_EQ(spec.tokens_size(), 1);
  EXPECT_EQ(spec.tokens(0).label(), "32_32");
}

TEST(EnvFileTest, EmptyValueMeansNotSet) {
  ExperimentSpec spec = MustParse(std::string(kBase) + "MODEL=\nSTOP_THRESHOLD=\nSEED=\"\"\n");
  EXPECT_EQ(spec.target().model(), "");
  EXPECT_EQ(spec.stop_threshold(), 0.5);
}

TEST(EnvFileTest, QuotesAndComments) {
  auto entries = ParseEnvEntries(
      "A=\"x # not a comment\"  # a comment\n"
      "B='single $HOME \\n kept'\n"
      "C=\"esc \\\"q\\\" \\\\ \\n\"\n"
      "D=value#nospace\n"
      "  export   E = spaced  \n"
      "exportF=1\n"
      "G=\n");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 7u);
  EXPECT_EQ((*entries)[0].value, "x # not a comment");
  EXPECT_EQ((*entries)[1].value, "single $HOME \\n kept");
  EXPECT_EQ((*entries)[2].value, "esc \"q\" \\ \n");
  EXPECT_EQ((*entries)[3].value, "value#nospace");
  EXPECT_EQ((*entries)[4].key, "E");
  EXPECT_EQ((*entries)[4].value, "spaced");
  EXPECT_EQ((*entries)[5].key, "exportF");
  EXPECT_EQ((*entries)[6].value, "");
  EXPECT_EQ((*entries)[6].line, 7);
}

TEST(EnvFileTest, WarnsAboutUnknownIgnoredAndRepeatedKeys) {
  std::vector<std::string> warnings;
  MustParse(std::string(kBase) + "DURATOIN=30s\nGPUS=4\nSUCCESS_RATE=90\nSUCCESS_RATE=99\n"
                                 "COMPLETELY_UNRELATED=1\nGAMMA_SHAPE=2\n",
            &warnings);
  ASSERT_EQ(warnings.size(), 5u);
  EXPECT_THAT(warnings[0], AllOf(HasSubstr("line 4"), HasSubstr("DURATOIN"),
                                 HasSubstr("did you mean DURATION?")));
  EXPECT_THAT(warnings[1], AllOf(HasSubstr("line 5"), HasSubstr("GPUS"),
                                 HasSubstr("original tool"), HasSubstr("ignored")));
  EXPECT_THAT(warnings[2], AllOf(HasSubstr("line 7"), HasSubstr("SUCCESS_RATE"),
                                 HasSubstr("line 6")));
  EXPECT_THAT(warnings[3], AllOf(HasSubstr("COMPLETELY_UNRELATED"), HasSubstr("not a key")));
  EXPECT_THAT(warnings[3], ::testing::Not(HasSubstr("did you mean")));
  EXPECT_THAT(warnings[4], AllOf(HasSubstr("GAMMA_SHAPE"), HasSubstr("ARRIVAL=gamma")));
}

TEST(EnvFileTest, EarlyStopIsOffInMostMode) {
  std::vector<std::string> warnings;
  ExperimentSpec spec = MustParse(std::string(kBase) + "EVALUATOR_MODE=most\n", &warnings);
  EXPECT_FALSE(spec.early_stop());
  EXPECT_TRUE(warnings.empty());
  spec = MustParse(std::string(kBase) + "EVALUATOR_MODE=most\nEARLY_STOP=true\n", &warnings);
  EXPECT_FALSE(spec.early_stop());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("EARLY_STOP"));
}

// Every malformed case: the error names the line, the key and what was expected.
struct BadCase {
  std::string name;
  std::string text;  // appended to kBase unless `whole`
  std::vector<std::string> expected;  // substrings of the message
  bool whole = false;
};

class BadEnvTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadEnvTest, ErrorNamesKeyLineAndExpectation) {
  const BadCase& c = GetParam();
  auto parsed = SpecFromEnvText(c.whole ? c.text : std::string(kBase) + c.text, "my.env");
  ASSERT_FALSE(parsed.ok()) << c.name;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("my.env"));
  for (const auto& s : c.expected) {
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(s)) << c.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, BadEnvTest,
    ::testing::Values(
        BadCase{"no_equals", "JUSTAWORD\n", {"line 4", "expected KEY=VALUE", "JUSTAWORD"}},
        BadCase{"bad_key", "MY-KEY=1\n", {"line 4", "expected a KEY", "MY-KEY"}},
        BadCase{"empty_key", "=1\n", {"line 4", "expected a KEY"}},
        BadCase{"digit_key", "1KEY=1\n", {"line 4", "1KEY"}},
        BadCase{"unterminated_double", "MODEL=\"abc\n", {"line 4", "MODEL", "unterminated"}},
        BadCase{"unterminated_single", "MODEL='abc\n", {"line 4", "MODEL", "unterminated"}},
        BadCase{"text_after_quote", "MODEL=\"a\" b\n", {"line 4", "MODEL", "after the closing"}},
        BadCase{"duration_word", "DURATION=thirty\n", {"line 4", "DURATION", "30s, 5m"}},
        BadCase{"duration_zero", "DURATION=0s\n", {"line 4", "DURATION", "> 0"}},
        BadCase{"duration_negative", "DURATION=-5s\n", {"line 4", "DURATION"}},
        BadCase{"duration_unit", "DURATION=30x\n", {"line 4", "DURATION"}},
        BadCase{"tokens_one_side", "TOKENS_LIST=32\n", {"line 4", "TOKENS_LIST", "in:out"}},
        BadCase{"tokens_three_sides", "TOKENS_LIST=1:2:3\n", {"line 4", "TOKENS_LIST"}},
        BadCase{"tokens_empty_entry", "TOKENS_LIST=32:32,,64:64\n",
                {"line 4", "TOKENS_LIST", "entry 2 is empty"}},
        BadCase{"tokens_trailing_comma", "TOKENS_LIST=32:32,\n", {"line 4", "TOKENS_LIST"}},
        BadCase{"tokens_zero", "TOKENS_LIST=0:32\n", {"line 4", "TOKENS_LIST", "input side"}},
        BadCase{"tokens_negative", "TOKENS_LIST=32:-5\n", {"line 4", "TOKENS_LIST", "output"}},
        BadCase{"tokens_word", "TOKENS_LIST=abc:32\n", {"line 4", "TOKENS_LIST", "abc"}},
        BadCase{"tokens_reversed_range", "TOKENS_LIST=64-16:32\n",
                {"line 4", "TOKENS_LIST", "minimum above its maximum"}},
        BadCase{"tokens_bad_range", "TOKENS_LIST=1-2-3:32\n", {"line 4", "TOKENS_LIST"}},
        BadCase{"req_min_word", "REQ_MIN_START=fast\n", {"line 4", "REQ_MIN_START", "fast"}},
        BadCase{"req_min_zero", "REQ_MIN_START=0\n", {"line 4", "REQ_MIN_START", "positive"}},
        BadCase{"req_min_count", "TOKENS_LIST=32:32,64:64,128:128\nREQ_MIN_START=10,20\n",
                {"line 5", "REQ_MIN_START", "2 values", "3 pairs"}},
        BadCase{"multiplier_one", "REQ_MIN_INCREASE_MULTIPLIER=1\n",
                {"line 4", "REQ_MIN_INCREASE_MULTIPLIER", "greater than 1"}},
        BadCase{"multiplier_word", "REQ_MIN_INCREASE_MULTIPLIER=double\n",
                {"line 4", "REQ_MIN_INCREASE_MULTIPLIER"}},
        BadCase{"threshold_negative", "STOP_THRESHOLD=-1\n",
                {"line 4", "STOP_THRESHOLD", "positive"}},
        BadCase{"threshold_type", "THRESHOLD_TYPE=percent\n",
                {"line 4", "THRESHOLD_TYPE", "absolute or relative"}},
        BadCase{"filter_buffer", "FILTER_BUFFER=-10\n", {"line 4", "FILTER_BUFFER"}},
        BadCase{"success_rate_high", "SUCCESS_RATE=101\n", {"line 4", "SUCCESS_RATE", "(0, 100]"}},
        BadCase{"success_rate_word", "SUCCESS_RATE=most\n", {"line 4", "SUCCESS_RATE"}},
        BadCase{"cooldown", "COOLDOWN=soon\n", {"line 4", "COOLDOWN"}},
        BadCase{"api", "API=grpc\n", {"line 4", "API", "completions or chat"}},
        BadCase{"mode", "EVALUATOR_MODE=strict\n", {"line 4", "EVALUATOR_MODE", "most or default"}},
        BadCase{"arrival", "ARRIVAL=bursty\n", {"line 4", "ARRIVAL", "constant, poisson or gamma"}},
        BadCase{"gamma_shape", "GAMMA_SHAPE=0\n", {"line 4", "GAMMA_SHAPE"}},
        BadCase{"seed", "SEED=-1\n", {"line 4", "SEED"}},
        BadCase{"max_iterations", "MAX_ITERATIONS=0\n", {"line 4", "MAX_ITERATIONS"}},
        BadCase{"hard_limit_alias", "ITERATION_HARD_LIMIT=many\n",
                {"line 4", "ITERATION_HARD_LIMIT"}},
        BadCase{"loadgen_addresses", "LOADGEN_ADDRESSES=a:1,,b:2\n",
                {"line 4", "LOADGEN_ADDRESSES"}},
        BadCase{"early_stop", "EARLY_STOP=maybe\n", {"line 4", "EARLY_STOP", "true or false"}},
        BadCase{"max_send_lag", "MAX_SEND_LAG_MS=0\n", {"line 4", "MAX_SEND_LAG_MS", "milliseconds > 0"}},
        BadCase{"slo_percentile", "SLO_PERCENTILE=0\n", {"line 4", "SLO_PERCENTILE"}},
        BadCase{"slo_ttft", "SLO_TTFT_MS=-3\n", {"line 4", "SLO_TTFT_MS"}},
        BadCase{"slo_error_rate", "SLO_ERROR_RATE=200\n", {"line 4", "SLO_ERROR_RATE"}},
        BadCase{"timeout", "TOTAL_TIMEOUT=forever\n", {"line 4", "TOTAL_TIMEOUT"}},
        BadCase{"url_spaces", "URL=http://a b\n", {"line 4", "URL"}},
        BadCase{"legacy_tokens", "MIN_INPUT_TOKENS=lots\n", {"line 4", "MIN_INPUT_TOKENS"}},
        BadCase{"missing_url", "DURATION=30s\nTOKENS_LIST=32:32\n", {"URL is required"}, true},
        BadCase{"missing_duration", "URL=x:1\nTOKENS_LIST=32:32\n", {"DURATION is required"},
                true},
        BadCase{"missing_tokens", "URL=x:1\nDURATION=30s\n", {"TOKENS_LIST is required"}, true},
        BadCase{"empty_file", "", {"URL is required"}, true}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

TEST(EnvFileTest, KeyDocsCoverEveryKeyOnce) {
  std::set<std::string> seen;
  for (const auto& d : EnvKeyDocs()) {
    EXPECT_TRUE(seen.insert(d.key).second) << d.key;
    EXPECT_NE(std::string(d.meaning), "") << d.key;
  }
  for (const char* key : {"URL", "DURATION", "TOKENS_LIST", "REQ_MIN_START",
                          "REQ_MIN_INCREASE_MULTIPLIER", "STOP_THRESHOLD", "THRESHOLD_TYPE",
                          "FILTER_BUFFER", "SUCCESS_RATE", "COOLDOWN", "MODEL", "API",
                          "EVALUATOR_MODE", "ARRIVAL", "SEED", "MAX_ITERATIONS",
                          "LOADGEN_ADDRESSES", "EARLY_STOP", "SLO_TTFT_MS"}) {
    EXPECT_TRUE(seen.count(key)) << key;
  }
}

}  // namespace
}  // namespace mstperf::ctl
