// What mstperfctl prints: progress bar, iteration lines, the MST table, verdicts.
#include "services/ctl/format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mstperf::ctl {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace mstperf::v1;

TokenPair Pair(uint32_t in_min, uint32_t in_max, uint32_t out_min, uint32_t out_max,
               const std::string& label) {
  TokenPair p;
  p.mutable_input()->set_min(in_min);
  p.mutable_input()->set_max(in_max);
  p.mutable_output()->set_min(out_min);
  p.mutable_output()->set_max(out_max);
  p.set_label(label);
  return p;
}

TEST(FormatTest, ProgressBar) {
  EXPECT_EQ(ProgressBar(0, 10), "[..........]   0%");
  EXPECT_EQ(ProgressBar(0.35, 10), "[###.......]  35%");
  EXPECT_EQ(ProgressBar(1, 10), "[##########] 100%");
  EXPECT_EQ(ProgressBar(7, 4), "[####] 100%");     // clamped
  EXPECT_EQ(ProgressBar(-1, 4), "[....]   0%");    // clamped
  EXPECT_EQ(ProgressBar(0.0 / 0.0, 4), "[....]   0%");  // NaN
}

TEST(FormatTest, RatesAndNames) {
  EXPECT_EQ(FormatRate(120), "120");
  EXPECT_EQ(FormatRate(37.5), "37.5");
  EXPECT_EQ(FormatRate(1.0 / 3), "0.33");
  EXPECT_EQ(PairText(Pair(32, 32, 64, 64, "32_64")), "32:64");
  EXPECT_EQ(PairText(Pair(16, 64, 128, 128, "16-64_128")), "16-64:128");
  EXPECT_EQ(VerdictWord(VERDICT_STATE_CLIENT_LIMITED), "CLIENT-LIMITED");
  EXPECT_EQ(StageName(SEARCH_STAGE_BISECT), "stage 2 (bisect)");
}

TEST(FormatTest, TableAlignsColumns) {
  std::string t = FormatTable({"a", "number"}, {{"long cell", "1"}, {"x", "12345"}},
                              {false, true});
  EXPECT_EQ(t,
            "a          number\n"
            "---------  ------\n"
            "long cell       1\n"
            "x           12345\n");
}

TEST(FormatTest, IterationLines) {
  PairResult pair;
  *pair.mutable_tokens() = Pair(32, 32, 32, 32, "32_32");
  pair.set_largest_sustainable_req_min(60);
  IterationResult it;
  it.set_index(2);
  it.set_req_min(120);
  it.set_stage(SEARCH_STAGE_FIND_UNSUSTAINABLE);
  EXPECT_EQ(FormatIterationStarted(pair, it),
            "pair 32:32 | stage 1 (find unsustainable) | iteration 3 | REQ_MIN 120 | m 60 M -");
  it.set_confirmation(true);
  EXPECT_THAT(FormatIterationStarted(pair, it), HasSubstr("retry to confirm"));

  Verdict* v = it.mutable_verdict();
  v->set_state(VERDICT_STATE_UNSUSTAINABLE);
  v->set_deciding_rule("median_completions_per_min");
  auto* r = v->add_reasons();
  r->set_rule("success_rate");
  r->set_passed(true);
  r->set_detail("success rate 100% >= 95%");
  r = v->add_reasons();
  r->set_rule("median_completions_per_min");
  r->set_passed(false);
  r->set_detail("median 80/min < 0.95 x 120");
  it.set_started_unix_us(1'000'000);
  it.set_ended_unix_us(31'500'000);
  it.set_stopped_early(true);
  pair.set_smallest_unsustainable_req_min(120);
  EXPECT_EQ(FormatIterationFinished(pair, it),
            "pair 32:32 | iteration 3 | REQ_MIN 120 | UNSUSTAINABLE (median_completions_per_min: "
            "median 80/min < 0.95 x 120) | stopped early | 30.5 s | m 60 M 120");
}

TEST(FormatTest, ProgressLine) {
  IterationProgress p;
  p.set_elapsed_s(15);
  p.set_duration_s(30);
  p.set_sent(30);
  p.set_completed(25);
  p.set_failed(1);
  p.set_in_flight(4);
  p.set_offered_rate_per_min(120);
  p.set_achieved_rate_per_min(100);
  std::string plain = FormatProgress(p, 120, /*bar=*/false);
  EXPECT_EQ(plain,
            " 15.0/30 s REQ_MIN 120 | sent 30 done 25 failed 1 in flight 4 | offered 120 "
            "achieved 100 /min");
  std::string bar = FormatProgress(p, 120, /*bar=*/true, 10);
  EXPECT_THAT(bar, HasSubstr("[#####.....]  50% REQ_MIN 120"));
  p.set_dropped(3);
  p.mutable_send_lag_us()->set_count(30);
  p.mutable_send_lag_us()->set_p99(2500);
  p.set_offered_rate_per_min(0);  // not reported: left out rather than shown as 0
  EXPECT_THAT(FormatProgress(p, 120, false), HasSubstr("in flight 4 | achieved 100 /min"));
  EXPECT_THAT(FormatProgress(p, 120, false), AllOf(HasSubstr("DROPPED 3"),
                                                   HasSubstr("lag p99 2.5 ms")));
}

Experiment TwoPairs() {
  Experiment e;
  e.set_id("exp-1");
  e.set_state(EXPERIMENT_STATE_SUCCEEDED);
  auto* a = e.add_pairs();
  *a->mutable_tokens() = Pair(32, 32, 32, 32, "32_32");
  a->set_mst_req_min(180);
  a->set_finished(true);
  a->set_termination_reason("converged");
  a->add_iterations()->set_directory("requests/32_32/20261128T101500");
  a->add_iterations()->set_directory("requests/32_32/20261128T101600");
  auto* b = e.add_pairs();
  *b->mutable_tokens() = Pair(128, 128, 64, 64, "128_64");
  b->set_finished(true);
  b->set_termination_reason("no_sustainable_rate");
  b->add_iterations()->set_directory("requests/128_64/20261128T102000");
  return e;
}

TEST(FormatTest, MstTableWithCapacity) {
  std::string t = FormatMstTable(TwoPairs(), {{"32:32", 200}});
  EXPECT_EQ(t,
            "pair    MST req/min  capacity req/min  MST/capacity  iterations  reason               "
            "folder\n"
            "------  -----------  ----------------  ------------  ----------  -------------------  "
            "---------------\n"
            "32:32           180             200.0           90%           2  converged            "
            "requests/32_32\n"
            "128:64         none                 -             -           1  no_sustainable_rate  "
            "requests/128_64\n");
}

TEST(FormatTest, MstTableWithoutCapacityOmitsTheColumn) {
  std::string t = FormatMstTable(TwoPairs(), {});
  EXPECT_THAT(t, Not(HasSubstr("capacity")));
  EXPECT_THAT(t, HasSubstr("32:32           180           2  converged"));
}

TEST(FormatTest, VerdictListsEveryReason) {
  Verdict v;
  v.set_state(VERDICT_STATE_SUSTAINABLE);
  v.set_sustainable(true);
  v.set_deciding_rule("welch_t_test");
  v.set_success_rate_pct(100);
  auto* r = v.add_reasons();
  r->set_rule("success_rate");
  r->set_passed(true);
  r->set_detail("100% >= 95%");
  r = v.add_reasons();
  r->set_rule("welch_t_test");
  r->set_passed(true);
  r->set_detail("p = 0.41 >= 0.1");
  v.mutable_first_half()->set_count(10);
  v.mutable_first_half()->mutable_e2e_ms()->set_mean(100);
  std::string s = FormatVerdict(v);
  EXPECT_THAT(s, HasSubstr("verdict: SUSTAINABLE (EVALUATION=True), decided by welch_t_test"));
  EXPECT_THAT(s, HasSubstr("   pass success_rate: 100% >= 95%\n"));
  EXPECT_THAT(s, HasSubstr(" * pass welch_t_test: p = 0.41 >= 0.1\n"));
  EXPECT_THAT(s, HasSubstr("first half: 10 requests, e2e mean 100.0 ms"));
  EXPECT_THAT(s, Not(HasSubstr("second half")));
}

TEST(FormatTest, ListAndStatus) {
  Experiment e = TwoPairs();
  e.set_created_unix_us(1'795'860'900'000'000);  // 2026-11-28 10:15:00 UTC
  std::string list = FormatExperimentList({e});
  EXPECT_THAT(list, HasSubstr("exp-1  succeeded  2026-11-28 10:15:00  -     32:32=180 128:64=-"));
  EXPECT_EQ(FormatExperimentList({}), "no experiments\n");

  e.set_state(EXPERIMENT_STATE_RUNNING);
  e.set_current_pair(1);
  e.mutable_pairs(1)->set_stage(SEARCH_STAGE_BISECT);
  e.mutable_pairs(1)->set_current_req_min(45);
  e.mutable_pairs(1)->set_largest_sustainable_req_min(30);
  e.mutable_pairs(1)->set_smallest_unsustainable_req_min(60);
  e.mutable_spec()->mutable_target()->set_url("127.0.0.1:8000");
  std::string status = FormatExperimentStatus(e, {});
  EXPECT_THAT(status, HasSubstr("experiment exp-1: running\ntarget: 127.0.0.1:8000\n"));
  EXPECT_THAT(status, HasSubstr("now: pair 128:64 | stage 2 (bisect) | REQ_MIN 45 | m 30 M 60"));
  EXPECT_THAT(status, HasSubstr("MST req/min"));
}

}  // namespace
}  // namespace mstperf::ctl
