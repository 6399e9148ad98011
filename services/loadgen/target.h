#ifndef MSTPERF_SERVICES_LOADGEN_TARGET_H_
#define MSTPERF_SERVICES_LOADGEN_TARGET_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <curl/curl.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mstperf::loadgen {

// How to reach the target, resolved from the API's Target message: a normalised base URL,
// every header (the API key already turned into "Authorization: Bearer ..."), TLS and timeouts.
// Holds the key: never log a TargetConfig's headers.
struct TargetConfig {
  std::string base_url;  // "http(s)://host:port[/prefix]" without a trailing "/" or "/v1"
  std::string model;
  bool chat = false;
  std::vector<std::string> headers;  // "Name: value"
  std::string ca_bundle_path;
  bool tls_insecure = false;
  bool http2 = false;
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration first_token_timeout = absl::Seconds(300);
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration total_timeout = absl::Seconds(600);

  std::string generation_path() const {
    return chat ? "/v1/chat/completions" : "/v1/completions";
  }
};

// "host:port" -> "http://host:port"; drops a trailing "/" and "/v1". INVALID_ARGUMENT naming
// target.url for anything that is not http(s) with a host.
absl::StatusOr<std::string> NormalizeBaseUrl(std::string_view url);

// OK when this libcurl can run HTTP/2 over cleartext with prior knowledge (h2c), which the
// loadgen uses for `http2` with an http:// target. libcurl before 8.0.0 fails every request
// that reuses an h2c connection ("Error in the HTTP2 framing layer", curl issue #10634):
// FAILED_PRECONDITION naming target.http2 and the version, instead of a run of failures.
absl::Status CheckCleartextHttp2Supported();

// Applies the options every request to the target shares (TLS, HTTP version, connect timeout,
// no signals) to an easy handle.
void ApplyCommonOptions(const TargetConfig& target, CURL* easy);

struct HttpResponse {
  long status = 0;
  std::string body;
};

// One blocking request on a fresh easy handle (set-up calls only: probes, /v1/models,
// /tokenize, never the load itself). `body` empty means GET. UNAVAILABLE with curl's message
// when no HTTP answer came back.
absl::StatusOr<HttpResponse> HttpCall(const TargetConfig& target, std::string_view path,
                                      std::string_view body, absl::Duration timeout);

// Reuses one connection for many set-up calls (calibrating prompts asks /tokenize once per word).
class HttpSession {
 public:
  explicit HttpSession(const TargetConfig& target);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;
  absl::StatusOr<HttpResponse> Call(std::string_view path, std::string_view body,
                                    absl::Duration timeout);

 private:
  const TargetConfig& target_;
  CURL* easy_;
  curl_slist* headers_ = nullptr;
  char error_[CURL_ERROR_SIZE] = {};  // curl's detail of the last failure
};

// Appends `text` as the inside of a JSON string (quotes, backslashes, control characters).
void AppendJsonEscaped(std::string_view text, std::string* out);

// The request body of one generation: streaming with usage in every chunk
// (stream_options.include_usage + continuous_usage_stats), max_tokens = output_tokens,
// ignore_eos, and min_tokens when the target accepts it.
class BodyTemplate {
 public:
  BodyTemplate(const TargetConfig& target, bool send_min_tokens);
  std::string Build(std::string_view prompt, uint32_t output_tokens) const;

 private:
  bool chat_;
  bool send_min_tokens_;
  std::string head_;  // everything up to the token fields
};

}  // namespace mstperf::loadgen

#endif  // MSTPERF_SERVICES_LOADGEN_TARGET_H_
