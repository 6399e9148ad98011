#include "services/loadgen/target.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mstperf::loadgen {

absl::StatusOr<std::string> NormalizeBaseUrl(std::string_view url) {
  std::string u(absl::StripAsciiWhitespace(absl::string_view(url.data(), url.size())));
  if (u.empty()) return absl::InvalidArgumentError("target.url is empty");
  if (!absl::StrContains(u, "://")) u = absl::StrCat("http://", u);
  const bool http = absl::StartsWithIgnoreCase(u, "http://");
  const bool https = absl::StartsWithIgnoreCase(u, "https://");
  if (!http && !https) {
    return absl::InvalidArgumentError(
        absl::StrCat("target.url must be http:// or https:// (got \"", std::string(url), "\")"));
  }
  while (!u.empty() && u.back() == '/') u.pop_back();
  if (absl::EndsWith(u, "/v1")) u.resize(u.size() - 3);
  const size_t host_start = u.find("://") + 3;
  if (host_start >= u.size() || u[host_start] == '/' || u[host_start] == ':') {
    return absl::InvalidArgumentError(absl::StrCat("target.url has no host (\"", std::string(url), "\")"));
  }
  for (char c : u) {
    if (static_cast<unsigned char>(c) <= 0x20) {
      return absl::InvalidArgumentError("target.url contains whitespace or control characters");
    }
  }
  return u;
}

absl::Status CheckCleartextHttp2Supported() {
  const curl_version_info_data* v = curl_version_info(CURLVERSION_NOW);
  if (v->version_num >= 0x080000) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "target.http2 with an http:// target (h2c, prior knowledge) needs libcurl >= 8.0.0; this "
      "loadgen has libcurl ", v->version, ", which fails every request on a reused h2c "
      "connection (curl issue #10634): use an https:// target for HTTP/2, or HTTP/1.1"));
}

void ApplyCommonOptions(const TargetConfig& target, CURL* easy) {
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(target.connect_timeout)));
  if (!target.ca_bundle_path.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, target.ca_bundle_path.c_str());
  }
  if (target.tls_insecure) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (target.http2) {
    const bool tls = absl::StartsWithIgnoreCase(target.base_url, "https://");
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
                     tls ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  }
}

namespace {

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() < (8u << 20)) body->append(data, size * n);
  return size * n;
}

curl_slist* BuildHeaders(const TargetConfig& target) {
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  for (const std::string& h : target.headers) headers = curl_slist_append(headers, h.c_str());
  return headers;
}

}  // namespace

HttpSession::HttpSession(const TargetConfig& target)
    : target_(target), easy_(curl_easy_init()), headers_(BuildHeaders(target)) {
  curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, error_);
}

HttpSession::~HttpSession() {
  curl_easy_cleanup(easy_);
  curl_slist_free_all(headers_);
}

absl::StatusOr<HttpResponse> HttpSession::Call(std::string_view path, std::string_view body,
                                               absl::Duration timeout) {
  HttpResponse response;
  const std::string url = target_.base_url + std::string(path);
  ApplyCommonOptions(target_, easy_);
  curl_easy_setopt(easy_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers_);
  if (body.empty()) {
    curl_easy_setopt(easy_, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(timeout)));
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &response.body);
  CURLcode rc = curl_easy_perform(easy_);
  if (rc != CURLE_OK) {
    std::string text = absl::StrCat(url, ": ", curl_easy_strerror(rc));
    if (error_[0] != '\0') absl::StrAppend(&text, ": ", error_);
    if (rc == CURLE_PEER_FAILED_VERIFICATION) {
      absl::StrAppend(&text, " (TLS verification failed: set target.ca_bundle_path to the CA "
                             "that signed the target's certificate)");
    }
    return absl::UnavailableError(text);
  }
  curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

absl::StatusOr<HttpResponse> HttpCall(const TargetConfig& target, std::string_view path,
                                      std::string_view body, absl::Duration timeout) {
  HttpSession session(target);
  return session.Call(path, body, timeout);
}

void AppendJsonEscaped(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(text.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
  }
  out->append(text.data() + start, text.size() - start);
}

BodyTemplate::BodyTemplate(const TargetConfig& target, bool send_min_tokens)
    : chat_(target.chat), send_min_tokens_(send_min_tokens) {
  head_ = "{\"model\":\"";
  AppendJsonEscaped(target.model, &head_);
  head_ +=
      "\",\"stream\":true,\"stream_options\":{\"include_usage\":true,"
      "\"continuous_usage_stats\":true},\"ignore_eos\":true,\"max_tokens\":";
}

std::string BodyTemplate::Build(std::string_view prompt, uint32_t output_tokens) const {
  std::string body;
  body.reserve(head_.size() + prompt.size() + 96);
  body += head_;
  absl::StrAppend(&body, output_tokens);
  if (send_min_tokens_) absl::StrAppend(&body, ",\"min_tokens\":", output_tokens);
  body += chat_ ? ",\"messages\":[{\"role\":\"user\",\"content\":\"" : ",\"prompt\":\"";
  AppendJsonEscaped(prompt, &body);
  body += chat_ ? "\"}]}" : "\"}";
  return body;
}

}  // namespace mstperf::loadgen
