// The search state machine driven by scripted verdict sequences: every REQ_MIN it visits is
// checked against the original's rules (most mode) and against ours (default mode).
#include "services/controller/search.h"

#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mstperf::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

SearchConfig Most(double start, double multiplier, double threshold, bool relative = false) {
  SearchConfig c;
  c.mode = SearchMode::kMost;
  c.start = start;
  c.multiplier = multiplier;
  c.stop_threshold = threshold;
  c.relative = relative;
  return c;
}

Observation T() { return {Outcome::kSustainable, false, 0}; }
Observation F() { return {Outcome::kUnsustainable, false, 0}; }
Observation Fc(double achieved = 0) { return {Outcome::kUnsustainable, true, achieved}; }
Observation X() { return {Outcome::kInconclusive, false, 0}; }

// Feeds `script` and returns the REQ_MIN at which each outcome was recorded. Fails the test if
// the search ends before the script does, or has not ended after it.
std::vector<double> Drive(Search& search, const std::vector<Observation>& script) {
  std::vector<double> visited;
  for (size_t i = 0; i < script.size(); ++i) {
    EXPECT_FALSE(search.done()) << "search ended before outcome " << i;
    if (search.done()) break;
    visited.push_back(search.next_req_min());
    search.Record(script[i]);
  }
  EXPECT_TRUE(search.done()) << "search still running after the script, next "
                             << search.next_req_min();
  return visited;
}

// "TTFF..." as observations (most-mode style: no certainty, no estimate).
std::vector<Observation> Script(const std::string& s) {
  std::vector<Observation> out;
  for (char c : s) out.push_back(c == 'T' ? T() : c == 'F' ? F() : X());
  return out;
}

TEST(RoundHalfEvenTest, MatchesPythonRound) {
  EXPECT_EQ(RoundHalfEven(0.5), 0);
  EXPECT_EQ(RoundHalfEven(1.5), 2);
  EXPECT_EQ(RoundHalfEven(2.5), 2);
  EXPECT_EQ(RoundHalfEven(4.5), 4);
  EXPECT_EQ(RoundHalfEven(7.5), 8);
  EXPECT_EQ(RoundHalfEven(13.5), 14);
  EXPECT_EQ(RoundHalfEven(2.4999), 2);
  EXPECT_EQ(RoundHalfEven(2.5001), 3);
}

TEST(MostSearchTest, MultipliesConfirmsThenBisectsAbsolute) {
  Search s(Most(10, 2, 5));
  // 10 T, 20 T, 40 F, 40 F (confirmed) -> m=20 M=40 -> 30 T -> 35 F, 35 F -> M-m = 5 <= 5.
  EXPECT_THAT(Drive(s, Script("TTFFTFF")), ElementsAre(10, 20, 40, 40, 30, 35, 35));
  EXPECT_EQ(s.mst(), 30);
  EXPECT_EQ(s.largest_sustainable(), 30);
  EXPECT_EQ(s.smallest_unsustainable(), 35);
  EXPECT_EQ(s.termination_reason(), kConverged);
  EXPECT_EQ(s.iterations(), 7u);
}

TEST(MostSearchTest, StagesAndConfirmationFlagAlongTheWay) {
  Search s(Most(10, 2, 5));
  EXPECT_EQ(s.stage(), Stage::kFindUnsustainable);
  s.Record(T());
  s.Record(T());
  EXPECT_FALSE(s.next_is_confirmation());
  s.Record(F());  // 40 F: the next run is the retry at 40
  EXPECT_TRUE(s.next_is_confirmation());
  EXPECT_EQ(s.next_req_min(), 40);
  EXPECT_EQ(s.stage(), Stage::kFindUnsustainable);
  EXPECT_EQ(s.smallest_unsustainable(), 0);  // not confirmed yet
  s.Record(F());
  EXPECT_FALSE(s.next_is_confirmation());
  EXPECT_EQ(s.stage(), Stage::kBisect);
  EXPECT_EQ(s.largest_sustainable(), 20);
  EXPECT_EQ(s.smallest_unsustainable(), 40);
  EXPECT_EQ(s.next_req_min(), 30);
  EXPECT_EQ(s.mst(), 0);  // no answer before the end
}

TEST(MostSearchTest, UnconfirmedFalseThenTrueKeepsMultiplying) {
  Search s(Most(10, 2, 5));
  // 20 F then 20 T: the FALSE was not confirmed, 20 is sustainable, growth goes on.
  EXPECT_THAT(Drive(s, Script("TFTFFTF" "F")), ElementsAre(10, 20, 20, 40, 40, 30, 35, 35));
  EXPECT_EQ(s.mst(), 30);
}

TEST(MostSearchTest, FalseAfterTrueInBisectionNeedsItsOwnConfirmation) {
  Search s(Most(10, 2, 2));
  // 10 T 20 T 40 FF -> 30 F,T (unconfirmed, then TRUE: m=30) -> 35 F F -> M=35 -> 32 T
  // -> 33 T -> M-m = 2 <= 2.
  EXPECT_THAT(Drive(s, Script("TTFFFTFFTT")),
              ElementsAre(10, 20, 40, 40, 30, 30, 35, 35, 32, 33));
  EXPECT_EQ(s.mst(), 33);
}

TEST(MostSearchTest, DividesDownWhenTheFirstValueFails) {
  Search s(Most(100, 2, 10));
  // 100 FF -> 50 FF -> 25 T: m=25, M=50 -> floor(37.5)=37 T -> floor(43.5)=43 FF -> 6 <= 10.
  EXPECT_THAT(Drive(s, Script("FFFFTTFF")), ElementsAre(100, 100, 50, 50, 25, 37, 43, 43));
  EXPECT_EQ(s.mst(), 37);
  EXPECT_EQ(s.smallest_unsustainable(), 43);
}

TEST(MostSearchTest, DivideDownRoundsHalfToEven) {
  Search s(Most(10, 4, 1));
  // 10 FF -> round(2.5) = 2 T -> m=2, M=10 -> 6 F F -> 4 T -> 5 T -> M-m = 1.
  EXPECT_THAT(Drive(s, Script("FFTFFTT")), ElementsAre(10, 10, 2, 6, 6, 4, 5));
  EXPECT_EQ(s.mst(), 5);
}

TEST(MostSearchTest, NothingSustainableEndsWithNoRate) {
  Search s(Most(4, 2, 1));
  // 4 FF -> 2 FF -> 1 FF -> round(0.5) = 0: nothing left to try.
  EXPECT_THAT(Drive(s, Script("FFFFFF")), ElementsAre(4, 4, 2, 2, 1, 1));
  EXPECT_EQ(s.termination_reason(), kNoSustainableRate);
  EXPECT_EQ(s.mst(), 0);
}

TEST(MostSearchTest, RelativeThreshold) {
  Search s(Most(8, 2, 0.1, /*relative=*/true));
  // 8 16 32 T, 64 FF -> 48 T (16 > 6.4) -> 56 FF (8 > 5.6) -> 52 T: 4 <= 5.6.
  EXPECT_THAT(Drive(s, Script("TTTFFTFFT")), ElementsAre(8, 16, 32, 64, 64, 48, 56, 56, 52));
  EXPECT_EQ(s.mst(), 52);
  EXPECT_EQ(s.smallest_unsustainable(), 56);
}

TEST(MostSearchTest, RelativeAndAbsoluteDifferOnTheSameVerdicts) {
  // Same verdicts as RelativeThreshold, absolute threshold 6.4 (= 64 * 0.1): 56 - 52 = 4 <= 6.4
  // too, but 56 - 48 = 8 is not: identical path. With absolute 8 it stops one step earlier.
  Search s(Most(8, 2, 8));
  EXPECT_THAT(Drive(s, Script("TTTFFTFF")), ElementsAre(8, 16, 32, 64, 64, 48, 56, 56));
  EXPECT_EQ(s.mst(), 48);
}

TEST(MostSearchTest, StopsImmediatelyWhenTheFirstBracketIsNarrowEnough) {
  Search s(Most(10, 1.5, 10));
  // 10 T -> 15 FF: M - m = 5 <= 10, no stage-2 iteration at all.
  EXPECT_THAT(Drive(s, Script("TFF")), ElementsAre(10, 15, 15));
  EXPECT_EQ(s.mst(), 10);
  EXPECT_EQ(s.termination_reason(), kConverged);
}

TEST(MostSearchTest, MultiplierRoundsHalfToEven) {
  Search a(Most(5, 1.5, 1));
  a.Record(T());  // 5 * 1.5 = 7.5 -> 8
  EXPECT_EQ(a.next_req_min(), 8);
  a.Record(T());  // 12
  EXPECT_EQ(a.next_req_min(), 12);
  Search b(Most(3, 1.5, 1));
  b.Record(T());  // 4.5 -> 4
  EXPECT_EQ(b.next_req_min(), 4);
  b.Record(T());  // 6
  b.Record(T());  // 9
  b.Record(T());  // 13.5 -> 14
  EXPECT_EQ(b.next_req_min(), 14);
}

TEST(MostSearchTest, GrowthNeverStallsOnRounding) {
  Search s(Most(2, 1.2, 1));
  s.Record(T());  // round(2.4) = 2 would repeat 2 forever; we step to 3
  EXPECT_EQ(s.next_req_min(), 3);
}

TEST(MostSearchTest, StopsAtIntegerResolution) {
  Search s(Most(10, 1.1, 0.5));
  // 10 T -> 11 FF: M - m = 1 > 0.5, but no integer lies strictly between 10 and 11.
  EXPECT_THAT(Drive(s, Script("TFF")), ElementsAre(10, 11, 11));
  EXPECT_EQ(s.termination_reason(), kConverged);
  EXPECT_EQ(s.mst(), 10);
}

TEST(MostSearchTest, AtMostMaxIterations) {
  SearchConfig c = Most(1, 2, 1);
  Search s(c);
  std::vector<double> visited = Drive(s, Script(std::string(100, 'T')));
  EXPECT_EQ(visited.size(), 100u);
  EXPECT_EQ(s.termination_reason(), kMaxIterations);
  EXPECT_EQ(s.mst(), s.largest_sustainable());
  c.max_iterations = 3;
  Search short_search(c);
  EXPECT_THAT(Drive(short_search, Script("TTT")), ElementsAre(1, 2, 4));
  EXPECT_EQ(short_search.mst(), 4);
}

TEST(MostSearchTest, CertaintyAndEstimatesAreIgnored) {
  // Most mode must not use information the original did not have.
  Search s(Most(10, 2, 5));
  EXPECT_THAT(Drive(s, {T(), T(), Fc(31), Fc(31), T(), Fc(33), Fc(33)}),
              ElementsAre(10, 20, 40, 40, 30, 35, 35));
}

TEST(MostSearchTest, InconclusiveRerunsTheSameRateAndKeepsAPendingFalse) {
  Search s(Most(10, 2, 2));
  // 20 F, 20 inconclusive, 20 F: the two FALSEs confirm (nothing sustainable in between).
  EXPECT_THAT(Drive(s, Script("TFXFTFF")), ElementsAre(10, 20, 20, 20, 15, 17, 17));
  EXPECT_EQ(s.mst(), 15);
}

TEST(MostSearchTest, TooManyInconclusiveGivesUp) {
  Search s(Most(10, 2, 5));
  EXPECT_THAT(Drive(s, Script("TXXX")), ElementsAre(10, 20, 20, 20));
  EXPECT_EQ(s.termination_reason(), kInconclusive);
  EXPECT_EQ(s.mst(), 10);
}

TEST(MostSearchTest, IgnoresOutcomesAfterTheEnd) {
  Search s(Most(10, 1.5, 10));
  Drive(s, Script("TFF"));
  s.Record(T());
  EXPECT_EQ(s.iterations(), 3u);
  EXPECT_EQ(s.mst(), 10);
}

TEST(SearchReplayTest, ReplayEqualsLiveAtEveryStep) {
  const std::vector<Observation> script = {T(), T(), F(), F(), T(), F(), T(), F(), F()};
  SearchConfig c = Most(10, 2, 2);
  Search live(c);
  std::vector<Observation> history;
  for (const Observation& o : script) {
    if (live.done()) break;
    live.Record(o);
    history.push_back(o);
    Search replayed = Search::Replay(c, history);
    EXPECT_EQ(replayed.next_req_min(), live.next_req_min());
    EXPECT_EQ(replayed.stage(), live.stage());
    EXPECT_EQ(replayed.largest_sustainable(), live.largest_sustainable());
    EXPECT_EQ(replayed.smallest_unsustainable(), live.smallest_unsustainable());
    EXPECT_EQ(replayed.next_is_confirmation(), live.next_is_confirmation());
    EXPECT_EQ(replayed.done(), live.done());
  }
}

SearchConfig Default(double start, double multiplier, double threshold, bool relative = false) {
  SearchConfig c = Most(start, multiplier, threshold, relative);
  c.mode = SearchMode::kDefault;
  return c;
}

TEST(DefaultSearchTest, CertainFalseNeedsNoConfirmation) {
  Search s(Default(10, 2, 5));
  // No estimates: plain bisection, but each certain FALSE counts at once.
  EXPECT_THAT(Drive(s, {T(), T(), Fc(), T(), Fc()}), ElementsAre(10, 20, 40, 30, 35));
  EXPECT_EQ(s.mst(), 30);
}

TEST(DefaultSearchTest, UncertainFalseIsStillConfirmed) {
  Search s(Default(10, 2, 5));
  EXPECT_THAT(Drive(s, {T(), T(), F(), F(), T(), F(), Fc()}),
              ElementsAre(10, 20, 40, 40, 30, 35, 35));
  EXPECT_EQ(s.mst(), 30);
}

TEST(DefaultSearchTest, CapacityEstimateGuidesTheBracket) {
  Search s(Default(10, 2, 5));
  // 10..80 T, 160 certain FALSE with 100 completions/min: probe floor(100 - 2.5) = 97 (T),
  // then 97 + 5 = 102 (F): M - m = 5, done in 2 stage-2 iterations instead of 5.
  EXPECT_THAT(Drive(s, {T(), T(), T(), T(), Fc(100), T(), Fc(101)}),
              ElementsAre(10, 20, 40, 80, 160, 97, 102));
  EXPECT_EQ(s.mst(), 97);
  EXPECT_EQ(s.termination_reason(), kConverged);
}

TEST(DefaultSearchTest, OverestimateIsCorrectedByTheNextOverload) {
  Search s(Default(10, 2, 5));
  // Estimate 120 is too high: 117 F (certain, achieved 100) -> new estimate -> 97 T -> 102 F.
  EXPECT_THAT(Drive(s, {T(), T(), T(), T(), Fc(120), Fc(100), T(), Fc(100)}),
              ElementsAre(10, 20, 40, 80, 160, 117, 97, 102));
  EXPECT_EQ(s.mst(), 97);
}

TEST(DefaultSearchTest, UnderestimateFallsBackToBisection) {
  Search s(Default(10, 2, 5));
  // Estimate 90 is too low: 87 T, 92 T (above the estimate, still sustainable) -> bisect
  // between 92 and 160: 126 F -> 109 F -> 100 T -> 104 F -> M - m = 4.
  EXPECT_THAT(Drive(s, {T(), T(), T(), T(), Fc(90), T(), T(), Fc(), Fc(), T(), Fc()}),
              ElementsAre(10, 20, 40, 80, 160, 87, 92, 126, 109, 100, 104));
  EXPECT_EQ(s.mst(), 100);
}

TEST(DefaultSearchTest, RelativeThresholdGuidedProbes) {
  Search s(Default(25, 2, 0.05, /*relative=*/true));
  // 25 50 T, 100 certain F at 60/min: floor(60 - 3 / 2) = 58 T -> floor(58 / 0.95) = 61 F:
  // 61 - 58 = 3 <= 61 * 0.05.
  EXPECT_THAT(Drive(s, {T(), T(), Fc(60), T(), Fc(60)}), ElementsAre(25, 50, 100, 58, 61));
  EXPECT_EQ(s.mst(), 58);
}

// Both modes against a deterministic server with capacity C: TRUE iff REQ_MIN <= C, and an
// overloaded iteration completes C requests per minute. The answer must bracket C within T.
TEST(SearchPropertyTest, BothModesBracketTheCapacity) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> capacity(3, 5000);
  for (int trial = 0; trial < 500; ++trial) {
    const double c = capacity(rng);
    for (bool relative : {false, true}) {
      for (SearchMode mode : {SearchMode::kMost, SearchMode::kDefault}) {
        SearchConfig config = relative ? Most(16, 2, 0.05, true) : Most(16, 2, 10);
        config.mode = mode;
        Search s(config);
        while (!s.done()) {
          const double r = s.next_req_min();
          s.Record(r <= c ? T() : Fc(c));
        }
        ASSERT_EQ(s.termination_reason(), kConverged) << c;
        const double m = s.mst();
        const double M = s.smallest_unsustainable();
        EXPECT_LE(m, c);
        EXPECT_GT(M, c);
        const double width = relative ? M * 0.05 : 10;
        // Converged by the threshold, or by integer resolution.
        EXPECT_TRUE(M - m <= width + 1e-9 || M - m <= 1) << "C=" << c << " m=" << m << " M=" << M;
      }
    }
  }
}

}  // namespace
}  // namespace mstperf::controller
