// The organ layout of a data set kind: which closed contours make up a sample's landmarks, in which order.
//
// LH (lungs and heart, e.g. JSRT+Padchest): RL 44, LL 50, H 26 = 120 nodes. L (lungs only, e.g.
// Montgomery+Shenzhen): RL 44, LL 50 = 94 nodes (spec §1.2, §2.1). RL is the right lung, on the image's left.
// Dense classes: 0 background, 1 lungs (RL and LL together), 2 heart. Immutable values; thread-safe.
#pragma once

#include <string>
#include <vector>

namespace orch {

enum class DatasetKind { kLungsHeart, kLungs };

struct Organ {
  std::string name;  // "RL", "LL", "H"
  int points;        // fine graph node count
  int label;         // dense class it belongs to (1 lungs, 2 heart)
};

struct OrganLayout {
  DatasetKind kind;
  std::vector<Organ> organs;

  static OrganLayout of(DatasetKind kind);
  int total_points() const;
  int offset(int organ_index) const;  // first node of that organ in the concatenated target
  int num_classes() const;            // dense classes including background: 3 (LH) or 2 (L)
  // Names of the distance-map channels, one per foreground class: {"lungs", "heart"} or {"lungs"}.
  std::vector<std::string> class_names() const;
};

// "lh" / "l" <-> kind; parse throws InputError naming `what` and the value.
DatasetKind parse_kind(const std::string& text, const std::string& what);
std::string kind_name(DatasetKind kind);

}  // namespace orch
