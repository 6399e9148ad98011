#ifndef MSTPERF_SERVICES_CTL_CAPACITY_H_
#define MSTPERF_SERVICES_CTL_CAPACITY_H_

// The simulator's closed-form capacity, printed next to the MST it should match. Asked from
// GET <target>/sim/capacity?input_tokens=&output_tokens=; any other target does not answer
// that path, and then the column is simply left out.

#include <map>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "mstperf/v1/controller.pb.h"

namespace mstperf::ctl {

// "127.0.0.1:8000" or "http://127.0.0.1:8000/" -> "http://127.0.0.1:8000/sim/capacity?...".
std::string CapacityUrl(absl::string_view target_url, uint32_t input_tokens,
                        uint32_t output_tokens);
// The capacity in requests per minute from the simulator's JSON answer ({"capacity_req_min":
// N, ...}); nullopt when the body is not that.
std::optional<double> ParseCapacityBody(absl::string_view body);

// PairText ("32:64") -> capacity for every fixed-length pair of the spec the target answers for (ranges
// have no single closed form and are skipped). Short timeouts: never delays the table much.
std::map<std::string, double> QueryCapacities(const mstperf::v1::ExperimentSpec& spec);

}  // namespace mstperf::ctl

#endif  // MSTPERF_SERVICES_CTL_CAPACITY_H_
