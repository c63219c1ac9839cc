// The loops of the io_uring model, one per worker thread: TCP in two forms (`single`: one operation
// in flight per connection; multishot recv into provided buffers for every other variant) and UDP.
#pragma once

#include <memory>

#include "scenarios/echo/io_uring/ring.h"

namespace echo::uring {

std::unique_ptr<RingLoop> MakeSingleLoop(int listen_fd, const Technique& t, const ReplyMode& reply);
std::unique_ptr<RingLoop> MakeMultishotLoop(int listen_fd, const Technique& t, const ReplyMode& reply);
std::unique_ptr<RingLoop> MakeUdpLoop(int socket_fd, const Technique& t, const ReplyMode& reply);

}  // namespace echo::uring
