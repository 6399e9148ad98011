#ifndef MSTPERF_SERVICES_CTL_ENV_FILE_H_
#define MSTPERF_SERVICES_CTL_ENV_FILE_H_

// The seed-style `.env` file, read into an ExperimentSpec. Pure: text in, spec out, no I/O.
//
// Syntax (a superset of what the original's reader accepts, so its files read unchanged):
//   # a comment line              blank lines are skipped
//   KEY=value                     whitespace around KEY and value is trimmed
//   export KEY=value              `export ` is allowed (the file can be sourced by a shell)
//   KEY="quoted # not a comment"  double quotes: \" \\ \n \t escapes; single quotes: literal
//   KEY=value  # trailing comment a `#` preceded by whitespace starts a comment when unquoted
// An empty value means "not set" (the default applies), as in the original.
//
// Every malformed line is an error naming the line number, the key and what was expected.
// Keys mstperf does not know are warnings (with the closest known key, to catch typos); keys
// the original tool reads but mstperf does not need are warnings that say they are ignored.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mstperf/v1/controller.pb.h"

namespace mstperf::ctl {

// One KEY=VALUE line after syntax parsing.
struct EnvEntry {
  std::string key;
  std::string value;  // unquoted, unescaped
  int line = 0;       // 1-based
};

// Syntax only: splits the text into entries. Errors name the line.
absl::StatusOr<std::vector<EnvEntry>> ParseEnvEntries(absl::string_view text);

struct EnvSpec {
  mstperf::v1::ExperimentSpec spec;
  // Human-readable warnings ("line 4: unknown key DURATOIN (did you mean DURATION?)").
  std::vector<std::string> warnings;
};

// Syntax + meaning: the experiment the file describes, with defaults filled in (see
// EnvKeyDocs() for every key and its default). `source` names the file in messages.
absl::StatusOr<EnvSpec> SpecFromEnvText(absl::string_view text,
                                        absl::string_view source = ".env");

// Documentation of every key mstperf reads: name, default (as text) and meaning. The README's
// table and `mstperfctl help-env` are generated from the same list, so they cannot drift.
struct EnvKeyDoc {
  const char* key;
  const char* default_value;
  const char* meaning;
};
const std::vector<EnvKeyDoc>& EnvKeyDocs();

// Value parsers shared with the command-line flags of `mstperfctl iterate`.
// "32:64", "16-64:128-256", "32:64-128" -> TokenPair with its label ("16-64_128-256").
absl::StatusOr<mstperf::v1::TokenPair> ParseTokenPair(absl::string_view text);
// Comma-separated pairs; at least one.
absl::StatusOr<std::vector<mstperf::v1::TokenPair>> ParseTokensList(absl::string_view text);
// "1800s", "30s", "5m", "1h30m", "2.5m", or a bare number of seconds ("45"); > 0 unless
// allow_zero.
absl::StatusOr<double> ParseDurationSeconds(absl::string_view text, bool allow_zero = false);
// completions|chat (case-insensitive).
absl::StatusOr<mstperf::v1::Api> ParseApi(absl::string_view text);
// constant|poisson|gamma.
absl::StatusOr<mstperf::v1::Arrival> ParseArrival(absl::string_view text);
// most|default.
absl::StatusOr<mstperf::v1::EvaluatorMode> ParseEvaluatorMode(absl::string_view text);

}  // namespace mstperf::ctl

#endif  // MSTPERF_SERVICES_CTL_ENV_FILE_H_
