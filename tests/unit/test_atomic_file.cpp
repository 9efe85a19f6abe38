// Atomic publication and the removal of temporaries that dead writers left behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "test_util.h"

namespace orch {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

void touch(const std::string& path, const std::string& text = "x") { std::ofstream(path) << text; }

TEST(AtomicFile, AnUncommittedWriteLeavesNeitherTargetNorTemporary) {
  TempDir t;
  {
    AtomicFile f(t / "out.txt", true);
    touch(f.temp_path());
  }
  EXPECT_FALSE(fs::exists(t / "out.txt"));
  EXPECT_TRUE(fs::is_empty(t.path));
  write_file_atomically(t / "out.txt", "hello");
  std::ifstream in(t / "out.txt");
  std::string got;
  std::getline(in, got);
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(std::distance(fs::directory_iterator(t.path), fs::directory_iterator()), 1);
}

// What a writer killed before its rename leaves: "<target>.tmp-<pid>". Only those of the named target go (not a
// longer name sharing its prefix, not a name that merely contains ".tmp-", not the published file, not a folder).
TEST(AtomicFile, StaleTemporariesOfATargetAreRemovedAndNothingElse) {
  TempDir t;
  for (const char* name : {"d.h5", "d.h5.tmp-123", "d.h5.tmp-4567", "dd.h5.tmp-9", "d.h5.tmp-", "d.h5.tmp-12x", "e.h5.tmp-5"})
    touch(t / name);
  fs::create_directories(t / "d.h5.tmp-77");
  auto removed = remove_stale_temporaries(t / "d.h5");
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{t / "d.h5.tmp-123", t / "d.h5.tmp-4567"}));
  for (const char* kept : {"d.h5", "dd.h5.tmp-9", "d.h5.tmp-", "d.h5.tmp-12x", "e.h5.tmp-5", "d.h5.tmp-77"})
    EXPECT_TRUE(fs::exists(t / kept)) << kept;
  // Every target of a folder at once.
  removed = remove_stale_temporaries_in(t.path.string());
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{t / "dd.h5.tmp-9", t / "e.h5.tmp-5"}));
  EXPECT_TRUE(remove_stale_temporaries_in(t / "no-such-folder").empty());
}

}  // namespace
}  // namespace orch
