// The original tool's per-request file, output.csv: reading, writing, and the conversion
// between its rows and mstperf's RequestRecords. Pure (strings in, strings out; no files).
//
// Format (docs: /work/shared/spec/most-semantics.md, step 4), one header line then one row per
// request, sorted by received_timestamp:
//   received_timestamp      UTC time of the last token, "%Y%m%dT%H%M%S" (1-second resolution)
//   complete_response_time  end-to-end latency in milliseconds (a decimal number)
//   success_rate            percent of successful requests over the whole iteration (every row)
//   success                 True / False (Python's spelling; true/false/1/0 are read too)
//   worker_idx, request_idx later versions only; optional when reading
// Unknown columns (e.g. the `no_statistical_difference` the original appends) are ignored.
//
// This file is the only writer of output.csv (and of its halves, first_half.csv and
// second_half.csv): the controller and mstperfctl call OutputCsvFromRecords, and the evaluator's
// `most` mode judges exactly the rows RowFromRecord makes, so a re-evaluation of the written
// file gives the same verdict as the live one.
#ifndef MSTPERF_SERVICES_EVALUATOR_OUTPUT_CSV_H_
#define MSTPERF_SERVICES_EVALUATOR_OUTPUT_CSV_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "mstperf/v1/common.pb.h"

namespace mstperf::evaluator {

struct OutputRow {
  int64_t received_unix_s = 0;
  double latency_ms = 0;
  double success_rate_pct = 0;
  bool success = false;
  int64_t worker_idx = -1;   // -1: column absent
  int64_t request_idx = -1;  // -1: column absent (readers then use the row number, 0-based)
};

// Python's repr() of a float, as the original's files print them: shortest round-trip digits,
// ".0" when whole ("100.0"), "nan", "inf", "-inf".
std::string PythonFloat(double x);

// "%Y%m%dT%H%M%S" in UTC.
std::string FormatReceivedTimestamp(int64_t unix_s);
absl::StatusOr<int64_t> ParseReceivedTimestamp(absl::string_view text);

// Parses the text of an output.csv. Errors name the line (1-based, the header is line 1) and
// the column, e.g. "output.csv line 7, column complete_response_time: 'abc' is not a number".
absl::StatusOr<std::vector<OutputRow>> ParseOutputCsv(absl::string_view text);

// Header plus rows, in the given order. Latencies with microsecond precision ("%.3f").
std::string FormatOutputCsv(const std::vector<OutputRow>& rows);

// One row per record, as the original's convert step makes them: received_timestamp = end of
// the response truncated to the second; latency = end - sent; success_rate = successful / all
// records * 100; rows stably sorted by received_timestamp. A record that never ended
// (end_unix_us == 0: dropped, or cut before any byte) uses its send time, else its scheduled
// time, as its end, and counts as a failure. worker_idx = replica_idx.
std::vector<OutputRow> RowsFromRecords(const std::vector<mstperf::v1::RequestRecord>& records);

// The same in two steps, for records that arrive in batches: RowFromRecord per record (no
// success_rate yet), then FinishRows once (success_rate of all rows, stable sort).
OutputRow RowFromRecord(const mstperf::v1::RequestRecord& record);
void FinishRows(std::vector<OutputRow>& rows);

// The file's text for `records` (any subset of an iteration's records, e.g. a half), with
// `success_rate_pct` on every row (the whole iteration's, also in the halves): RowFromRecord per
// record, rows stably sorted by received_timestamp (ties keep the given order), FormatOutputCsv.
std::string OutputCsvFromRecords(const std::vector<const mstperf::v1::RequestRecord*>& records,
                                 double success_rate_pct);

// The inverse, for files written by the original tool: end = received_timestamp,
// sent = end - latency (rounded to the microsecond), scheduled = sent. `row_number` is used as
// request_idx when the file has no request_idx column.
mstperf::v1::RequestRecord RecordFromRow(const OutputRow& row, uint64_t row_number);

}  // namespace mstperf::evaluator

#endif  // MSTPERF_SERVICES_EVALUATOR_OUTPUT_CSV_H_
