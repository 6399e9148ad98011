#ifndef MSTPERF_SERVICES_CONTROLLER_SPEC_H_
#define MSTPERF_SERVICES_CONTROLLER_SPEC_H_

#include <string>

#include "absl/status/status.h"
#include "mstperf/v1/controller.pb.h"
#include "services/controller/search.h"

namespace mstperf::controller {

// Validation and defaults of the SearchController's inputs. Pure: no I/O.
//
// Every error is INVALID_ARGUMENT and its message starts with the offending field's path
// ("spec.duration_s: must be > 0, got 0"), so a client can point at the `.env` key.

// Checks a whole StartExperimentRequest (the spec and the optional experiment_id).
absl::Status ValidateStartRequest(const v1::StartExperimentRequest& request);

// An experiment id: 1-64 characters of [A-Za-z0-9._-], not "." or "..". It names a file under
// the results directory, so nothing path-like is accepted. `field` names it in errors.
absl::Status ValidateExperimentId(const std::string& field, const std::string& id);

// True for a name that is safe as one path component: 1-128 characters of [A-Za-z0-9._-],
// not "." or "..".
bool IsSafePathComponent(const std::string& name);

// The original's folder name of a pair: "<in>_<out>", a range side written "a-b".
std::string PairLabel(const v1::TokenPair& pair);

// Fills the defaults of a validated spec (multiplier 2, max_iterations 100, SUCCESS_RATE 95,
// FILTER_BUFFER 300 in most mode, the enums' UNSPECIFIED values, pair labels), so that what
// is stored and written to iteration files is what actually ran.
void ApplyDefaults(v1::ExperimentSpec* spec);

// The search configuration of pair `pair_index` of a spec with defaults applied.
SearchConfig SearchConfigFor(const v1::ExperimentSpec& spec, int pair_index);

}  // namespace mstperf::controller

#endif  // MSTPERF_SERVICES_CONTROLLER_SPEC_H_
