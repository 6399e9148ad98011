#ifndef MSTPERF_SERVICES_COMMON_LOG_H_
#define MSTPERF_SERVICES_COMMON_LOG_H_

#include <sstream>
#include <string>

namespace mstperf {

enum class LogSeverity { kInfo, kWarning, kError, kFatal };

// Names the process in every log line ("controller", "loadgen", ...).
void SetLogServiceName(const std::string& name);

// One log line to stderr on destruction: "2026-11-28T10:15:00.123456Z I loadgen] text".
// kFatal aborts after writing. Thread-safe (one write(2) per line).
class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

}  // namespace mstperf

#define MSTPERF_LOG(severity) \
  ::mstperf::LogMessage(::mstperf::LogSeverity::k##severity, __FILE__, __LINE__).stream()

#endif  // MSTPERF_SERVICES_COMMON_LOG_H_
