#include "storage/calibration_table.h"

#include "storage/sqlite.h"
#include "storage/store.h"

namespace orch {

namespace {

// The columns, in the order the row mapper and the insert take them.
constexpr const char* kColumns =
    "model, kind, size, device, batch, threads, precision, device_model, runs_per_gpu, step_s, validation_image_s, "
    "evaluation_image_s, host, measured_at";

Calibration from_row(sqlite::Statement& s) {
  Calibration c;
  c.model = s.text(0);
  c.kind = s.text(1);
  c.size = s.integer(2);
  c.device = s.text(3);
  c.batch = s.integer(4);
  c.threads = s.integer(5);
  c.precision = s.text(6);
  c.device_model = s.text(7);
  c.runs_per_gpu = s.integer(8);
  c.step_s = s.real_or(9, 0);
  c.validation_image_s = s.real_or(10, 0);
  c.evaluation_image_s = s.real_or(11, 0);
  c.host = s.text(12);
  c.measured_at = s.text(13);
  return c;
}

}  // namespace

void CalibrationTable::upsert(const Calibration& c) {
  store_.write([&] {
    // measured_at: now, whatever the row says (the column's default).
    sqlite::Statement s(store_.database(), std::string("INSERT OR REPLACE INTO calibration(") + kColumns +
                                               ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                               "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
    s.bind(1, c.model).bind(2, c.kind).bind(3, c.size).bind(4, c.device).bind(5, c.batch).bind(6, c.threads);
    s.bind(7, c.precision).bind(8, c.device_model).bind(9, c.runs_per_gpu).bind(10, c.step_s);
    s.bind(11, c.validation_image_s).bind(12, c.evaluation_image_s).bind(13, c.host);
    s.run();
  });
}

std::vector<Calibration> CalibrationTable::all() {
  sqlite::Statement s(store_.database(), std::string("SELECT ") + kColumns + " FROM calibration ORDER BY model, kind, size");
  std::vector<Calibration> out;
  while (s.row()) out.push_back(from_row(s));
  return out;
}

}  // namespace orch
