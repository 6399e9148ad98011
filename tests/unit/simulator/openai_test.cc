// The OpenAI protocol layer without sockets: tokenizer, request validation, SSE formatting.
#include "services/simulator/openai.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "services/simulator/tokenizer.h"

namespace mstperf::simulator {
namespace {

using nlohmann::json;

TEST(TokenizerTest, WhitespaceSeparatedRunsOfAtMost16Bytes) {
  EXPECT_EQ(CountTokens(""), 0);
  EXPECT_EQ(CountTokens("   \n\t"), 0);
  EXPECT_EQ(CountTokens("hello world"), 2);
  EXPECT_EQ(CountTokens(" x  y\n"), 2);
  EXPECT_EQ(CountTokens(std::string(16, 'a')), 1);
  EXPECT_EQ(CountTokens(std::string(17, 'a')), 2);
  EXPECT_EQ(CountTokens(std::string(40, 'a')), 3);
  EXPECT_EQ(Tokenize("a b a"), Tokenize("a  b\na"));
  std::vector<int32_t> ids = Tokenize("a b a");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], ids[2]);
  EXPECT_NE(ids[0], ids[1]);
  for (int32_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, kVocabSize);
  }
}

TEST(TokenizerTest, GeneratedTextCountsAsItsTokens) {
  std::string text;
  for (int k = 1; k <= 100; ++k) text += TokenText(k);
  EXPECT_EQ(CountTokens(text), 100);
}

ServingConfig Config() {
  ServingConfig c;
  c.model = "m";
  c.max_model_len = 100;
  return c;
}

std::optional<ApiError> Parse(Api api, const std::string& body, GenerationRequest* r) {
  return ParseGenerationRequest(api, body, Config(), r);
}

TEST(ParseTest, CompletionsFields) {
  GenerationRequest r;
  auto err = Parse(Api::kCompletions,
                   R"({"model":"m","prompt":"a b c d","max_tokens":5,"min_tokens":2,
                       "ignore_eos":true,"stream":true,"seed":9,
                       "stream_options":{"include_usage":true,"continuous_usage_stats":true}})",
                   &r);
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(r.prompt_tokens, 4);
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_EQ(r.min_tokens, 2);
  EXPECT_TRUE(r.ignore_eos);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.continuous_usage);
  EXPECT_EQ(r.seed, 9);
}

TEST(ParseTest, DefaultsAndPromptForms) {
  GenerationRequest r;
  ASSERT_FALSE(Parse(Api::kCompletions, R"({"prompt":"a b"})", &r));
  EXPECT_EQ(r.max_tokens, 98);  // the rest of the context, as vLLM
  EXPECT_FALSE(r.stream);
  ASSERT_FALSE(Parse(Api::kCompletions, R"({"prompt":[1,2,3]})", &r));
  EXPECT_EQ(r.prompt_tokens, 3);
  ASSERT_FALSE(Parse(Api::kCompletions, R"({"prompt":["a b c d e"]})", &r));
  EXPECT_EQ(r.prompt_tokens, 5);
  // continuous_usage_stats counts only with include_usage (vLLM).
  ASSERT_FALSE(Parse(Api::kCompletions,
                     R"({"prompt":"a","stream":true,"stream_options":{"continuous_usage_stats":true}})",
                     &r));
  EXPECT_FALSE(r.continuous_usage);
}

TEST(ParseTest, ChatMessagesAndMaxCompletionTokens) {
  GenerationRequest r;
  ASSERT_FALSE(Parse(Api::kChatCompletions,
                     R"({"messages":[{"role":"system","content":"be brief"},
                                     {"role":"user","content":[{"type":"text","text":"hi there"}]}],
                         "max_tokens":3,"max_completion_tokens":7})",
                     &r));
  EXPECT_EQ(r.prompt_tokens, 1 + 2 + 1 + 2);  // role + content per message
  EXPECT_EQ(r.max_tokens, 7);                 // max_completion_tokens wins
}

struct BadCase {
  Api api;
  const char* body;
  int status;
  const char* param;  // "" = null
};

class BadRequestTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadRequestTest, AnsweredWithOpenAiError) {
  GenerationRequest r;
  auto err = Parse(GetParam().api, GetParam().body, &r);
  ASSERT_TRUE(err.has_value()) << GetParam().body;
  EXPECT_EQ(err->http_status, GetParam().status);
  EXPECT_EQ(err->param, GetParam().param);
  json body = json::parse(ErrorBody(*err));
  EXPECT_EQ(body["error"]["code"], GetParam().status);
  EXPECT_FALSE(body["error"]["message"].get<std::string>().empty());
  EXPECT_TRUE(body["error"]["type"].is_string());
  if (*GetParam().param) {
    EXPECT_EQ(body["error"]["param"], GetParam().param);
  } else {
    EXPECT_TRUE(body["error"]["param"].is_null());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadRequestTest,
    ::testing::Values(
        BadCase{Api::kCompletions, "{not json", 400, ""},
        BadCase{Api::kCompletions, "[1,2]", 400, ""},
        BadCase{Api::kCompletions, R"({"max_tokens":3})", 400, "prompt"},
        BadCase{Api::kCompletions, R"({"prompt":5})", 400, "prompt"},
        BadCase{Api::kCompletions, R"({"prompt":["a","b"]})", 400, "prompt"},
        BadCase{Api::kCompletions, R"({"prompt":[]})", 400, "prompt"},
        BadCase{Api::kCompletions, R"({"prompt":"a","max_tokens":0})", 400, "max_tokens"},
        BadCase{Api::kCompletions, R"({"prompt":"a","max_tokens":-3})", 400, "max_tokens"},
        BadCase{Api::kCompletions, R"({"prompt":"a","max_tokens":"5"})", 400, "max_tokens"},
        BadCase{Api::kCompletions, R"({"prompt":"a","max_tokens":2.5})", 400, "max_tokens"},
        BadCase{Api::kCompletions, R"({"prompt":"a","max_tokens":100})", 400, "max_tokens"},
        BadCase{Api::kCompletions, R"({"prompt":"a","min_tokens":9,"max_tokens":5})", 400,
                "min_tokens"},
        BadCase{Api::kCompletions, R"({"prompt":"a","stream":"yes"})", 400, "stream"},
        BadCase{Api::kCompletions, R"({"prompt":"a","ignore_eos":1})", 400, "ignore_eos"},
        BadCase{Api::kCompletions, R"({"prompt":"a","stream_options":{"include_usage":true}})",
                400, "stream_options"},
        BadCase{Api::kCompletions, R"({"prompt":"a","n":2})", 400, "n"},
        BadCase{Api::kCompletions, R"({"prompt":"a","model":"other"})", 404, "model"},
        BadCase{Api::kCompletions, R"({"prompt":"a","model":7})", 400, "model"},
        BadCase{Api::kChatCompletions, R"({"prompt":"a"})", 400, "messages"},
        BadCase{Api::kChatCompletions, R"({"messages":[]})", 400, "messages"},
        BadCase{Api::kChatCompletions, R"({"messages":[{"content":"x"}]})", 400, "messages"},
        BadCase{Api::kChatCompletions, R"({"messages":[{"role":"user","content":5}]})", 400,
                "messages"},
        BadCase{Api::kChatCompletions,
                R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":0})", 400,
                "max_completion_tokens"}));

TEST(ParseTest, PromptOverTheContextLength) {
  GenerationRequest r;
  std::string words;
  for (int i = 0; i < 100; ++i) words += "w ";
  auto err = Parse(Api::kCompletions, json{{"prompt", words}}.dump(), &r);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->http_status, 400);
  EXPECT_EQ(err->param, "prompt");
  EXPECT_NE(err->message.find("maximum context length is 100"), std::string::npos);
}

TEST(TokenizeTest, VllmShape) {
  std::string out;
  ASSERT_FALSE(Tokenize(R"({"model":"m","prompt":"one two three"})", Config(), &out));
  json j = json::parse(out);
  EXPECT_EQ(j["count"], 3);
  EXPECT_EQ(j["max_model_len"], 100);
  EXPECT_EQ(j["tokens"].size(), 3u);
  ASSERT_FALSE(Tokenize(R"({"messages":[{"role":"user","content":"a b"}]})", Config(), &out));
  EXPECT_EQ(json::parse(out)["count"], 3);
  EXPECT_TRUE(Tokenize(R"({"prompt":1})", Config(), &out).has_value());
}

TEST(OutputLengthTest, IgnoreEosOrNoEosRunsToMaxTokens) {
  GenerationRequest r;
  r.max_tokens = 50;
  EXPECT_EQ(ChooseOutputTokens(r, 0.0, 1), 50);
  r.ignore_eos = true;
  EXPECT_EQ(ChooseOutputTokens(r, 0.5, 1), 50);
}

TEST(OutputLengthTest, PseudoEosIsSeededAndHonoursMinTokens) {
  GenerationRequest r;
  r.max_tokens = 1000;
  r.min_tokens = 10;
  int below_max = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const int n = ChooseOutputTokens(r, 0.05, seed);
    EXPECT_GE(n, 10);
    EXPECT_LE(n, 1000);
    EXPECT_EQ(n, ChooseOutputTokens(r, 0.05, seed));
    below_max += n < 1000;
  }
  EXPECT_GT(below_max, 190);
}

// Splits an SSE byte stream into its data payloads.
std::vector<std::string> Events(const std::string& sse) {
  std::vector<std::string> out;
  for (absl::string_view e : absl::StrSplit(sse, "\n\n", absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(e, "data: ")) << e;
    out.emplace_back(e.substr(6));
  }
  return out;
}

TEST(FormatterTest, CompletionStreamWithContinuousUsage) {
  GenerationRequest r;
  r.prompt_tokens = 7;
  r.max_tokens = 3;
  r.stream = r.include_usage = r.continuous_usage = true;
  ResponseFormatter f(r, "cmpl-1", 123, "m", 3);
  std::string sse;
  f.AppendStreamEvents(0, 1, &sse);
  f.AppendStreamEvents(1, 3, &sse);  // two tokens in one call (coalesced steps)
  std::vector<std::string> ev = Events(sse);
  ASSERT_EQ(ev.size(), 5u);
  for (int k = 0; k < 3; ++k) {
    json c = json::parse(ev[k]);
    EXPECT_EQ(c["id"], "cmpl-1");
    EXPECT_EQ(c["object"], "text_completion");
    EXPECT_EQ(c["created"], 123);
    EXPECT_EQ(c["model"], "m");
    EXPECT_EQ(c["choices"][0]["text"], std::string(TokenText(k + 1)));
    EXPECT_EQ(c["usage"]["completion_tokens"], k + 1);
    EXPECT_EQ(c["usage"]["prompt_tokens"], 7);
    EXPECT_EQ(c["usage"]["total_tokens"], 8 + k);
    if (k < 2) {
      EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    } else {
      EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
    }
  }
  json last = json::parse(ev[3]);
  EXPECT_TRUE(last["choices"].empty());
  EXPECT_EQ(last["usage"]["completion_tokens"], 3);
  EXPECT_EQ(ev[4], "[DONE]");
}

TEST(FormatterTest, ChatStreamStartsWithRoleAndOmitsUsageUnlessAsked) {
  GenerationRequest r;
  r.api = Api::kChatCompletions;
  r.prompt_tokens = 2;
  r.max_tokens = 5;
  r.stream = true;
  ResponseFormatter f(r, "chatcmpl-1", 1, "m", 2);  // pseudo-EOS after 2
  std::string sse;
  f.AppendStreamEvents(0, 1, &sse);
  f.AppendStreamEvents(1, 2, &sse);
  std::vector<std::string> ev = Events(sse);
  ASSERT_EQ(ev.size(), 4u);
  json role = json::parse(ev[0]);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_FALSE(role.contains("usage"));
  json tok = json::parse(ev[2]);
  EXPECT_EQ(tok["choices"][0]["delta"]["content"], std::string(TokenText(2)));
  EXPECT_EQ(tok["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(ev[3], "[DONE]");
}

TEST(FormatterTest, FullBodies) {
  GenerationRequest r;
  r.prompt_tokens = 4;
  r.max_tokens = 3;
  json c = json::parse(ResponseFormatter(r, "cmpl-9", 5, "m", 3).FullBody());
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(CountTokens(c["choices"][0]["text"].get<std::string>()), 3);
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(c["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(c["usage"]["completion_tokens"], 3);
  EXPECT_EQ(c["usage"]["total_tokens"], 7);
  r.api = Api::kChatCompletions;
  json chat = json::parse(ResponseFormatter(r, "chatcmpl-9", 5, "m", 3).FullBody());
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(CountTokens(chat["choices"][0]["message"]["content"].get<std::string>()), 3);
}

}  // namespace
}  // namespace mstperf::simulator
