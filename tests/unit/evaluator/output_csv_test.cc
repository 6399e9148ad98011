// output.csv: reading the original's files, clear errors, and agreement of writer and reader.
#include "services/evaluator/output_csv.h"

#include <cmath>

#include <gtest/gtest.h>

namespace mstperf::evaluator {
namespace {

TEST(OutputCsvTest, ReadsTheOriginalsFormat) {
  const std::string text =
      "received_timestamp,complete_response_time,success_rate,success,worker_idx,request_idx\n"
      "20260314T100003,2714.781466,96.66666666666667,True,0,17\n"
      "20260314T100104,1973.5,96.66666666666667,False,3,18\r\n";
  auto rows = ParseOutputCsv(text);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].received_unix_s, 1773482403);  // 2026-03-14T10:00:03Z
  EXPECT_DOUBLE_EQ((*rows)[0].latency_ms, 2714.781466);
  EXPECT_DOUBLE_EQ((*rows)[0].success_rate_pct, 96.66666666666667);
  EXPECT_TRUE((*rows)[0].success);
  EXPECT_FALSE((*rows)[1].success);
  EXPECT_EQ((*rows)[1].worker_idx, 3);
  EXPECT_EQ((*rows)[1].request_idx, 18);
}

TEST(OutputCsvTest, ReadsTheSeedsFourColumnsAndIgnoresExtraColumns) {
  auto rows = ParseOutputCsv(
      "received_timestamp,complete_response_time,success_rate,success,no_statistical_difference\n"
      "20260314T100003,10,100.0,True,False\n");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ((*rows)[0].request_idx, -1);
  const auto rec = RecordFromRow((*rows)[0], 5);
  EXPECT_EQ(rec.request_idx(), 5u);
  EXPECT_EQ(rec.end_unix_us(), 1773482403000000);
  EXPECT_EQ(rec.sent_unix_us(), 1773482403000000 - 10000);
}

TEST(OutputCsvTest, ErrorsNameLineAndColumn) {
  const std::string header = "received_timestamp,complete_response_time,success_rate,success\n";
  struct Case {
    std::string body;
    std::string expected;
  } cases[] = {
      {"20260314T100003,abc,100.0,True\n", "line 2, column complete_response_time"},
      {"20260314T100003,1,100.0,True\n2026-03-14 10:00,1,100.0,True\n",
       "line 3, column received_timestamp"},
      {"20260314T100003,1,100.0,maybe\n", "line 2, column success"},
      {"20260314T100003,1,140,True\n", "line 2, column success_rate"},
      {"20260314T100003,-5,100,True\n", "line 2, column complete_response_time"},
      {"20260314T100003,1,100.0\n", "line 2: 3 fields"},
  };
  for (const Case& c : cases) {
    auto rows = ParseOutputCsv(header + c.body);
    ASSERT_FALSE(rows.ok()) << c.body;
    EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(rows.status().message().find(c.expected), std::string::npos)
        << rows.status().message();
  }
  auto missing = ParseOutputCsv("received_timestamp,success\n20260314T100003,True\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("complete_response_time"), std::string::npos);
  EXPECT_FALSE(ParseOutputCsv("").ok());
}

TEST(OutputCsvTest, RowsFromRecordsTruncateToTheSecondAndSortAndRate) {
  std::vector<mstperf::v1::RequestRecord> records(3);
  records[0].set_request_idx(0);
  records[0].set_sent_unix_us(1773482401'200000);
  records[0].set_end_unix_us(1773482403'999999);  // ends at 10:00:03.999999
  records[0].set_success(true);
  records[1].set_request_idx(1);
  records[1].set_sent_unix_us(1773482400'000000);
  records[1].set_end_unix_us(1773482401'500000);
  records[1].set_success(true);
  records[2].set_request_idx(2);  // dropped: never sent, never ended
  records[2].set_scheduled_unix_us(1773482402'000000);
  records[2].set_error_kind(mstperf::v1::ERROR_KIND_DROPPED);
  const auto rows = RowsFromRecords(records);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].request_idx, 1);
  EXPECT_EQ(rows[1].request_idx, 2);
  EXPECT_EQ(rows[2].request_idx, 0);
  EXPECT_EQ(rows[2].received_unix_s, 1773482403);
  EXPECT_DOUBLE_EQ(rows[2].latency_ms, 2799.999);
  EXPECT_FALSE(rows[1].success);
  EXPECT_DOUBLE_EQ(rows[0].success_rate_pct, 2.0 / 3.0 * 100.0);
}

TEST(OutputCsvTest, WriterAndReaderAgree) {
  std::vector<mstperf::v1::RequestRecord> records(50);
  for (int i = 0; i < 50; ++i) {
    records[i].set_request_idx(i);
    records[i].set_replica_idx(i % 2);
    records[i].set_sent_unix_us(1773482400'000000 + i * 1'000'000 + 123);
    records[i].set_end_unix_us(records[i].sent_unix_us() + 2'000'000 + i * 7919);
    records[i].set_success(i % 10 != 3);
  }
  const auto rows = RowsFromRecords(records);
  const std::string text = FormatOutputCsv(rows);
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "received_timestamp,complete_response_time,success_rate,success,worker_idx,"
            "request_idx");
  EXPECT_NE(text.find(",90.0,False,1,3\n"), std::string::npos) << text.substr(0, 300);
  auto back = ParseOutputCsv(text);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ((*back)[i].received_unix_s, rows[i].received_unix_s);
    EXPECT_DOUBLE_EQ((*back)[i].latency_ms, rows[i].latency_ms);
    EXPECT_EQ((*back)[i].success, rows[i].success);
    EXPECT_EQ((*back)[i].request_idx, rows[i].request_idx);
    EXPECT_EQ((*back)[i].worker_idx, rows[i].worker_idx);
    EXPECT_DOUBLE_EQ((*back)[i].success_rate_pct, rows[i].success_rate_pct);
  }
}

// The one writer the controller and mstperfctl use: the same bytes as the evaluator's rows when
// the rate is the rows' own, and the given (whole iteration's) rate on a half's rows.
TEST(OutputCsvTest, OutputCsvFromRecordsIsTheEvaluatorsRows) {
  std::vector<mstperf::v1::RequestRecord> records(20);
  std::vector<const mstperf::v1::RequestRecord*> all, half;
  for (int i = 0; i < 20; ++i) {
    records[i].set_request_idx(i);
    records[i].set_replica_idx(i % 2);
    records[i].set_sent_unix_us(1773482400'000000 + i * 300'000);
    // Later requests end sooner: the file is sorted by received_timestamp, not request_idx.
    records[i].set_end_unix_us(records[i].sent_unix_us() + 5'000'000 - i * 200'000);
    records[i].set_success(i != 7);
    all.push_back(&records[i]);
    if (i >= 10) half.push_back(&records[i]);
  }
  const std::string text = OutputCsvFromRecords(all, 95.0);
  EXPECT_EQ(text, FormatOutputCsv(RowsFromRecords(records)));
  auto rows = ParseOutputCsv(text);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 20u);
  for (size_t i = 1; i < rows->size(); ++i) {
    EXPECT_LE((*rows)[i - 1].received_unix_s, (*rows)[i].received_unix_s);
  }
  EXPECT_NE(text.find(",95.0,False,1,7\n"), std::string::npos) << text;

  auto half_rows = ParseOutputCsv(OutputCsvFromRecords(half, 95.0));
  ASSERT_TRUE(half_rows.ok());
  ASSERT_EQ(half_rows->size(), 10u);
  for (const OutputRow& r : *half_rows) {
    EXPECT_DOUBLE_EQ(r.success_rate_pct, 95.0);  // the iteration's rate, not the half's 100
    EXPECT_GE(r.request_idx, 10);
  }
  EXPECT_EQ(OutputCsvFromRecords({}, 0),
            "received_timestamp,complete_response_time,success_rate,success,worker_idx,"
            "request_idx\n");
}

TEST(OutputCsvTest, PythonFloatLooksLikePythonRepr) {
  EXPECT_EQ(PythonFloat(100), "100.0");
  EXPECT_EQ(PythonFloat(98.33333333333333), "98.33333333333333");
  EXPECT_EQ(PythonFloat(0.1), "0.1");
  EXPECT_EQ(PythonFloat(91.0), "91.0");
  EXPECT_EQ(PythonFloat(1e300), "1e+300");
  EXPECT_EQ(PythonFloat(std::nan("")), "nan");
  EXPECT_EQ(PythonFloat(-INFINITY), "-inf");
}

TEST(OutputCsvTest, TimestampFormat) {
  EXPECT_EQ(FormatReceivedTimestamp(1773482403), "20260314T100003");
  EXPECT_EQ(*ParseReceivedTimestamp("20260314T100003"), 1773482403);
  EXPECT_FALSE(ParseReceivedTimestamp("20260314T10000").ok());
  EXPECT_FALSE(ParseReceivedTimestamp("20261314T100003").ok());
}

}  // namespace
}  // namespace mstperf::evaluator
