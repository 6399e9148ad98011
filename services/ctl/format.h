#ifndef MSTPERF_SERVICES_CTL_FORMAT_H_
#define MSTPERF_SERVICES_CTL_FORMAT_H_

// What mstperfctl prints. Pure: messages in, text out, so every line is unit-tested.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mstperf/v1/controller.pb.h"
#include "mstperf/v1/evaluator.pb.h"

namespace mstperf::ctl {

// "stage 1 (find unsustainable)", "stage 2 (bisect)", "done".
std::string StageName(mstperf::v1::SearchStage stage);
// "SUSTAINABLE", "UNSUSTAINABLE", "CLIENT-LIMITED", "UNDECIDED".
std::string VerdictWord(mstperf::v1::VerdictState state);
// "pending", "running", "succeeded", "failed", "cancelled".
std::string StateName(mstperf::v1::ExperimentState state);
// The pair as the user wrote it: "32:64", "16-64:128".
std::string PairText(const mstperf::v1::TokenPair& pair);
// A REQ_MIN without noise: "120", "37.5".
std::string FormatRate(double req_min);

// "[#######.............]  35%" `width` characters of bar; fraction is clamped to [0, 1].
std::string ProgressBar(double fraction, int width);

// A fixed-width text table; every row has header.size() cells. Numbers align right when
// `right_aligned[i]`.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right_aligned = {});

// "pair 32:32 · stage 1 (find unsustainable) · iteration 3 · REQ_MIN 120 · m 60 M -"
std::string FormatIterationStarted(const mstperf::v1::PairResult& pair,
                                   const mstperf::v1::IterationResult& iteration);
// "pair 32:32 · iteration 3 · REQ_MIN 120 · SUSTAINABLE (welch_t_test: p = 0.41 >= 0.1) · 30.0 s"
std::string FormatIterationFinished(const mstperf::v1::PairResult& pair,
                                    const mstperf::v1::IterationResult& iteration);
// Live progress of the running iteration; with `bar` a progress bar of `bar_width` leads.
std::string FormatProgress(const mstperf::v1::IterationProgress& progress, double req_min,
                           bool bar, int bar_width = 24);
// "pair 32:32 finished: MST 180 req/min (converged after 9 iterations)"
std::string FormatPairFinished(const mstperf::v1::PairResult& pair);

// The answer: one row per pair: pair, MST req/min, the simulator's closed-form capacity (when
// `capacity` has the pair's PairText; the column is left out when it has none), iterations,
// termination reason, folder of the pair's results.
std::string FormatMstTable(const mstperf::v1::Experiment& experiment,
                           const std::map<std::string, double>& capacity);

// The verdict with every reason, one per line, the deciding rule marked.
std::string FormatVerdict(const mstperf::v1::Verdict& verdict);

// `list`: one row per experiment.
std::string FormatExperimentList(const std::vector<mstperf::v1::Experiment>& experiments);
// `status`: the experiment's state, current pair and bounds, then the MST table.
std::string FormatExperimentStatus(const mstperf::v1::Experiment& experiment,
                                   const std::map<std::string, double>& capacity);

}  // namespace mstperf::ctl

#endif  // MSTPERF_SERVICES_CTL_FORMAT_H_
