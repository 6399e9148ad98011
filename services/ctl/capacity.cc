#include "services/ctl/capacity.h"

#include <curl/curl.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/ctl/format.h"

namespace mstperf::ctl {

std::string CapacityUrl(absl::string_view target_url, uint32_t input_tokens,
                        uint32_t output_tokens) {
  std::string base(target_url);
  if (!absl::StartsWith(base, "http://") && !absl::StartsWith(base, "https://")) {
    base = "http://" + base;
  }
  while (!base.empty() && base.back() == '/') base.pop_back();
  return absl::StrCat(base, "/sim/capacity?input_tokens=", input_tokens,
                      "&output_tokens=", output_tokens);
}

std::optional<double> ParseCapacityBody(absl::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto it = j.find("capacity_req_min");
  if (it == j.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  if (!std::isfinite(v) || v <= 0) return std::nullopt;
  return v;
}

namespace {

size_t Append(char* p, size_t s, size_t n, void* ud) {
  auto* out = static_cast<std::string*>(ud);
  if (out->size() > (1 << 16)) return 0;  // not the simulator: stop reading
  out->append(p, s * n);
  return s * n;
}

}  // namespace

std::map<std::string, double> QueryCapacities(const mstperf::v1::ExperimentSpec& spec) {
  std::map<std::string, double> out;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return out;
  for (const auto& pair : spec.tokens()) {
    if (pair.input().min() != pair.input().max() || pair.output().min() != pair.output().max()) {
      continue;
    }
    const std::string url =
        CapacityUrl(spec.target().url(), pair.input().min(), pair.output().min());
    std::string body;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (spec.target().tls_insecure()) {
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    long status = 0;
    if (curl_easy_perform(curl) != CURLE_OK) break;  // unreachable: no point asking again
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) break;  // not the simulator
    if (auto capacity = ParseCapacityBody(body)) out[PairText(pair)] = *capacity;
  }
  curl_easy_cleanup(curl);
  return out;
}

}  // namespace mstperf::ctl
