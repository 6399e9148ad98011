// SSE framing under every split, and the chunk scanner against a full JSON parse.
#include "services/loadgen/sse.h"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mstperf::loadgen {
namespace {

struct Ev {
  std::string event, data;
  bool operator==(const Ev&) const = default;
};

std::vector<Ev> ParseIn(const std::string& stream, const std::vector<size_t>& cuts, bool finish) {
  SseParser p;
  std::vector<Ev> out;
  auto cb = [&](const SseEvent& e) { out.push_back({std::string(e.event), std::string(e.data)}); };
  size_t prev = 0;
  for (size_t c : cuts) {
    p.Feed(std::string_view(stream).substr(prev, c - prev), cb);
    prev = c;
  }
  p.Feed(std::string_view(stream).substr(prev), cb);
  if (finish) p.Finish(cb);
  return out;
}

const std::string kAwkward =
    ": ping\r\n"
    "data: {\"a\":1}\r\n\r\n"
    "event: error\r\ndata: {\"error\":\"boom\"}\r\n\r\n"
    "data: line one\ndata: line two\n\n"
    "id: 7\nretry: 100\ndata:nospace\n\n"
    ": comment in the middle\n"
    "data: {\"b\":2}\r\r"
    "data: [DONE]\n\n";

const std::vector<Ev> kExpected = {
    {"", "{\"a\":1}"},      {"error", "{\"error\":\"boom\"}"}, {"", "line one\nline two"},
    {"", "nospace"},        {"", "{\"b\":2}"},                 {"", "[DONE]"}};

TEST(SseParserTest, WholeStreamInOneRead) { EXPECT_EQ(ParseIn(kAwkward, {}, false), kExpected); }

TEST(SseParserTest, EverySplitPointGivesTheSameEvents) {
  for (size_t cut = 1; cut < kAwkward.size(); ++cut) {
    ASSERT_EQ(ParseIn(kAwkward, {cut}, false), kExpected) << "cut at " << cut;
  }
}

TEST(SseParserTest, ByteByByteAndRandomPieces) {
  std::vector<size_t> every;
  for (size_t i = 1; i < kAwkward.size(); ++i) every.push_back(i);
  EXPECT_EQ(ParseIn(kAwkward, every, false), kExpected);
  std::mt19937 rng(1);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < kAwkward.size(); ++i) {
      if (rng() % 5 == 0) cuts.push_back(i);
    }
    ASSERT_EQ(ParseIn(kAwkward, cuts, false), kExpected) << trial;
  }
}

TEST(SseParserTest, FinishDispatchesAnEventWithoutItsBlankLine) {
  const std::string cut = "data: {\"a\":1}\n\ndata: {\"b\":2}";
  EXPECT_EQ(ParseIn(cut, {}, false).size(), 1u);
  auto all = ParseIn(cut, {}, true);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].data, "{\"b\":2}");
  SseParser p;
  int n = 0;
  p.Feed("data: x\n\n", [&](const SseEvent&) { ++n; });
  EXPECT_FALSE(p.Finish([&](const SseEvent&) { ++n; }));
  EXPECT_EQ(n, 1);
}

// Realistic chunks of vLLM, TGI, SGLang and llama.cpp, and awkward ones.
const std::vector<std::string> kChunks = {
    R"({"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" hello","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":13,"completion_tokens":1}})",
    R"({"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":20,"completion_tokens":8}})",
    R"({"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"total_tokens":20,"completion_tokens":8}})",
    R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null})",
    R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" the \"usage\": {\"completion_tokens\": 99} trick"},"finish_reason":null}]})",
    R"({"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"hmm"},"finish_reason":null}]})",
    R"({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}})",
    R"({"choices":[{"text":"a"},{"text":"b"},{"text":""}]})",
    R"({"choices":[{"text":"\\"}],"usage":{"completion_tokens":null,"prompt_tokens":3}})",
    R"({"error":{"message":"out of memory","type":"InternalServerError","code":500}})",
    R"({"object":"error","message":"The model does not exist.","type":"NotFoundError","code":404})",
    R"({"error":"plain string error"})",
    R"({"choices":null,"usage":{"completion_tokens":"7"}})",
    R"({"choices":[{"text":"\u00e9\ud83d\ude00 \/ \b\f\n\r\t","finish_reason":null}],"extra":{"nested":[1,2,{"choices":[{"text":"x"}]}],"n":-1.5e3,"t":true,"f":false}})",
    R"(  { "choices" : [ { "text" : "spaced" } ] , "usage" : { "completion_tokens" : 4 } }  )",
    R"({})",
    "[DONE]",
    " [DONE] ",
};

TEST(ChunkScanTest, AgreesWithTheFullParseOnEveryShape) {
  for (const std::string& c : kChunks) {
    EXPECT_EQ(ScanChunk(c), ParseChunkJson(c)) << c;
  }
  EXPECT_TRUE(ScanChunk("[DONE]").done);
  ChunkInfo trick = ScanChunk(kChunks[4]);
  EXPECT_FALSE(trick.has_usage);
  EXPECT_EQ(trick.content_deltas, 1u);
  ChunkInfo e = ScanChunk(kChunks[9]);
  EXPECT_TRUE(e.error);
  EXPECT_EQ(e.error_message, "out of memory");
  EXPECT_TRUE(ScanChunk(kChunks[10]).error);
  ChunkInfo u = ScanChunk(kChunks[2]);
  EXPECT_TRUE(u.has_usage);
  EXPECT_EQ(u.completion_tokens, 8u);
  EXPECT_EQ(u.prompt_tokens, 12u);
  EXPECT_EQ(u.choices, 0u);
}

TEST(ChunkScanTest, EveryTruncationIsMalformedForBoth) {
  for (const std::string& c : kChunks) {
    if (c.find("DONE") != std::string::npos) continue;
    const size_t end = c.find_last_not_of(' ');
    for (size_t len = 0; len < end; ++len) {
      std::string cut = c.substr(0, len);
      if (cut.find_first_not_of(' ') == std::string::npos) cut.clear();
      ASSERT_TRUE(ParseChunkJson(cut).malformed) << cut;
      ASSERT_TRUE(ScanChunk(cut).malformed) << cut;
    }
  }
  for (const char* bad : {"not json", "{\"a\":1}x", "[1,2]", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":tru}",
                          "\"str\"", "{\"choices\":[{\"text\":\"a\tb\"}]}"}) {
    EXPECT_TRUE(ScanChunk(bad).malformed) << bad;
    EXPECT_TRUE(ParseChunkJson(bad).malformed) << bad;
  }
}

TEST(ChunkScanTest, AgreesOnRandomlyGeneratedChunks) {
  std::mt19937 rng(7);
  auto text = [&] {
    static const std::vector<std::string> pieces = {"", " a", "\"usage\":", "\\", "{", "]", "é", "\n", "choices"};
    return pieces[rng() % pieces.size()] + pieces[rng() % pieces.size()];
  };
  for (int i = 0; i < 3000; ++i) {
    nlohmann::json j = nlohmann::json::object();
    j["id"] = text();
    if (rng() % 4) {
      nlohmann::json choices = nlohmann::json::array();
      for (unsigned k = rng() % 3; k > 0; --k) {
        nlohmann::json c;
        if (rng() % 2) c["text"] = text();
        else c["delta"] = {{"content", text()}};
        c["finish_reason"] = rng() % 3 ? nlohmann::json() : nlohmann::json("length");
        choices.push_back(c);
      }
      j["choices"] = choices;
    }
    if (rng() % 2) {
      j["usage"] = {{"prompt_tokens", rng() % 1000}, {"completion_tokens", rng() % 1000},
                    {"total_tokens", rng() % 2000}};
    } else if (rng() % 2) {
      j["usage"] = nullptr;
    }
    if (rng() % 10 == 0) j["error"] = {{"message", "m"}};
    const std::string s = j.dump(rng() % 2 ? -1 : 1);
    ASSERT_EQ(ScanChunk(s), ParseChunkJson(s)) << s;
  }
}

ChunkInfo Content(uint32_t deltas) {
  ChunkInfo c;
  c.choices = 1;
  c.content_deltas = deltas;
  return c;
}

ChunkInfo WithUsage(ChunkInfo c, uint32_t completion, uint32_t prompt = 10) {
  c.has_usage = true;
  c.completion_tokens = completion;
  c.prompt_tokens = prompt;
  return c;
}

TEST(TokenCounterTest, ContinuousUsageGivesMultiTokenChunks) {
  TokenCounter t;
  EXPECT_EQ(t.OnChunk(WithUsage(Content(0), 0)), 0u);  // role chunk
  EXPECT_EQ(t.OnChunk(WithUsage(Content(1), 1)), 1u);
  EXPECT_EQ(t.OnChunk(WithUsage(Content(1), 4)), 3u);  // three tokens in one chunk
  EXPECT_EQ(t.OnChunk(WithUsage(Content(0), 4)), 0u);  // detokenizer held text back
  EXPECT_EQ(t.OnChunk(WithUsage(Content(1), 6)), 2u);
  ChunkInfo final_usage = WithUsage(ChunkInfo{}, 6);  // choices: []
  EXPECT_EQ(t.OnChunk(final_usage), 0u);
  EXPECT_EQ(t.counted(), 6u);
  EXPECT_EQ(t.completion_tokens(), 6u);
  EXPECT_EQ(t.prompt_tokens(), 10u);
}

TEST(TokenCounterTest, WithoutUsageOneTokenPerContentDelta) {
  TokenCounter t;
  EXPECT_EQ(t.OnChunk(Content(1)), 1u);
  EXPECT_EQ(t.OnChunk(Content(0)), 0u);
  EXPECT_EQ(t.OnChunk(Content(2)), 2u);  // two choices with content
  ChunkInfo fin = Content(0);
  fin.finished = true;
  t.OnChunk(fin);
  EXPECT_TRUE(t.finished());
  // A final usage-only chunk sets the totals but invents no tokens.
  EXPECT_EQ(t.OnChunk(WithUsage(ChunkInfo{}, 9, 33)), 0u);
  EXPECT_EQ(t.counted(), 3u);
  EXPECT_EQ(t.completion_tokens(), 9u);
  EXPECT_EQ(t.prompt_tokens(), 33u);
}

}  // namespace
}  // namespace mstperf::loadgen
