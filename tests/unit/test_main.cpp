#include <gtest/gtest.h>

#include "core/allocator.h"
#include "storage/h5.h"

int main(int argc, char** argv) {
  orch::tune_allocator();
  ::testing::InitGoogleTest(&argc, argv);
  orch::h5::quiet_errors();
  return RUN_ALL_TESTS();
}
