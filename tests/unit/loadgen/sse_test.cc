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

// ChunkScanner must give exactly ScanChunk's answer for every chunk of every stream, whether
// its template fast path or the walker answers.
void ExpectSameAsWalker(ChunkScanner& scanner, const std::string& chunk) {
  ASSERT_EQ(scanner.Scan(chunk), ScanChunk(chunk)) << chunk;
}

std::string VllmChunk(const std::string& id, const std::string& text, int k,
                      const char* finish = "null") {
  return R"({"id":")" + id + R"(","object":"text_completion","created":1732,"model":"m","choices":[{"index":0,"text":")" +
         text + R"(","logprobs":null,"finish_reason":)" + finish +
         R"(,"stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":)" +
         std::to_string(12 + k) + R"(,"completion_tokens":)" + std::to_string(k) + "}}";
}

TEST(ChunkScannerTest, TakesTheFastPathOnAStreamAndAgrees) {
  ChunkScanner s;
  const std::vector<std::string> words = {" the", " a", "\\n", " \\\"q\\\"", " \\u00e9", "", " longer words"};
  for (int req = 0; req < 3; ++req) {
    const std::string id = "cmpl-" + std::to_string(1000 + req);
    for (int k = 1; k <= 40; ++k) ExpectSameAsWalker(s, VllmChunk(id, words[k % words.size()], k));
    ExpectSameAsWalker(s, VllmChunk(id, "", 40, R"("length")"));
    ExpectSameAsWalker(s, R"({"id":")" + id + R"(","object":"text_completion","created":1732,"model":"m","choices":[],"usage":{"prompt_tokens":12,"total_tokens":52,"completion_tokens":40}})");
    ExpectSameAsWalker(s, "[DONE]");
  }
  // The walker learns the shape in a few chunks per request; the rest is the fast path.
  EXPECT_GT(s.fast(), 100u);
  EXPECT_LT(s.walked(), 25u);
  ChunkInfo multi = s.Scan(VllmChunk("cmpl-1002", " two tokens", 45));
  EXPECT_EQ(multi.completion_tokens, 45u);
  EXPECT_EQ(multi.content_deltas, 1u);
  EXPECT_EQ(multi.prompt_tokens, 12u);
}

TEST(ChunkScannerTest, TrickyValuesInAKnownShape) {
  ChunkScanner s;
  for (int k = 1; k <= 4; ++k) ExpectSameAsWalker(s, VllmChunk("c", " w" + std::to_string(k), k));
  const std::vector<std::string> tricky = {
      // key names and escaped quotes inside the text: still only the text
      VllmChunk("c", R"(\"usage\":{\"completion_tokens\":99},\"choices\":[])", 5),
      VllmChunk("c", R"(\\)", 6),  // a text that is one backslash
      VllmChunk("c", R"(\\\")", 7),
      VllmChunk("c", R"(\u00e9\ud83d\ude00 \/ \b\f\r\t)", 8),
      // an unescaped quote: a different structure (here still valid JSON) is the walker's
      R"({"id":"c","object":"text_completion","created":1732,"model":"m","choices":[{"index":0,"text":"a","usage":{"completion_tokens":99},"x":"","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":21,"completion_tokens":9}})",
      // a value of another kind, or a number the fast path does not take
      VllmChunk("c", " x", 9).replace(VllmChunk("c", " x", 9).find("\"completion_tokens\":9"), 21, "\"completion_tokens\":9.5"),
      VllmChunk("c", " x", 9).replace(VllmChunk("c", " x", 9).find("\"completion_tokens\":9"), 21, "\"completion_tokens\":-9"),
      VllmChunk("c", " x", 9).replace(VllmChunk("c", " x", 9).find("\"completion_tokens\":9"), 21, "\"completion_tokens\":09"),
      VllmChunk("c", " x", 9).replace(VllmChunk("c", " x", 9).find("\"completion_tokens\":9"), 21, "\"completion_tokens\":\"9\""),
      VllmChunk("c", " x", 9).replace(VllmChunk("c", " x", 9).find("\"completion_tokens\":9"), 21, "\"completion_tokens\":null"),
      VllmChunk("c", " x", 10),
      VllmChunk("c", " x", 11, R"("stop")"),
      VllmChunk("c", " x", 12, R"({"nested":{"text":"y","usage":{"completion_tokens":1}}})"),
      VllmChunk("c", " x", 13),
      // whitespace moved
      R"({ "id":"c","object":"text_completion","created":1732,"model":"m","choices":[{"index":0,"text":" y","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":26,"completion_tokens":14}})",
      VllmChunk("c", " x", 15) + " ",
      // the object turns into an error object of the same shape
      R"({"id":"c","object":"error","created":1732,"model":"m","choices":[{"index":0,"text":" y","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":26,"completion_tokens":16}})",
      R"({"id":"c","object":"text_completion","created":1732,"model":"m","choices":[{"index":0,"text":" y","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":26,"completion_tokens":17}})",
      R"({"id":"c","object":"error","created":1732,"model":"m","choices":[{"index":0,"text":" y","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":26,"completion_tokens":16}})",
      // a raw control character in the text, and the id holding a key name
      VllmChunk("c", "a\tb", 18),
      VllmChunk("choices", " x", 19),
      VllmChunk("usage", "", 20),
      VllmChunk("c", " x", 4294967297LL % 100000),
  };
  for (const std::string& c : tricky) ExpectSameAsWalker(s, c);
  // Every truncation of a chunk of the known shape is malformed, as for the walker.
  const std::string full = VllmChunk("c", " last", 21);
  ExpectSameAsWalker(s, full);
  for (size_t len = 0; len < full.size(); ++len) {
    ExpectSameAsWalker(s, full.substr(0, len));
    ASSERT_TRUE(s.Scan(full.substr(0, len)).malformed) << len;
  }
  ChunkInfo e = s.Scan(tricky[16]);
  EXPECT_TRUE(e.error);
  // Once "object" is seen to change it is a thawed value: an "error" there is still an error.
  auto with_object = [](const std::string& object, int k) {
    std::string c = VllmChunk("c", " x", k);
    return c.replace(c.find("text_completion"), 15, object);
  };
  ExpectSameAsWalker(s, with_object("text_completion", 30));
  ExpectSameAsWalker(s, with_object("chat.completion", 31));
  ExpectSameAsWalker(s, with_object("text_completion", 32));
  const uint64_t fast = s.fast();
  ExpectSameAsWalker(s, with_object("something_else", 33));
  EXPECT_EQ(s.fast(), fast + 1);  // a thawed value indeed
  ExpectSameAsWalker(s, with_object("error", 34));
  EXPECT_TRUE(s.Scan(with_object("error", 34)).error);
}

TEST(ChunkScannerTest, ChatStreamsAndShapeChanges) {
  ChunkScanner s;
  auto chat = [](const std::string& delta, const char* finish = "null") {
    return R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":)" +
           delta + R"(,"logprobs":null,"finish_reason":)" + finish + "}]}";
  };
  ExpectSameAsWalker(s, chat(R"({"role":"assistant","content":""})"));
  for (int k = 0; k < 30; ++k) {
    ExpectSameAsWalker(s, chat(R"({"content":")" + std::string(k % 4, 'x') + R"("})"));
    if (k % 7 == 3) ExpectSameAsWalker(s, chat(R"({"reasoning_content":"hmm"})"));
    if (k % 11 == 5) ExpectSameAsWalker(s, ": not json at all");
  }
  ExpectSameAsWalker(s, chat("{}", R"("stop")"));
  // Two choices, each of them changing.
  for (int k = 0; k < 20; ++k) {
    ExpectSameAsWalker(s, R"({"choices":[{"text":")" + std::string(k % 2, 'a') + R"("},{"text":")" +
                              std::string(k % 3, 'b') + R"("}]})");
  }
  for (const std::string& c : kChunks) ExpectSameAsWalker(s, c);
  EXPECT_GT(s.fast(), 10u);
}

// Random byte edits of known chunks: whatever the fast path accepts must be what the walker
// says (the walker also learns the valid mutants, so the template keeps changing).
TEST(ChunkScannerTest, AgreesWithTheWalkerOnRandomMutations) {
  std::mt19937 rng(11);
  const std::string alphabet = "\"\\{}[],: 0123456789aeflnrstu-.\t";
  ChunkScanner s;
  uint64_t valid = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string c = VllmChunk(rng() % 2 ? "c" : "d", std::string(rng() % 4, 'x'), 1 + rng() % 300);
    if (rng() % 3 == 0) {
      for (unsigned edits = 1 + rng() % 2; edits > 0; --edits) {
        const size_t at = rng() % c.size();
        switch (rng() % 3) {
          case 0: c[at] = alphabet[rng() % alphabet.size()]; break;
          case 1: c.insert(c.begin() + at, alphabet[rng() % alphabet.size()]); break;
          default: c.erase(at, 1);
        }
      }
    }
    const ChunkInfo want = ScanChunk(c);
    valid += !want.malformed;
    ASSERT_EQ(s.Scan(c), want) << c;
  }
  EXPECT_GT(s.fast(), 5000u);
  EXPECT_GT(valid, 14000u);
}

TEST(SseParserTest, ResetStartsANewStream) {
  SseParser p;
  std::vector<std::string> got;
  auto cb = [&](const SseEvent& e) { got.emplace_back(e.data); };
  p.Feed("data: half", cb);
  p.Reset();
  p.Feed("data: {\"a\":1}\n", cb);
  p.Feed("\ndata: x\r", cb);
  p.Feed("\n\r\n", cb);
  EXPECT_EQ(got, (std::vector<std::string>{"{\"a\":1}", "x"}));
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
