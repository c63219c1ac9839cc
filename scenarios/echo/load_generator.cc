#include "scenarios/echo/load_generator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <random>
#include <thread>

#include "scenarios/echo/load_driver.h"
#include "scenarios/echo/protocol.h"
#include "scenarios/echo/server.h"

namespace echo {
namespace {

sockaddr_storage ToSockaddr(const harness::Endpoint& e, socklen_t* len) {
  sockaddr_storage addr{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, e.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(e.port);
    *len = sizeof *v4;
  } else {
    inet_pton(AF_INET6, e.host.c_str(), &v6->sin6_addr);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(e.port);
    *len = sizeof *v6;
  }
  return addr;
}

// Opens every connection, at most max_in_flight handshakes at a time. Returns "" or the reason.
std::string ConnectAll(const LoadConfig& config, std::vector<Connection>& conns) {
  socklen_t len = 0;
  const sockaddr_storage addr = ToSockaddr(config.target, &len);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  const auto deadline = Clock::now() + config.connect_timeout;
  size_t next = 0, done = 0, in_flight = 0;
  std::string error;
  while (done < conns.size() && error.empty()) {
    while (next < conns.size() && in_flight < static_cast<size_t>(config.max_connects_in_flight)) {
      const int type = config.udp ? SOCK_DGRAM : SOCK_STREAM;
      const int fd = socket(addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        error = std::string("socket: ") + strerror(errno) + " after " + std::to_string(next) + " connections";
        break;
      }
      conns[next].fd = fd;
      if (!config.udp) SetNoDelay(fd);
      if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) {
        ++done;
      } else if (errno == EINPROGRESS) {
        epoll_event ev{EPOLLOUT, {.u64 = next}};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        ++in_flight;
      } else {
        error = "connect to " + config.target.ToString() + ": " + strerror(errno);
        break;
      }
      ++next;
    }
    if (!error.empty() || in_flight == 0) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 || (config.stop && *config.stop)) {
      error = "connect: only " + std::to_string(done) + " of " + std::to_string(conns.size()) +
              " connections established within " + harness::FormatDuration(config.connect_timeout);
      break;
    }
    epoll_event events[256];
    const int n = epoll_wait(ep, events, 256, static_cast<int>(std::min<long>(left, 100)));
    for (int i = 0; i < n && error.empty(); ++i) {
      Connection& c = conns[events[i].data.u64];
      int err = 0;
      socklen_t errlen = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &errlen);
      epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
      --in_flight;
      if (err != 0)
        error = "connect to " + config.target.ToString() + ": " + strerror(err);
      else
        ++done;
    }
  }
  close(ep);
  return error;
}

void CloseAll(std::vector<Connection>& conns) {
  for (auto& c : conns) {
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
  }
}

// Extends the warm-up until every connection has had a reply, so that the window measures the
// steady state and not a burst of connections still waiting to be accepted. Gives up when no new
// connection has been answered for kNoProgress (a pool that starves some connections by design),
// when nothing at all has been answered for kNoFirstAnswer (a server slow to start, such as
// 10,000 processes waking, gets that long), or at `deadline`.
template <typename Stopped>
void WaitUntilEveryConnectionAnswered(const Window& window, size_t connections, Clock::time_point deadline,
                                      Stopped stopped) {
  constexpr auto kNoProgress = std::chrono::milliseconds(500);
  constexpr auto kNoFirstAnswer = std::chrono::seconds(5);
  uint64_t seen = window.answered.load();
  auto last_progress = Clock::now();
  while (seen < connections && !stopped()) {
    const auto now = Clock::now();
    const auto patience = seen == 0 ? Clock::duration(kNoFirstAnswer) : Clock::duration(kNoProgress);
    if (now >= deadline || now - last_progress >= patience) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const uint64_t answered = window.answered.load();
    if (answered != seen) {
      seen = answered;
      last_progress = Clock::now();
    }
  }
}

// How late this machine ends a sleep of a thread (timer slack at its least, as the drivers run):
// the largest of the 95th percentiles of 40 sleeps each of 50 us, 200 us and 1 ms (taken in turn) on
// an epoll with nothing to report (60 ms or so), within [2 us, 1 ms]. A send due sooner than this is
// polled for. Sleeps of every length the drivers take are measured because a longer one lets the
// CPU idle deeper: on this VM a 50 us sleep ended 56 us late (p95), a 1 ms one 170 us, and a slack
// taken from 50 us sleeps left the sends after longer ones late (at 10,000 msgs/s lateness p99
// 101-1,220 us, against 33-60 us with this slack in the quiet repetitions of one sitting).
std::chrono::nanoseconds WakeLatency() {
  constexpr int kSleeps = 40;
  constexpr std::array<long, 3> kSleepNs = {50'000, 200'000, 1'000'000};
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  const unsigned long slack = static_cast<unsigned long>(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0));
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  std::array<std::vector<int64_t>, kSleepNs.size()> late;
  for (int k = 0; k < kSleeps; ++k) {
    for (size_t length = 0; length < kSleepNs.size(); ++length) {
      const auto before = Clock::now();
      const timespec timeout{0, kSleepNs[length]};
      epoll_event event;
      epoll_pwait2(ep, &event, 1, &timeout, nullptr);
      const auto slept = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - before).count();
      late[length].push_back(slept - kSleepNs[length]);
    }
  }
  prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0);
  close(ep);
  int64_t worst = 0;
  for (auto& l : late) {
    std::sort(l.begin(), l.end());
    worst = std::max(worst, l[l.size() * 95 / 100]);
  }
  return std::chrono::nanoseconds(std::clamp<int64_t>(worst, 2'000, 1'000'000));
}

}  // namespace

std::string ProbeTcp(const harness::Endpoint& target, harness::Duration timeout) {
  socklen_t len = 0;
  const sockaddr_storage addr = ToSockaddr(target, &len);
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + strerror(errno);
  int err = 0;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
      if (poll(&p, 1, static_cast<int>(ms)) == 1) {
        socklen_t errlen = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen);
      } else {
        err = ETIMEDOUT;
      }
    }
  }
  close(fd);
  return err == 0 ? "" : "cannot connect to " + target.ToString() + ": " + strerror(err);
}

std::string ProbeUdp(const harness::Endpoint& target, harness::Duration timeout) {
  socklen_t len = 0;
  const sockaddr_storage addr = ToSockaddr(target, &len);
  const int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + strerror(errno);
  std::string why;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) why = strerror(errno);
  const char probe[] = "0000000000000000probe";
  const auto deadline = Clock::now() + timeout;
  while (why.empty()) {
    if (send(fd, probe, sizeof probe - 1, 0) < 0 && errno != EINTR) {
      why = strerror(errno);
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      why = "no reply to a datagram within " + harness::FormatDuration(timeout);
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::min<long>(left, 200))) == 1) {
      char reply[64];
      if (recv(fd, reply, sizeof reply, 0) >= 0) break;  // answered
      if (errno != EINTR) why = strerror(errno);         // ECONNREFUSED: the port is closed
    }
  }
  close(fd);
  return why.empty() ? "" : "cannot reach a UDP server at " + target.ToString() + ": " + why;
}

namespace {

// What the drivers and connections counted, into `result`.
void AddCounts(const std::vector<std::unique_ptr<Driver>>& drivers, const std::vector<Connection>& conns,
               LoadResult& result) {
  for (const auto& d : drivers) {
    result.latency.Merge(d->latency);
    result.intervals.Merge(d->intervals);
    result.send_lateness.Merge(d->send_lateness);
    result.gaps.Merge(d->gaps);
    result.due_gaps.Merge(d->due_gaps);
    result.scheduled += d->scheduled;
    result.poll_seconds += static_cast<double>(d->poll_ns) / 1e9;
    result.class_latency.resize(d->class_latency.size());
    result.class_slowdown.resize(d->class_slowdown.size());
    for (size_t k = 0; k < d->class_latency.size(); ++k) {
      result.class_latency[k].Merge(d->class_latency[k]);
      result.class_slowdown[k].Merge(d->class_slowdown[k]);
    }
    result.wrong_bytes += d->wrong_bytes;
    result.unread_headers += d->unread_headers;
    result.lost += d->lost;
    result.strays += d->strays;
  }
  // The intervals the window spans (room was made for the whole window, and one more).
  const auto spanned = static_cast<size_t>(
      std::ceil(result.window_seconds * 1e9 / static_cast<double>(result.intervals.interval_ns) - 1e-9));
  if (result.intervals.latency.size() > spanned) result.intervals.latency.resize(spanned);
  for (const auto& c : conns) {
    result.per_connection.push_back(c.completed);
    result.messages += c.completed;
    result.broken_connections += c.broken;
  }
}

// Lets the load begin: at once without a barrier (go was set before the drivers started), else
// once every connection has been answered or answers stopped coming; the time taken into `result`.
template <typename Stopped>
Clock::time_point Go(const LoadConfig& config, Window& window, size_t connections, Clock::time_point started,
                     Stopped stopped, LoadResult& result) {
  if (!config.barrier) return started;
  WaitUntilEveryConnectionAnswered(window, connections, started + config.max_extra_warmup, stopped);
  result.barrier_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  result.unanswered_at_barrier = connections - std::min<uint64_t>(connections, window.answered.load());
  if (config.on_load_start) config.on_load_start();
  const auto go = Clock::now();
  window.go_ns = Window::Ns(go);
  return go;
}

// Waits out the warm-up from `go` (without a barrier, also until every connection has been
// answered), then opens the window, holds it for config.duration (or until stopped) and closes it;
// the times go into `result`. The load runs on through the readings after the window
// (on_window_end), so that what the readings span beyond it carries the same load.
template <typename Stopped>
void HoldWindow(const LoadConfig& config, Window& window, size_t connections, Clock::time_point go, Stopped stopped,
                LoadResult& result) {
  std::this_thread::sleep_until(go + config.warmup);
  if (!config.barrier) {
    WaitUntilEveryConnectionAnswered(window, connections, go + config.warmup + config.max_extra_warmup, stopped);
  }
  if (config.on_window_start) config.on_window_start();
  const auto window_start = Clock::now();
  const auto window_end = window_start + config.duration;
  window.start_ns = Window::Ns(window_start);
  window.end_ns = Window::Ns(window_end);
  while (Clock::now() < window_end && !stopped()) {
    std::this_thread::sleep_until(std::min(window_end, Clock::now() + std::chrono::milliseconds(50)));
  }
  const auto measured_to = Clock::now();
  window.end_ns = std::min(window.end_ns.load(), Window::Ns(measured_to));  // an interrupted run ends now
  const int64_t quiet_from = std::max(window.last_reply_ns.load(), window.start_ns.load());
  if (config.on_window_end) config.on_window_end();
  window.stop_ns = Window::Ns(Clock::now());
  result.warmup_seconds = std::chrono::duration<double>(window_start - go).count();
  // Round trips are counted in [window_start, window_end); an interrupted run counts until the stop.
  result.window_seconds = std::chrono::duration<double>(std::min(measured_to, window_end) - window_start).count();
  const int64_t window_over = Window::Ns(std::min(measured_to, window_end));
  result.silent_seconds = std::max<double>(0, static_cast<double>(window_over - quiet_from) / 1e9);
}

}  // namespace

LoadResult RunLoad(const LoadConfig& given) {
  LoadResult result;
  LoadConfig config = given;
  std::vector<Connection> conns(static_cast<size_t>(config.connections));
  if (std::string error = ConnectAll(config, conns); !error.empty()) {
    CloseAll(conns);
    result.error = error;
    return result;
  }
  std::random_device random;
  result.salt = (uint64_t{random()} << 32) | random();
  if (config.seed == 0) config.seed = (uint64_t{random()} << 32) | random() | 1;
  result.seed = config.seed;
  const MessagePattern pattern(config.size, result.salt, config.reply, config.work);
  Window window;
  if (config.rate > 0) window.wake_slack = WakeLatency();  // a closed loop never waits for a due time
  result.wake_latency_us = static_cast<double>(window.wake_slack.count()) / 1e3;
  const int threads = std::clamp(config.threads, 1, config.connections);
  std::vector<std::unique_ptr<Driver>> drivers;
  std::vector<std::thread> loops;
  // Whatever leaves this function, the drivers see their window over and are joined: an exception
  // from a callback becomes a failed repetition, never std::terminate from a joinable thread.
  struct JoinAll {
    Window& window;
    std::vector<std::thread>& loops;
    std::vector<Connection>& conns;
    ~JoinAll() {
      const int64_t now = Window::Ns(Clock::now());
      window.end_ns = std::min(window.end_ns.load(), now);
      window.stop_ns = std::min(window.stop_ns.load(), now);
      for (auto& l : loops) {
        if (l.joinable()) l.join();
      }
      CloseAll(conns);
    }
  } join_all{window, loops, conns};
  if (!config.barrier && config.on_load_start) config.on_load_start();
  const auto started = Clock::now();
  if (!config.barrier) window.go_ns = Window::Ns(started);
  for (int t = 0; t < threads; ++t) {
    const size_t begin = conns.size() * t / threads, end = conns.size() * (t + 1) / threads;
    drivers.push_back(config.udp ? MakeUdpDriver(config, pattern, conns, begin, end, window)
                                 : MakeTcpDriver(config, pattern, conns, begin, end, window));
    loops.emplace_back([d = drivers.back().get()] { d->Run(); });
  }
  const auto stopped = [&] { return config.stop && *config.stop; };
  const Clock::time_point go = Go(config, window, conns.size(), started, stopped, result);
  HoldWindow(config, window, conns.size(), go, stopped, result);
  for (auto& l : loops) l.join();
  CloseAll(conns);
  result.interrupted = stopped();
  AddCounts(drivers, conns, result);
  result.ok = true;
  return result;
}

}  // namespace echo
