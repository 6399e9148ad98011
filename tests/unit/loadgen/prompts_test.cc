// Prompt lengths against tokenizers with known rules, uniqueness, corpus files.
#include "services/loadgen/prompts.h"

#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace mstperf::loadgen {
namespace {

// Like the simulator's: whitespace-separated words, 16-byte pieces; a chat adds a role token.
uint32_t WordTokens(std::string_view text) {
  uint32_t n = 0;
  for (absl::string_view w : absl::StrSplit(absl::string_view(text.data(), text.size()), ' ', absl::SkipEmpty())) n += (w.size() + 15) / 16;
  return n;
}

// Like a BPE with a BOS token: words longer than 6 bytes cost 2 tokens; chats add a template.
uint32_t BpeTokens(std::string_view text, bool chat) {
  uint32_t n = chat ? 9 : 1;
  for (absl::string_view w : absl::StrSplit(absl::string_view(text.data(), text.size()), ' ', absl::SkipEmpty())) n += w.size() > 6 ? 2 : 1;
  return n;
}

TEST(PromptBuilderTest, ExactInAnAdditiveTokenizer) {
  for (bool chat : {false, true}) {
    int calls = 0;
    TokenizeFn tok = [&](std::string_view text, bool c) -> absl::StatusOr<uint32_t> {
      ++calls;
      EXPECT_EQ(c, chat);
      return BpeTokens(text, c);
    };
    auto b = PromptBuilder::Calibrate(BuiltinCorpusWords(), chat, tok);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_TRUE(b->exact()) << b->note();
    EXPECT_EQ(calls, static_cast<int>(b->vocabulary_size()) + 1 + 5);
    for (uint32_t len : {b->overhead() + 1, 17u, 128u, 1000u, 4096u, 20000u}) {
      for (uint64_t idx = 0; idx < 20; ++idx) {
        ASSERT_EQ(BpeTokens(b->Build(3, idx, len), chat), len) << len << " " << idx;
      }
    }
  }
}

TEST(PromptBuilderTest, ExactWithTheSimulatorsRule) {
  TokenizeFn tok = [](std::string_view text, bool) -> absl::StatusOr<uint32_t> {
    return WordTokens(text);
  };
  auto b = PromptBuilder::Calibrate(BuiltinCorpusWords(), false, tok);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->exact());
  for (uint32_t len = 1; len < 300; ++len) ASSERT_EQ(WordTokens(b->Build(1, len, len)), std::max(len, 1u));
}

TEST(PromptBuilderTest, PromptsAreUniqueFromTheirFirstWords) {
  PromptBuilder b = PromptBuilder::Approximate(BuiltinCorpusWords(), false);
  std::set<std::string> openings;
  for (uint64_t idx = 0; idx < 5000; ++idx) {
    std::string p = b.Build(9, idx, 200);
    std::vector<std::string> words = absl::StrSplit(p, ' ');
    openings.insert(absl::StrJoin(std::vector<std::string>(words.begin(), words.begin() + 6), " "));
  }
  EXPECT_EQ(openings.size(), 5000u);
  EXPECT_EQ(b.Build(9, 17, 200), b.Build(9, 17, 200));
  EXPECT_NE(b.Build(9, 17, 200), b.Build(10, 17, 200));
  EXPECT_FALSE(b.exact());
}

TEST(PromptBuilderTest, ANonAdditiveTokenizerIsReportedInexact) {
  // Four bytes per token over the whole text: words do not add up.
  TokenizeFn tok = [](std::string_view text, bool) -> absl::StatusOr<uint32_t> {
    return static_cast<uint32_t>(text.size() / 4);
  };
  auto b = PromptBuilder::Calibrate(BuiltinCorpusWords(), false, tok);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->exact());
  EXPECT_NE(b->note().find("tokens"), std::string::npos);
}

TEST(PromptBuilderTest, TokenizerFailureIsReturned) {
  TokenizeFn tok = [](std::string_view, bool) -> absl::StatusOr<uint32_t> {
    return absl::UnavailableError("no /tokenize");
  };
  EXPECT_EQ(PromptBuilder::Calibrate(BuiltinCorpusWords(), false, tok).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(CorpusTest, TextAndJsonlFilesAndErrors) {
  const std::string dir = ::testing::TempDir();
  {
    std::ofstream(dir + "/c.txt") << "one two three four five six seven eight\nnine ten eleven "
                                     "twelve thirteen fourteen fifteen sixteen "
                                     "averyveryverylongwordindeed\n";
    std::ofstream(dir + "/c.jsonl")
        << "{\"text\": \"alpha beta gamma delta epsilon zeta eta theta\"}\n\n"
        << "{\"prompt\": \"iota kappa lambda mu nu xi omicron pi\"}\n";
    std::ofstream(dir + "/bad.jsonl") << "{\"text\": \"a b\"}\n[1,2]\n";
    std::ofstream(dir + "/short.txt") << "too short\n";
  }
  auto txt = LoadCorpusWords(dir + "/c.txt");
  ASSERT_TRUE(txt.ok());
  EXPECT_EQ(txt->size(), 16u);  // the 27-byte word is dropped
  auto jsonl = LoadCorpusWords(dir + "/c.jsonl");
  ASSERT_TRUE(jsonl.ok()) << jsonl.status();
  EXPECT_EQ(jsonl->front(), "alpha");
  EXPECT_EQ(jsonl->back(), "pi");
  auto bad = LoadCorpusWords(dir + "/bad.jsonl");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos);
  EXPECT_NE(LoadCorpusWords(dir + "/short.txt").status().message().find("prompt.corpus_path"),
            std::string::npos);
  EXPECT_FALSE(LoadCorpusWords(dir + "/missing.txt").ok());
  EXPECT_GT(BuiltinCorpusWords().size(), 500u);
}

}  // namespace
}  // namespace mstperf::loadgen
