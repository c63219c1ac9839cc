// The loops of the io_uring model, one per worker thread: TCP in two forms (`single`: one operation
// in flight per connection; multishot recv into provided buffers for every other variant) and UDP.
#pragma once

#include <memory>

#include "scenarios/echo/io_uring/ring.h"

namespace echo::uring {

std::unique_ptr<RingLoop> MakeSingleLoop(int listen_fd, const Technique& t, const ReplyMode& reply);
std::unique_ptr<RingLoop> MakeMultishotLoop(int listen_fd, const Technique& t, const ReplyMode& reply);
// --work, for every TCP variant: requests assembled whole in the connection's buffer (from its
// multishot recv's provided buffers, or `single`: by recv into it), each one's CPU burned on the
// loop and its wait a timeout operation; the reply made in place and sent before the next request.
std::unique_ptr<RingLoop> MakeWorkLoop(int listen_fd, const Technique& t, const ReplyMode& reply);
std::unique_ptr<RingLoop> MakeUdpLoop(int socket_fd, const Technique& t, const ReplyMode& reply);

}  // namespace echo::uring
