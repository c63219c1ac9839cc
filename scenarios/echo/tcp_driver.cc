// The TCP driver of the load generator: one epoll loop over its connections, closed or open loop.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "scenarios/echo/load_driver.h"
#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

// One event loop driving the TCP connections conns[begin, end).
class TcpDriver final : public Driver {
 public:
  TcpDriver(const LoadConfig& config, const MessagePattern& pattern, std::vector<Connection>& conns, size_t begin,
            size_t end, Window& window)
      : Driver(config, pattern, conns, begin, end, window),
        scratch_(std::max<size_t>(kBufferSize, 65536)),
        message_(pattern.work().empty() ? 0 : pattern.size()),
        classes_(pattern.work().classes() > 1) {
    // Made now, not at the window's first reply: four histograms of 256 KiB, zeroed while the
    // load ran, held this driver 2-3 ms and sent the messages due meanwhile as one burst, which
    // queued at a server 80% busy (a first 100 ms with p99 5-8 ms, the rest 0.5 ms).
    if (classes_) {
      class_latency.resize(2);
      class_slowdown.resize(2);
    }
  }

  void Run() override {
    SetTimerSlack();
    OwnFileTable();
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    const auto start = Clock::now();
    const bool barrier = !window_.Gone(start);
    for (size_t i = begin_; i < end_; ++i) {
      epoll_event ev{EPOLLIN, {.u64 = i}};
      epoll_ctl(ep_, EPOLL_CTL_ADD, conns_[i].fd, &ev);
      if (barrier) Enqueue(i, start);  // the start barrier: one message each, answered before the load begins
    }
    epoll_event events[512];
    const auto enqueue = [this](size_t index, Clock::time_point due) {
      if (!conns_[index].broken) Enqueue(index, due);
    };
    while (true) {
      const auto now = Clock::now();
      if (window_.Over(now) || (config_.stop && *config_.stop)) break;
      Clock::time_point next = Release(now, enqueue);
      const int n = WaitForEvents(ep_, events, 512, now, next);
      for (int i = 0; i < n; ++i) {
        const size_t index = events[i].data.u64;
        if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) Receive(index);
        if ((events[i].events & EPOLLOUT) && !conns_[index].broken) Send(index);
        ReleaseDue(next, enqueue);
      }
    }
    close(ep_);
  }

 private:
  size_t InFlight(size_t index) const override { return conns_[index].due.size(); }

  void Enqueue(size_t index, Clock::time_point due) {
    conns_[index].due.push_back(due);
    Send(index);
  }

  // Writes queued messages in order until none is left or the socket is full.
  // A reply with a prefix is made per read (ReplyMode): one message in flight per connection, so
  // that each read is one message. Its latency still counts from when it was due.
  void Send(size_t index) {
    Connection& c = conns_[index];
    while (c.unwritten() > 0 && (!one_in_flight_ || c.send_seq == c.recv_seq)) {
      const char* data = pattern_.Request(index, c.send_seq, message_.data());
      const ssize_t n = send(c.fd, data + c.sent, pattern_.size() - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<size_t>(n);
        if (c.sent == pattern_.size()) {
          ++c.send_seq;
          c.sent = 0;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        WantWrite(index, true);
        return;
      }
      Break(index);
      return;
    }
    WantWrite(index, false);
  }

  // Reads what the connection has, a bounded number of times so that no server, however fast it
  // sends, keeps the loop from seeing the window close or the stop flag (epoll is level-triggered:
  // what is left is reported again). Reads what is owed, several replies at once where several
  // are, and one byte more: a read shorter than asked emptied the socket (no second read to hear
  // EAGAIN, one a message in a closed loop). Bytes beyond what is owed answer nothing, and are
  // counted as wrong.
  void Receive(size_t index) {
    constexpr int kReadsPerEvent = 16;
    Connection& c = conns_[index];
    for (int reads = 0; reads < kReadsPerEvent && !c.broken; ++reads) {
      const uint64_t owed = c.owed(pattern_);
      const size_t want = std::min<uint64_t>(owed + 1, scratch_.size());
      const ssize_t n = recv(c.fd, scratch_.data(), want, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) {
        Break(index);
        return;
      }
      const size_t replies = std::min<uint64_t>(owed, static_cast<size_t>(n));
      Take(c, index, replies);
      wrong_bytes += static_cast<size_t>(n) - replies;
      if (static_cast<size_t>(n) < want) return;
    }
  }

  // The `n` bytes read into scratch_, replies in order: each one's bytes checked, each whole one
  // completed.
  void Take(Connection& c, size_t index, size_t n) {
    for (size_t at = 0; at < n && !c.broken;) {
      const size_t take = std::min(n - at, pattern_.reply_size() - c.received);
      wrong_bytes += pattern_.Wrong(index, c.recv_seq, c.received, scratch_.data() + at, take, &unread_headers);
      c.received += take;
      at += take;
      if (c.received == pattern_.reply_size()) Complete(index);
    }
  }

  void Complete(size_t index) {
    Connection& c = conns_[index];
    const auto now = Clock::now();
    if (c.recv_seq == 0) window_.answered.fetch_add(1, std::memory_order_relaxed);
    if (const int64_t ns = Completed(now, c.due.front()); ns >= 0) {
      if (classes_) RecordClass(pattern_.work().Of(index, c.recv_seq), static_cast<uint64_t>(ns));
      ++c.completed;
    }
    c.due.pop_front();
    ++c.recv_seq;
    c.received = 0;
    if (config_.rate == 0 && going_) {
      Enqueue(index, now);  // closed loop: the next message goes now
    } else if (one_in_flight_ && c.unwritten() > 0) {
      Send(index);  // open loop: the next one waited for this reply
    }
  }

  void RecordClass(const Work& w, uint64_t ns) {
    class_latency[w.cls].Record(ns);
    if (const uint64_t own = w.cpu_ns + w.wait_ns; own > 0) class_slowdown[w.cls].Record(ns * 1000 / own);
  }

  void WantWrite(size_t index, bool want) {
    Connection& c = conns_[index];
    if (c.want_write == want) return;
    c.want_write = want;
    epoll_event ev{want ? uint32_t{EPOLLIN | EPOLLOUT} : uint32_t{EPOLLIN}, {.u64 = index}};
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void Break(size_t index) {
    Connection& c = conns_[index];
    if (c.broken) return;
    c.broken = true;
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
  }

  std::vector<char> scratch_;
  std::vector<char> message_;  // --work: the message being sent, its header written in
  const bool classes_;         // --work with two classes: latency recorded by class too
  const bool one_in_flight_ = pattern_.reply_mode().headroom() > 0;
  int ep_ = -1;
};

}  // namespace

std::unique_ptr<Driver> MakeTcpDriver(const LoadConfig& config, const MessagePattern& pattern,
                                      std::vector<Connection>& conns, size_t begin, size_t end, Window& window) {
  return std::make_unique<TcpDriver>(config, pattern, conns, begin, end, window);
}

}  // namespace echo
