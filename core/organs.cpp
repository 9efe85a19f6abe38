#include "core/organs.h"

#include "core/errors.h"

namespace orch {

OrganLayout OrganLayout::of(DatasetKind kind) {
  OrganLayout l{kind, {{"RL", 44, 1}, {"LL", 50, 1}}};
  if (kind == DatasetKind::kLungsHeart) l.organs.push_back({"H", 26, 2});
  return l;
}

int OrganLayout::total_points() const {
  int n = 0;
  for (const auto& o : organs) n += o.points;
  return n;
}

int OrganLayout::offset(int organ_index) const {
  int n = 0;
  for (int i = 0; i < organ_index; ++i) n += organs[i].points;
  return n;
}

int OrganLayout::num_classes() const { return kind == DatasetKind::kLungsHeart ? 3 : 2; }

std::vector<std::string> OrganLayout::class_names() const {
  if (kind == DatasetKind::kLungsHeart) return {"lungs", "heart"};
  return {"lungs"};
}

DatasetKind parse_kind(const std::string& text, const std::string& what) {
  if (text == "lh") return DatasetKind::kLungsHeart;
  if (text == "l") return DatasetKind::kLungs;
  throw InputError("", what, text, "expected 'lh' (lungs and heart) or 'l' (lungs only)");
}

std::string kind_name(DatasetKind kind) { return kind == DatasetKind::kLungsHeart ? "lh" : "l"; }

}  // namespace orch
