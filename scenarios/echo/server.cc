#include "scenarios/echo/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <time.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace echo {
namespace {

int Bind(const std::string& host, uint16_t port, int type, uint16_t* bound_port) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    throw std::runtime_error("not a numeric address: " + host);
  }
  const int fd = socket(addr.ss_family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + strerror(errno));
  // TCP: a restarted server may take its port back from connections in TIME_WAIT. Not for UDP,
  // where SO_REUSEADDR lets two servers bind one port and split its datagrams.
  const int one = 1;
  if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || (type == SOCK_STREAM && listen(fd, SOMAXCONN) != 0)) {
    const int err = errno;
    close(fd);
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " + strerror(err));
  }
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *bound_port = ntohs(addr.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  return fd;
}

}  // namespace

int Listen(const std::string& host, uint16_t port, uint16_t* bound_port) {
  return Bind(host, port, SOCK_STREAM, bound_port);
}

int BindUdp(const std::string& host, uint16_t port, uint16_t* bound_port) {
  const int fd = Bind(host, port, SOCK_DGRAM, bound_port);
  const int buffer = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  return fd;
}

bool OutOfResources(int error) { return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM; }

int AcceptOrBackOff(int listen_fd, int flags) {
  const int fd = accept4(listen_fd, nullptr, nullptr, flags);
  if (fd < 0 && OutOfResources(errno)) {
    const int error = errno;
    const timespec pause{0, std::chrono::nanoseconds(kAcceptBackOff).count()};
    nanosleep(&pause, nullptr);
    errno = error;
  }
  return fd;
}

void SetNoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace echo
