#include "scenarios/echo/blocking_echo.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "scenarios/echo/protocol.h"
#include "scenarios/echo/work.h"

namespace echo {
namespace {

bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t sent = send(fd, data, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data += sent;
    n -= static_cast<size_t>(sent);
  }
  return true;
}

// Whole messages, each with its work done before its reply, made in place as without work. A
// header that is not one ends the connection: the peer does not speak --work's protocol.
void WorkEcho(int fd, const ReplyMode& reply) {
  char buf[kBufferSize];
  const size_t room = reply.headroom();
  char* const in = buf + room;
  size_t have = 0;
  while (true) {
    const ssize_t n = recv(fd, in + have, sizeof buf - room - have, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    have += static_cast<size_t>(n);
    WorkHeader h;
    while (true) {
      const WorkHeader::Read read = WorkHeader::From(in, have, sizeof buf - room, &h);
      if (read == WorkHeader::Read::kBad) return;
      if (read == WorkHeader::Read::kNeedMore || have < h.length) break;
      BurnCpu(h.cpu_ns);
      BlockFor(h.wait_ns);
      h.WriteReply(in);
      if (!SendAll(fd, buf, reply.Make(buf, h.length))) return;
      std::memmove(in, in + h.length, have - h.length);
      have -= h.length;
    }
  }
}

}  // namespace

void BlockingEcho(int fd, const ReplyMode& reply, bool work) {
  if (work) return WorkEcho(fd, reply);
  char buf[kBufferSize];
  const size_t room = reply.headroom();
  while (true) {
    const ssize_t n = recv(fd, buf + room, sizeof buf - room, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    if (!SendAll(fd, buf, reply.Make(buf, static_cast<size_t>(n)))) return;
  }
}

}  // namespace echo
