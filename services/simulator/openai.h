#ifndef MSTPERF_SERVICES_SIMULATOR_OPENAI_H_
#define MSTPERF_SERVICES_SIMULATOR_OPENAI_H_

// The OpenAI-compatible protocol as vLLM speaks it, without I/O: request validation (bodies in,
// a GenerationRequest or an OpenAI-style error out) and response formatting (SSE events and
// JSON bodies). The HTTP front only moves these bytes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mstperf::simulator {

enum class Api { kCompletions, kChatCompletions };

struct ServingConfig {
  // The one model served; requests naming another get 404 (vLLM's behaviour).
  std::string model = "mstperf-sim";
  // Prompt + completion tokens must fit.
  int max_model_len = 4096;
};

// An error answered as {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "BadRequestError";
  // The offending field; empty = null.
  std::string param;
};
std::string ErrorBody(const ApiError& error);
ApiError MakeError(int http_status, std::string message, std::string param = "");

struct GenerationRequest {
  Api api = Api::kCompletions;
  int prompt_tokens = 0;
  // Completion tokens asked for (max_completion_tokens, else max_tokens, else the rest of the
  // context, as vLLM does).
  int max_tokens = 0;
  int min_tokens = 0;
  bool ignore_eos = false;
  bool stream = false;
  // stream_options.include_usage: a last chunk with empty `choices` and `usage`.
  bool include_usage = false;
  // stream_options.continuous_usage_stats (with include_usage, as in vLLM): `usage` in every
  // chunk.
  bool continuous_usage = false;
  std::optional<int64_t> seed;
};

// Validates a /v1/completions or /v1/chat/completions body.
std::optional<ApiError> ParseGenerationRequest(Api api, std::string_view body,
                                               const ServingConfig& config,
                                               GenerationRequest* out);

// Answers a /tokenize body ({"prompt": ..} or {"messages": [..]}) in vLLM's shape:
// {"count": N, "max_model_len": M, "tokens": [..], "token_strs": null}.
std::optional<ApiError> Tokenize(std::string_view body, const ServingConfig& config,
                                 std::string* response);

// {"object": "list", "data": [{"id": model, ...}]}.
std::string ModelsBody(const ServingConfig& config, int64_t created);

// How many tokens the request generates. With ignore_eos, or with eos_probability == 0, it is
// max_tokens. Otherwise a pseudo-EOS ends it: after min_tokens, each token is the last with
// probability eos_probability, drawn from a generator seeded by `seed` (so the same request
// seed gives the same length); capped at max_tokens.
int ChooseOutputTokens(const GenerationRequest& request, double eos_probability, uint64_t seed);

// The text of generated token k (1-based): a leading space and a word, so the tokenizer counts
// a completion's text as exactly its completion_tokens.
std::string_view TokenText(int k);

// Formats one request's responses. Everything fixed per request is serialised once at
// construction; a token costs a few appends.
class ResponseFormatter {
 public:
  ResponseFormatter(const GenerationRequest& request, std::string_view request_id,
                    int64_t created, std::string_view model, int output_tokens);

  // Appends the SSE events ("data: {...}\n\n") for the tokens generated_before+1 ..
  // generated_now; when generated_now reaches output_tokens also the finish_reason, the usage
  // chunk if asked, and "data: [DONE]\n\n". For chat, the first call starts with the
  // assistant-role chunk.
  void AppendStreamEvents(int generated_before, int generated_now, std::string* out) const;

  // The whole non-streamed JSON body.
  std::string FullBody() const;

  const char* finish_reason() const;

 private:
  void AppendUsage(int completion_tokens, std::string* out) const;

  GenerationRequest request_;
  int output_tokens_;
  std::string head_;         // data: {"id":..,"object":..,"created":..,"model":..,"choices":[
  std::string token_open_;   // {"index":0,"text":"   or  {"index":0,"delta":{"content":"
  std::string token_close_;  // ","logprobs":null,"finish_reason":null...}]
  std::string id_;
  std::string model_;
  int64_t created_;
};

}  // namespace mstperf::simulator

#endif  // MSTPERF_SERVICES_SIMULATOR_OPENAI_H_
