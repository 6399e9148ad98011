#include "services/common/log.h"

#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mstperf {
namespace {
std::string& ServiceName() {
  static std::string* name = new std::string("mstperf");
  return *name;
}
}  // namespace

void SetLogServiceName(const std::string& name) { ServiceName() = name; }

LogMessage::LogMessage(LogSeverity severity, const char* file, int line) : severity_(severity) {
  static constexpr char kLetters[] = {'I', 'W', 'E', 'F'};
  stream_ << absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()) << ' '
          << kLetters[static_cast<int>(severity)] << ' ' << ServiceName() << "] ";
  if (severity != LogSeverity::kInfo) {
    std::string_view f(file);
    auto slash = f.rfind('/');
    stream_ << (slash == std::string_view::npos ? f : f.substr(slash + 1)) << ':' << line << ' ';
  }
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  const std::string text = stream_.str();
  ssize_t ignored = ::write(STDERR_FILENO, text.data(), text.size());
  (void)ignored;
  if (severity_ == LogSeverity::kFatal) std::abort();
}

}  // namespace mstperf
