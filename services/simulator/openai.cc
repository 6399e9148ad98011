#include "services/simulator/openai.h"

#include <charconv>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "services/simulator/tokenizer.h"

namespace mstperf::simulator {
namespace {

using nlohmann::json;

constexpr std::string_view kWords[] = {" the", " of",   " and", " to", " in", " a",
                                       " is",  " that", " for", " it", " as", " was",
                                       " with", " be",  " by",  " on"};

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, end);
}

// Reads an optional integer field. Absent or null leaves *value untouched.
std::optional<ApiError> OptionalInt(const json& body, const char* name, int64_t* value,
                                    bool* present) {
  *present = false;
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) {
    return MakeError(400, absl::StrCat("'", name, "' must be an integer"), name);
  }
  *value = it->get<int64_t>();
  *present = true;
  return std::nullopt;
}

std::optional<ApiError> OptionalBool(const json& body, const char* name, bool* value) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) {
    return MakeError(400, absl::StrCat("'", name, "' must be a boolean"), name);
  }
  *value = it->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> CheckModel(const json& body, const ServingConfig& config) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) return std::nullopt;  // vLLM serves its default
  if (!it->is_string()) return MakeError(400, "'model' must be a string", "model");
  if (it->get_ref<const std::string&>() != config.model) {
    ApiError e = MakeError(404,
                           absl::StrCat("The model `", it->get_ref<const std::string&>(),
                                        "` does not exist."),
                           "model");
    e.type = "NotFoundError";
    return e;
  }
  return std::nullopt;
}

// Tokens of a completions prompt: a string, a list of token ids, or a list holding one of
// these (vLLM's batch form, limited to one prompt).
std::optional<ApiError> PromptTokens(const json& body, int* tokens,
                                     std::vector<int32_t>* ids) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) {
    return MakeError(400, "'prompt' is required", "prompt");
  }
  const json* p = &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) {
    p = &(*p)[0];
  }
  if (p->is_string()) {
    const std::string& text = p->get_ref<const std::string&>();
    if (ids != nullptr) {
      *ids = Tokenize(text);
      *tokens = static_cast<int>(ids->size());
    } else {
      *tokens = CountTokens(text);
    }
    return std::nullopt;
  }
  if (p->is_array() && !p->empty()) {
    for (const json& t : *p) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0) {
        return MakeError(400,
                         "'prompt' must be a string, a list of token ids, or a list of one of "
                         "these (batched prompts are not supported)",
                         "prompt");
      }
      if (ids != nullptr) ids->push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    *tokens = static_cast<int>(p->size());
    return std::nullopt;
  }
  return MakeError(400,
                   "'prompt' must be a non-empty string, a list of token ids, or a list of "
                   "one of these (batched prompts are not supported)",
                   "prompt");
}

// Tokens of a chat prompt: each message's role, then its content.
std::optional<ApiError> MessagesTokens(const json& body, int* tokens,
                                       std::vector<int32_t>* ids) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) {
    return MakeError(400, "'messages' is required", "messages");
  }
  if (!it->is_array() || it->empty()) {
    return MakeError(400, "'messages' must be a non-empty list", "messages");
  }
  std::string text;
  for (const json& m : *it) {
    if (!m.is_object()) return MakeError(400, "each message must be an object", "messages");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return MakeError(400, "each message needs a string 'role'", "messages");
    }
    text += role->get_ref<const std::string&>();
    text += '\n';
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      // An assistant message with tool calls may have no content.
    } else if (content->is_string()) {
      text += content->get_ref<const std::string&>();
    } else if (content->is_array()) {
      for (const json& part : *content) {
        auto t = part.is_object() ? part.find("text") : part.end();
        if (!part.is_object() || t == part.end() || !t->is_string()) {
          return MakeError(400, "message content parts must be objects with a string 'text'",
                           "messages");
        }
        text += t->get_ref<const std::string&>();
        text += '\n';
      }
    } else {
      return MakeError(400, "message 'content' must be a string or a list of parts",
                       "messages");
    }
    text += '\n';
  }
  if (ids != nullptr) {
    *ids = Tokenize(text);
    *tokens = static_cast<int>(ids->size());
  } else {
    *tokens = CountTokens(text);
  }
  return std::nullopt;
}

std::optional<json> ParseObject(std::string_view body, std::optional<ApiError>* error) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = MakeError(400, "The request body is not valid JSON");
    return std::nullopt;
  }
  if (!j.is_object()) {
    *error = MakeError(400, "The request body must be a JSON object");
    return std::nullopt;
  }
  return j;
}

}  // namespace

ApiError MakeError(int http_status, std::string message, std::string param) {
  ApiError e;
  e.http_status = http_status;
  e.message = std::move(message);
  e.param = std::move(param);
  switch (http_status) {
    case 404: e.type = "NotFoundError"; break;
    case 405: e.type = "MethodNotAllowedError"; break;
    case 413: e.type = "RequestEntityTooLargeError"; break;
    case 503: e.type = "ServiceUnavailableError"; break;
    default: e.type = http_status >= 500 ? "InternalServerError" : "BadRequestError";
  }
  return e;
}

std::string ErrorBody(const ApiError& error) {
  json e = {{"message", error.message},
            {"type", error.type},
            {"param", error.param.empty() ? json(nullptr) : json(error.param)},
            {"code", error.http_status}};
  return json{{"error", e}}.dump();
}

std::optional<ApiError> ParseGenerationRequest(Api api, std::string_view body,
                                               const ServingConfig& config,
                                               GenerationRequest* out) {
  std::optional<ApiError> err;
  std::optional<json> parsed = ParseObject(body, &err);
  if (!parsed) return err;
  const json& j = *parsed;
  GenerationRequest r;
  r.api = api;
  if ((err = CheckModel(j, config))) return err;
  if (api == Api::kCompletions) {
    err = PromptTokens(j, &r.prompt_tokens, nullptr);
  } else {
    err = MessagesTokens(j, &r.prompt_tokens, nullptr);
  }
  if (err) return err;

  int64_t max_tokens = 0;
  bool has_max = false;
  const char* max_name = "max_tokens";
  if (api == Api::kChatCompletions) {
    if ((err = OptionalInt(j, "max_completion_tokens", &max_tokens, &has_max))) return err;
    if (has_max) max_name = "max_completion_tokens";
  }
  if (!has_max) {
    if ((err = OptionalInt(j, "max_tokens", &max_tokens, &has_max))) return err;
  }
  if (r.prompt_tokens >= config.max_model_len) {
    return MakeError(400,
                     absl::StrCat("This model's maximum context length is ",
                                  config.max_model_len, " tokens. However, your prompt has ",
                                  r.prompt_tokens,
                                  " tokens. Please reduce the length of the prompt."),
                     api == Api::kCompletions ? "prompt" : "messages");
  }
  if (has_max) {
    if (max_tokens < 1) {
      return MakeError(400, absl::StrCat("'", max_name, "' must be at least 1, got ",
                                         max_tokens, "."),
                       max_name);
    }
    if (max_tokens > config.max_model_len - r.prompt_tokens) {
      return MakeError(
          400,
          absl::StrCat("'", max_name, "' is too large: ", max_tokens,
                       ". This model's maximum context length is ", config.max_model_len,
                       " tokens and your request has ", r.prompt_tokens, " input tokens (",
                       max_tokens, " > ", config.max_model_len, " - ", r.prompt_tokens, ")."),
          max_name);
    }
    r.max_tokens = static_cast<int>(max_tokens);
  } else {
    r.max_tokens = config.max_model_len - r.prompt_tokens;
  }

  int64_t min_tokens = 0;
  bool has_min = false;
  if ((err = OptionalInt(j, "min_tokens", &min_tokens, &has_min))) return err;
  if (has_min && (min_tokens < 0 || min_tokens > r.max_tokens)) {
    return MakeError(400,
                     absl::StrCat("'min_tokens' must be between 0 and max_tokens (",
                                  r.max_tokens, "), got ", min_tokens, "."),
                     "min_tokens");
  }
  r.min_tokens = static_cast<int>(min_tokens);

  int64_t n = 1;
  bool has_n = false;
  if ((err = OptionalInt(j, "n", &n, &has_n))) return err;
  if (n != 1) return MakeError(400, "only n = 1 is supported", "n");
  int64_t seed = 0;
  bool has_seed = false;
  if ((err = OptionalInt(j, "seed", &seed, &has_seed))) return err;
  if (has_seed) r.seed = seed;

  if ((err = OptionalBool(j, "ignore_eos", &r.ignore_eos))) return err;
  if ((err = OptionalBool(j, "stream", &r.stream))) return err;
  auto so = j.find("stream_options");
  if (so != j.end() && !so->is_null()) {
    if (!so->is_object()) {
      return MakeError(400, "'stream_options' must be an object", "stream_options");
    }
    if (!r.stream) {
      return MakeError(400, "Stream options can only be defined when `stream=True`.",
                       "stream_options");
    }
    if ((err = OptionalBool(*so, "include_usage", &r.include_usage))) return err;
    if ((err = OptionalBool(*so, "continuous_usage_stats", &r.continuous_usage))) return err;
    r.continuous_usage = r.continuous_usage && r.include_usage;
  }
  *out = r;
  return std::nullopt;
}

std::optional<ApiError> Tokenize(std::string_view body, const ServingConfig& config,
                                 std::string* response) {
  std::optional<ApiError> err;
  std::optional<json> parsed = ParseObject(body, &err);
  if (!parsed) return err;
  const json& j = *parsed;
  if ((err = CheckModel(j, config))) return err;
  int count = 0;
  std::vector<int32_t> ids;
  if (j.contains("messages")) {
    err = MessagesTokens(j, &count, &ids);
  } else {
    err = PromptTokens(j, &count, &ids);
  }
  if (err) return err;
  json r = {{"count", count},
            {"max_model_len", config.max_model_len},
            {"tokens", ids},
            {"token_strs", nullptr}};
  *response = r.dump();
  return std::nullopt;
}

std::string ModelsBody(const ServingConfig& config, int64_t created) {
  json model = {{"id", config.model},
                {"object", "model"},
                {"created", created},
                {"owned_by", "mstperf"},
                {"root", config.model},
                {"parent", nullptr},
                {"max_model_len", config.max_model_len}};
  return json{{"object", "list"}, {"data", json::array({model})}}.dump();
}

int ChooseOutputTokens(const GenerationRequest& request, double eos_probability,
                       uint64_t seed) {
  if (request.ignore_eos || eos_probability <= 0) return request.max_tokens;
  std::mt19937_64 rng(seed);
  std::geometric_distribution<int> extra(std::min(eos_probability, 1.0));
  // The EOS is at the first position >= max(min_tokens, 1) where the coin comes up.
  const int64_t n = static_cast<int64_t>(std::max(request.min_tokens, 1)) + extra(rng);
  return static_cast<int>(std::min<int64_t>(n, request.max_tokens));
}

std::string_view TokenText(int k) { return kWords[(k - 1) % 16]; }

ResponseFormatter::ResponseFormatter(const GenerationRequest& request,
                                     std::string_view request_id, int64_t created,
                                     std::string_view model, int output_tokens)
    : request_(request),
      output_tokens_(output_tokens),
      id_(request_id),
      model_(model),
      created_(created) {
  const bool chat = request.api == Api::kChatCompletions;
  head_ = absl::StrCat("data: {\"id\":\"", id_, "\",\"object\":\"",
                       chat ? "chat.completion.chunk" : "text_completion",
                       "\",\"created\":", created_, ",\"model\":", json(model_).dump(),
                       ",\"choices\":[");
  token_open_ = chat ? "{\"index\":0,\"delta\":{\"content\":\"" : "{\"index\":0,\"text\":\"";
  token_close_ = chat ? "\"},\"logprobs\":null,\"finish_reason\":"
                      : "\",\"logprobs\":null,\"finish_reason\":";
}

const char* ResponseFormatter::finish_reason() const {
  return output_tokens_ >= request_.max_tokens ? "length" : "stop";
}

void ResponseFormatter::AppendUsage(int completion_tokens, std::string* out) const {
  out->append("\"usage\":{\"prompt_tokens\":");
  AppendInt(request_.prompt_tokens, out);
  out->append(",\"total_tokens\":");
  AppendInt(static_cast<int64_t>(request_.prompt_tokens) + completion_tokens, out);
  out->append(",\"completion_tokens\":");
  AppendInt(completion_tokens, out);
  out->append("}");
}

void ResponseFormatter::AppendStreamEvents(int before, int now, std::string* out) const {
  const bool chat = request_.api == Api::kChatCompletions;
  if (chat && before == 0) {
    out->append(head_);
    out->append("{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                "\"logprobs\":null,\"finish_reason\":null}]");
    if (request_.continuous_usage) {
      out->push_back(',');
      AppendUsage(0, out);
    }
    out->append("}\n\n");
  }
  for (int k = before + 1; k <= now; ++k) {
    const bool last = k >= output_tokens_;
    out->append(head_);
    out->append(token_open_);
    out->append(TokenText(k));
    out->append(token_close_);
    if (last) {
      out->push_back('"');
      out->append(finish_reason());
      out->push_back('"');
    } else {
      out->append("null");
    }
    out->append(chat ? "}]" : ",\"stop_reason\":null}]");
    if (request_.continuous_usage) {
      out->push_back(',');
      AppendUsage(k, out);
    }
    out->append("}\n\n");
  }
  if (now >= output_tokens_) {
    if (request_.include_usage) {
      out->append(head_);
      out->append("],");
      AppendUsage(output_tokens_, out);
      out->append("}\n\n");
    }
    out->append("data: [DONE]\n\n");
  }
}

std::string ResponseFormatter::FullBody() const {
  std::string text;
  text.reserve(static_cast<size_t>(output_tokens_) * 5);
  for (int k = 1; k <= output_tokens_; ++k) text.append(TokenText(k));
  json choice;
  if (request_.api == Api::kChatCompletions) {
    choice = {{"index", 0},
              {"message", {{"role", "assistant"}, {"content", text}, {"tool_calls", json::array()}}},
              {"logprobs", nullptr},
              {"finish_reason", finish_reason()},
              {"stop_reason", nullptr}};
  } else {
    choice = {{"index", 0},
              {"text", text},
              {"logprobs", nullptr},
              {"finish_reason", finish_reason()},
              {"stop_reason", nullptr},
              {"prompt_logprobs", nullptr}};
  }
  json body = {
      {"id", id_},
      {"object", request_.api == Api::kChatCompletions ? "chat.completion" : "text_completion"},
      {"created", created_},
      {"model", model_},
      {"choices", json::array({choice})},
      {"usage",
       {{"prompt_tokens", request_.prompt_tokens},
        {"total_tokens", request_.prompt_tokens + output_tokens_},
        {"completion_tokens", output_tokens_},
        {"prompt_tokens_details", nullptr}}}};
  return body.dump();
}

}  // namespace mstperf::simulator
