#include "scenarios/echo/io_uring/buffer_ring.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace echo::uring {
namespace {

// The ring's buffers are resident once it is registered, before any message: a fresh server's first
// pass over them took a page fault a buffer in the load (16 us each on a VM), its CPU at 100%.
TEST(BufferRingTest, EveryBufferIsResidentOnceRegistered) {
  io_uring ring{};
  if (const int rc = io_uring_queue_init(8, &ring, 0); rc < 0) GTEST_SKIP() << "no io_uring here: " << -rc;
  BufferRing buffers;
  if (!buffers.Register(ring)) {
    io_uring_queue_exit(&ring);
    GTEST_SKIP() << "no ring-mapped provided buffers in this kernel";
  }
  const long page = sysconf(_SC_PAGESIZE);
  unsigned resident = 0;
  for (unsigned bid = 0; bid < kBuffers; ++bid) {
    const auto at = reinterpret_cast<uintptr_t>(buffers.Buffer(bid)) & ~static_cast<uintptr_t>(page - 1);
    unsigned char in_core = 0;
    ASSERT_EQ(mincore(reinterpret_cast<void*>(at), static_cast<size_t>(page), &in_core), 0);
    resident += in_core & 1;
  }
  EXPECT_EQ(resident, kBuffers);
  buffers.Unmap();
  io_uring_queue_exit(&ring);
}

}  // namespace
}  // namespace echo::uring
