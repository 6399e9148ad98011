#include "services/controller/store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/controller/results.h"
#include "services/controller/spec.h"

namespace mstperf::controller {
namespace {
namespace fs = std::filesystem;

absl::StatusOr<v1::Experiment> ParseFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  v1::Experiment experiment;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // files written by a newer controller
  auto status = google::protobuf::util::JsonStringToMessage(text.str(), &experiment, options);
  if (!status.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": ", status.ToString()));
  }
  return experiment;
}
}  // namespace

absl::Status ExperimentStore::Init() const {
  absl::StatusOr<std::string> dir = SafeJoin(root_, {"experiments"});
  if (!dir.ok()) return dir.status();
  std::error_code ec;
  fs::create_directories(*dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", *dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status ExperimentStore::Save(const v1::Experiment& experiment) const {
  absl::StatusOr<std::string> path = SafeJoin(root_, {"experiments", experiment.id() + ".json"});
  if (!path.ok()) return path.status();
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;
  auto status = google::protobuf::util::MessageToJsonString(experiment, &json, options);
  if (!status.ok()) return absl::InternalError(status.ToString());
  return WriteFileAtomic(*path, json, /*sync=*/true);
}

absl::StatusOr<v1::Experiment> ExperimentStore::Load(const std::string& id) const {
  absl::StatusOr<std::string> path = SafeJoin(root_, {"experiments", id + ".json"});
  if (!path.ok()) return path.status();
  return ParseFile(*path);
}

std::vector<v1::Experiment> ExperimentStore::LoadAll(std::vector<std::string>* errors) const {
  std::vector<v1::Experiment> out;
  absl::StatusOr<std::string> dir = SafeJoin(root_, {"experiments"});
  std::error_code ec;
  if (!dir.ok() || !fs::is_directory(*dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(*dir, ec)) {
    const std::string name = entry.path().filename().string();
    // Leftover temporary files of an interrupted Save() end in ".tmp.<pid>.<n>".
    if (!absl::EndsWith(name, ".json") || !entry.is_regular_file()) continue;
    absl::StatusOr<v1::Experiment> experiment = ParseFile(entry.path().string());
    if (!experiment.ok()) {
      if (errors) errors->push_back(std::string(experiment.status().message()));
      continue;
    }
    if (experiment->id() + ".json" != name) {
      if (errors) errors->push_back(absl::StrCat(name, ": id \"", experiment->id(), "\" does not match the file name"));
      continue;
    }
    out.push_back(*std::move(experiment));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.created_unix_us() != b.created_unix_us() ? a.created_unix_us() < b.created_unix_us()
                                                      : a.id() < b.id();
  });
  return out;
}

}  // namespace mstperf::controller
