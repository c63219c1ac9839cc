// A ring-mapped group of provided buffers for multishot receives (liburing 2.3 has no
// io_uring_setup_buf_ring: the ring is mapped and registered here).
#pragma once

#include <liburing.h>
#include <sys/mman.h>

#include <cstddef>

#include "scenarios/echo/io_uring/ring.h"

namespace echo::uring {

class BufferRing {
 public:
  bool Register(io_uring& ring) {
    ring_bytes_ = kBuffers * sizeof(io_uring_buf);
    void* mem = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    void* data =
        mmap(nullptr, size_t{kBuffers} * kBufferBytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED || data == MAP_FAILED) return false;
    br_ = static_cast<io_uring_buf_ring*>(mem);
    data_ = static_cast<char*>(data);
    // The first page of every buffer is made resident now, as a long-running server's pool is: the
    // ring hands out its buffers in turn, so the load's first 2,048 messages each took a page fault
    // (16 us each on this VM, the server's CPU at 100% for the load's first 300 ms at 24,000 msgs/s
    // with --work=cpu:exp:20us, and a backlog that took 0.5 s to drain). Resident size is what the
    // ring reaches after its first cycle anyway (one page a buffer for small messages).
    for (unsigned bid = 0; bid < kBuffers; ++bid) Buffer(bid)[0] = 0;
    io_uring_buf_ring_init(br_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(mem);
    reg.ring_entries = kBuffers;
    reg.bgid = kGroup;
    if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) return false;
    for (unsigned bid = 0; bid < kBuffers; ++bid) Return(bid);
    Publish();
    return true;
  }

  void Unmap() {
    if (br_ != nullptr) munmap(br_, ring_bytes_);
    if (data_ != nullptr) munmap(data_, size_t{kBuffers} * kBufferBytes);
    br_ = nullptr;
    data_ = nullptr;
  }

  char* Buffer(unsigned bid) const { return data_ + size_t{bid} * kBufferBytes; }
  // Hands a buffer back; the kernel sees it after Publish().
  void Return(unsigned bid) {
    io_uring_buf_ring_add(br_, Buffer(bid), kBufferBytes, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(kBuffers), returned_++);
  }
  // Makes the returned buffers visible to the kernel; how many there were.
  int Publish() {
    const int n = returned_;
    if (n > 0) io_uring_buf_ring_advance(br_, n);
    returned_ = 0;
    return n;
  }

 private:
  io_uring_buf_ring* br_ = nullptr;
  char* data_ = nullptr;
  size_t ring_bytes_ = 0;
  int returned_ = 0;
};

}  // namespace echo::uring
