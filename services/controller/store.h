#ifndef MSTPERF_SERVICES_CONTROLLER_STORE_H_
#define MSTPERF_SERVICES_CONTROLLER_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mstperf/v1/controller.pb.h"

namespace mstperf::controller {

// Experiment state on the results volume: <root>/experiments/<id>.json holds the whole
// v1::Experiment (spec, state, every completed iteration with its verdict) as protobuf JSON.
// Save() is atomic and fsync'ed, so after a crash each file is a complete earlier or later
// state. The search itself is not stored: it is rebuilt by replaying the recorded iterations.
class ExperimentStore {
 public:
  explicit ExperimentStore(std::string root) : root_(std::move(root)) {}

  // Creates <root>/experiments if missing.
  absl::Status Init() const;
  absl::Status Save(const v1::Experiment& experiment) const;
  absl::StatusOr<v1::Experiment> Load(const std::string& id) const;
  // Every readable experiment; files that do not parse are reported in `errors` and skipped
  // (never deleted: they are evidence).
  std::vector<v1::Experiment> LoadAll(std::vector<std::string>* errors) const;

 private:
  std::string root_;
};

}  // namespace mstperf::controller

#endif  // MSTPERF_SERVICES_CONTROLLER_STORE_H_
