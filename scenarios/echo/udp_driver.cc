// The UDP driver of the load generator. Datagrams may be lost, duplicated or reordered, so every
// message carries its sequence number and replies are matched by it, not by arrival order.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "scenarios/echo/load_driver.h"

namespace echo {
namespace {

// The run's nonce and the message's sequence number, 8 + 8 upper-case hex digits: upper-casing
// leaves them as they are. The nonce tells this run's replies from late datagrams of an earlier run
// that reach a reused port.
constexpr size_t kHeader = 16;

struct Pending {
  Clock::time_point due;
  bool answered = false;
};

struct UdpState {
  uint64_t next_seq = 0;        // the next message to send
  uint64_t base_seq = 0;        // the message pending.front() belongs to
  std::deque<Pending> pending;  // messages sent and not yet answered or expired, oldest first
};

class UdpDriver final : public Driver {
 public:
  UdpDriver(const LoadConfig& config, const MessagePattern& pattern, std::vector<Connection>& conns, size_t begin,
            size_t end, Window& window)
      : Driver(config, pattern, conns, begin, end, window),
        state_(end - begin),
        out_(pattern.size()),
        in_(pattern.reply_size() + 1) {}

  void Run() override {
    SetTimerSlack();
    OwnFileTable();
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    const auto start = Clock::now();
    const bool barrier = !window_.Gone(start);
    for (size_t i = begin_; i < end_; ++i) {
      epoll_event ev{EPOLLIN, {.u64 = i}};
      epoll_ctl(ep, EPOLL_CTL_ADD, conns_[i].fd, &ev);
      if (barrier) Send(i, start);  // the start barrier: one message each, answered before the load begins
    }
    epoll_event events[512];
    auto next_expiry = start;
    const auto send = [this](size_t index, Clock::time_point due) { Send(index, due); };
    while (true) {
      const auto now = Clock::now();
      if (window_.Over(now) || (config_.stop && *config_.stop)) break;
      if (now >= next_expiry) {
        Expire(now);
        next_expiry = now + std::chrono::milliseconds(5);
      }
      Clock::time_point next = Release(now, send);
      const int n = WaitForEvents(ep, events, 512, now, std::min(next, next_expiry));
      for (int i = 0; i < n; ++i) {
        Receive(events[i].data.u64);
        ReleaseDue(next, send);
      }
    }
    close(ep);
  }

 private:
  UdpState& State(size_t index) { return state_[index - begin_]; }
  size_t InFlight(size_t index) const override { return state_[index - begin_].pending.size(); }

  // Sends the connection's next message. A datagram the kernel refuses (buffer full) is as lost
  // as one dropped on the way: it will expire unanswered.
  void Send(size_t index, Clock::time_point due) {
    UdpState& s = State(index);
    const uint64_t seq = s.next_seq++;
    s.pending.push_back({due});
    char header[kHeader + 1];
    std::snprintf(header, sizeof header, "%08X%08X", nonce_, static_cast<unsigned>(seq & 0xffffffffu));
    std::memcpy(out_.data(), header, kHeader);
    std::memcpy(out_.data() + kHeader, pattern_.Request(index, seq) + kHeader, pattern_.size() - kHeader);
    while (send(conns_[index].fd, out_.data(), out_.size(), 0) < 0 && errno == EINTR) {
    }
  }

  void Receive(size_t index) {
    while (true) {
      const ssize_t n = recv(conns_[index].fd, in_.data(), in_.size(), 0);
      if (n < 0) return;  // EAGAIN, or an ICMP error reported on the socket: nothing to read
      Answer(index, static_cast<size_t>(n));
    }
  }

  // A reply is the reply rule's prefix (if any), then our header, then the rest of the message.
  void Answer(size_t index, size_t n) {
    UdpState& s = State(index);
    const size_t at = pattern_.reply_mode().headroom();  // where the header is
    unsigned seq32 = 0;
    if (n < at || !Ours(in_.data() + at, n - at, &seq32)) {
      if (at > 0 && Ours(in_.data(), n, &seq32)) {  // our header where the prefix should be: no prefix
        wrong_bytes += std::max(n, pattern_.reply_size());
        return;
      }
      ++strays;  // not from this run: a message of ours it displaced times out as lost
      return;
    }
    // The full sequence number: the pending one whose low 32 bits match. One behind the oldest
    // pending message is late (it expired, and wraps to far ahead); one just ahead of the newest
    // sent answers a message this socket never sent: another socket's, or made up.
    const uint32_t ahead = static_cast<uint32_t>(seq32 - static_cast<uint32_t>(s.base_seq));
    const uint64_t seq = s.base_seq + ahead;
    if (n != pattern_.reply_size() || (seq >= s.next_seq && ahead < (1u << 31))) {
      wrong_bytes += std::max(n, pattern_.reply_size());  // our header, but cut short, padded, or never sent
      return;
    }
    if (seq >= s.next_seq || s.pending[seq - s.base_seq].answered) return;  // late (expired) or twice
    Pending& p = s.pending[seq - s.base_seq];
    p.answered = true;
    wrong_bytes += pattern_.Wrong(index, seq, 0, in_.data(), at) +
                   pattern_.Wrong(index, seq, at + kHeader, in_.data() + at + kHeader, n - at - kHeader);
    const auto now = Clock::now();
    if (!answered_once_[index - begin_]) {
      answered_once_[index - begin_] = true;
      window_.answered.fetch_add(1, std::memory_order_relaxed);
    }
    if (Completed(now, p.due) >= 0) ++conns_[index].completed;
    Trim(s);
    if (config_.rate == 0 && going_) Send(index, now);  // closed loop: the next message goes now
  }

  // Whether the `n` bytes at `data` start with this run's header; its low 32 bits of sequence in *seq32.
  bool Ours(const char* data, size_t n, unsigned* seq32) const {
    char header[kHeader + 1] = {};
    std::memcpy(header, data, std::min(n, kHeader));
    unsigned nonce = 0;
    return n >= kHeader && std::sscanf(header, "%8X%8X", &nonce, seq32) == 2 && nonce == nonce_;
  }

  // Drops answered messages from the front.
  static void Trim(UdpState& s) {
    while (!s.pending.empty() && s.pending.front().answered) {
      s.pending.pop_front();
      ++s.base_seq;
    }
  }

  // Messages unanswered after loss_timeout are lost; a closed loop moves on to the next.
  void Expire(Clock::time_point now) {
    for (size_t i = begin_; i < end_; ++i) {
      UdpState& s = State(i);
      bool expired = false;
      while (!s.pending.empty() &&
             (s.pending.front().answered || s.pending.front().due + config_.loss_timeout <= now)) {
        if (!s.pending.front().answered) {
          expired = true;
          if (window_.Inside(s.pending.front().due)) ++lost;
        }
        s.pending.pop_front();
        ++s.base_seq;
      }
      // A closed loop keeps its depth: what expired is replaced.
      while (expired && config_.rate == 0 && going_ && s.pending.size() < static_cast<size_t>(config_.depth)) {
        Send(i, now);
      }
    }
  }

  std::vector<UdpState> state_;
  std::vector<bool> answered_once_ = std::vector<bool>(end_ - begin_, false);
  std::vector<char> out_, in_;
  const unsigned nonce_ = static_cast<unsigned>(pattern_.salt());  // one per load, shared by its drivers
};

}  // namespace

std::unique_ptr<Driver> MakeUdpDriver(const LoadConfig& config, const MessagePattern& pattern,
                                      std::vector<Connection>& conns, size_t begin, size_t end, Window& window) {
  return std::make_unique<UdpDriver>(config, pattern, conns, begin, end, window);
}

}  // namespace echo
