"""Predicted latency and saturation of an echo server, by the way its model schedules requests.

The server is a queue whose service time is the CPU it spends per round trip (S, measured at each
step of a capacity search, and between steps taken on the line between their two; beyond the last
step, the last), with the variance of the request's own work (`--work`: fixed, exponential or
bimodal CPU) on top of a constant overhead. S is taken at each rate because it falls as load rises
(an event loop's wake-up, and a thread's, is shared by more messages: 50-60 us a message at 4,000
msgs/s, 28 us at 26,000 on this VM); a queue with the lowest step's S saturates at two thirds of
the rates the loops served. Arrivals are taken as Poisson
(the load generator's schedule is regular, but 100 connections' replies and the kernel's batching
make the server's arrivals bursty). The round trip at low load is measured, and what of it is not the
server's service (the network, the kernel, the load generator, and waking an idle CPU) is taken to
be paid by the arrivals that find the server idle, a share that falls as the load rises (Prediction);
the prediction adds the request's own service at each rate, S there, and the queueing delay each
discipline has at that rate:

- An event loop (epoll, asio, asio_coro, fibers, io_uring) runs each request to completion in
  arrival order on its one thread: M/G/1 first-come-first-served, whose mean wait is
  Pollaczek-Khinchine's, lambda E[S^2] / (2 (1 - rho)): service-time variance costs every request.
  Its `blocking` variant holds the thread through the request's wait too (service S + wait).
- A thread or a process per connection is time-sliced by the kernel: processor sharing, whose
  mean round trip S / (1 - rho) does not depend on the variance (on c CPUs, M/M/c's).
- A pool (thread_pool, process_pool, asio_offload) holds a worker through the CPU and the wait of a
  request: M/G/c with c workers and service S + wait (Allen-Cunneen: M/M/c's wait x (1 + SCV) / 2),
  saturating at the lower of c / (S + wait), Little's law, and the CPUs' cpus / S. (thread_pool and
  process_pool hold a connection, not a request: what they predict is for the connections served.)
- A model not named here (a scenario's own, a third-party server): M/D/c on its CPUs.

What it leaves out is the point: a model that does not schedule as its discipline says parts from
it, and the report says where.
"""
import math


def md1_wait(rho, service):
    """Mean wait in queue of M/D/1 at utilisation rho (< 1), in the unit of `service`."""
    return math.inf if rho >= 1 else rho * service / (2 * (1 - rho))


def mm1_wait(rho, service):
    """Mean wait in queue of M/M/1."""
    return math.inf if rho >= 1 else rho * service / (1 - rho)


def erlang_c(c, a):
    """Probability that an arrival waits in M/M/c with offered load a = lambda x S (< c)."""
    if a >= c:
        return 1.0
    top = a ** c / math.factorial(c) * c / (c - a)
    return top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)


def mmc_wait(rate, service, c):
    """Mean wait in queue of M/M/c at `rate` arrivals per unit time, `service` per arrival."""
    a = rate * service
    return math.inf if a >= c else erlang_c(c, a) * service / (c - a)


def mdc_wait(rate, service, c):
    """Mean wait in queue of M/D/c: exact for c = 1, half of M/M/c's otherwise (M/G/c with no variance)."""
    return mgc_wait(rate, service, 0.0, c)


EVENT_LOOPS = frozenset({"epoll", "asio", "asio_coro", "fibers", "io_uring"})
SHARED = frozenset({"threads", "processes"})
POOLS = frozenset({"thread_pool", "process_pool", "asio_offload"})
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(text):
    """'50us' -> 5e-05 (the harness's duration syntax: a number and ns, us, ms or s)."""
    for unit in ("ns", "us", "ms", "s"):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * _UNITS[unit]
    raise ValueError(f"not a duration: {text!r}")


def work_moments(spec):
    """(mean CPU, variance of the CPU, mean wait, variance of the wait), in seconds, of a --work spec
    such as 'cpu:exp:20us+wait:fixed:1ms' (empty: no work)."""
    cpu_mean = cpu_var = wait_mean = wait_var = 0.0
    for part in filter(None, (spec or "").split("+")):
        kind, dist, *values = part.split(":")
        if dist == "fixed":
            mean, var = seconds(values[0]), 0.0
        elif dist == "exp":
            mean = seconds(values[0])
            var = mean * mean
        elif dist == "bimodal":
            p, a, b = float(values[0]), seconds(values[1]), seconds(values[2])
            mean = p * a + (1 - p) * b
            var = p * a * a + (1 - p) * b * b - mean * mean
        else:
            raise ValueError(f"not a distribution: {part!r}")
        if kind == "cpu":
            cpu_mean, cpu_var = cpu_mean + mean, cpu_var + var
        else:
            wait_mean, wait_var = wait_mean + mean, wait_var + var
    return cpu_mean, cpu_var, wait_mean, wait_var


def mg1_fcfs_wait(rate, mean, second_moment):
    """Mean wait in queue of M/G/1 first-come-first-served (Pollaczek-Khinchine)."""
    rho = rate * mean
    return math.inf if rho >= 1 else rate * second_moment / (2 * (1 - rho))


def mgc_wait(rate, mean, scv, c):
    """Mean wait in queue of M/G/c (Allen-Cunneen: M/M/c's x (1 + squared coefficient of variation) / 2);
    exact for c = 1 (Pollaczek-Khinchine)."""
    if c == 1:
        return mg1_fcfs_wait(rate, mean, mean * mean * (1 + scv))
    return mmc_wait(rate, mean, c) * (1 + scv) / 2


def ps_delay(rate, mean, c):
    """What processor sharing on c CPUs adds to a request's own service time, on average: S rho / (1 - rho)
    for c = 1, whatever the service times' variance; M/M/c's wait for c > 1."""
    return mmc_wait(rate, mean, c)


class Discipline:
    """How one model schedules requests: its name, the queueing delay at a rate, and its saturation."""

    def __init__(self, model, variant, workers, cpus, service, work):
        _, cpu_var, wait, wait_var = work_moments(work)
        if model in SHARED:
            self.name = "M/G/1-PS" if cpus == 1 else f"M/M/{cpus}-PS"
            self.saturation = cpus / service
            self._delay = lambda rate: ps_delay(rate, service, cpus)
        elif model in POOLS:
            held = service + wait  # a worker is held through the request's wait
            c = max(1, workers)
            self.name = f"M/G/{c} FCFS (pool)"
            self.saturation = min(c / held, cpus / service)
            scv = (cpu_var + wait_var) / (held * held)
            self._delay = lambda rate: math.inf if rate >= self.saturation else mgc_wait(rate, held, scv, c)
        elif model in EVENT_LOOPS:
            blocking = variant == "blocking"  # the loop's thread is held through the wait too
            held = service + (wait if blocking else 0.0)
            scv = (cpu_var + (wait_var if blocking else 0.0)) / (held * held)
            c = max(1, min(workers, cpus))
            self.name = f"M/G/{c} FCFS (run to completion)"
            self.saturation = c / held
            self._delay = lambda rate: mgc_wait(rate, held, scv, c)
        else:
            self.name = f"M/D/{cpus}"
            self.saturation = cpus / service
            self._delay = lambda rate: mdc_wait(rate, service, cpus)

    def delay(self, rate):
        """Mean time a request waits for the server at `rate` round trips a second, in seconds."""
        return self._delay(rate)


class Prediction:
    """A capacity search's prediction: the service demand at the lowest step (us), the saturation
    (/s: the lowest rate the discipline, with the service demand measured there, cannot serve), the
    discipline at the lowest step, and the mean round trip (us) at any rate: the request's own
    service and the discipline's delay, both with the service demand measured at that rate, plus a
    base, what is outside them.

    The base is measured at the lowest step (its round trip less the discipline's delay and less the
    service there) and scaled by the share of arrivals that find the server idle, 1 - rate /
    saturation (Poisson arrivals see the time average: PASTA), against that share at the lowest
    step. At the lowest step a VM's vCPUs halt between messages, and each request wakes one (a halt
    exit, an inter-processor interrupt) before any of it runs; a request that finds the server busy
    pays none of that. Kept constant, the base put the loops' predictions 25-45% high at 7,000-21,000
    msgs/s on this VM (its residual fell from 98 us at 3,500 msgs/s to 34 us at 20,000). The own
    service matters too: an event loop's fell from 53-59 us a message at 4,000 msgs/s to 28-31 us at
    25,000 on this VM, and a base that kept the lowest step's put every prediction there 23-30 us
    high."""

    def __init__(self, measured, discipline_of):
        self._points = sorted((s["msgs_per_second"], s["server_cpu_us_per_msg"] * 1e-6) for s in measured)
        self._discipline_of = discipline_of
        low = measured[0]
        self.service_us = low["server_cpu_us_per_msg"]
        self.discipline = discipline_of(self.service_at(low["msgs_per_second"]))
        self._base = low["mean_us"] - self.discipline.delay(low["msgs_per_second"]) * 1e6 - self.service_us
        self._idle_at_base = self.idle_share(low["msgs_per_second"])
        self.saturation = self._saturation()

    def service_at(self, rate):
        """The service demand (s) at `rate`: measured, or on the line between the two steps around it."""
        points = self._points
        if rate <= points[0][0]:
            return points[0][1]
        for (r0, s0), (r1, s1) in zip(points, points[1:]):
            if rate <= r1:
                return s0 + (s1 - s0) * (rate - r0) / (r1 - r0) if r1 > r0 else s1
        return points[-1][1]

    def _saturation(self):
        # The saturation with the demand of the last step bounds it; below that, the first rate
        # (in steps of a thousandth) whose own demand saturates the discipline there.
        bound = self._discipline_of(self._points[-1][1]).saturation
        top = max(bound, self._points[-1][0])
        for k in range(1, 1001):
            rate = top * k / 1000
            if rate >= self._discipline_of(self.service_at(rate)).saturation:
                return rate
        return top

    def idle_share(self, rate):
        """The share of arrivals at `rate` that find the server idle: 1 - rate / saturation, with
        the service demand measured at that rate; 0 at or past saturation."""
        return max(0.0, 1 - rate / self._discipline_of(self.service_at(rate)).saturation)

    def base_us(self, rate):
        """What of the round trip at `rate` is outside the server's service and queue (us): the
        lowest step's, in proportion to the arrivals that find the server idle (constant where the
        lowest step found it busy throughout)."""
        if self._idle_at_base <= 0:
            return self._base
        return self._base * self.idle_share(rate) / self._idle_at_base

    def mean_us(self, rate):
        service = self.service_at(rate)
        return self.base_us(rate) + (service + self._discipline_of(service).delay(rate)) * 1e6


def predict(steps, cpus, model="", params=None):
    """The Prediction for a capacity search's steps of `model` (params: its workers, variant and
    work) on a server with `cpus` CPUs, and the predicted mean at each measured step as
    [(rate, us)]; None without a measured step."""
    measured = sorted((s for s in steps if s.get("offered", 0) > 0 and "server_cpu_us_per_msg" in s
                       and "mean_us" in s), key=lambda s: s["offered"])
    if not measured or cpus < 1:
        return None
    params = params or {}

    def discipline_of(service):
        return Discipline(model, params.get("variant", ""), int(params.get("workers", 1)), cpus, service,
                          params.get("work", ""))

    prediction = Prediction(measured, discipline_of)
    return prediction, [(s["msgs_per_second"], prediction.mean_us(s["msgs_per_second"])) for s in measured]


def parting(steps, curve, tolerance=0.5):
    """The first step whose measured mean is off the prediction by more than `tolerance` (0.5:
    50%), as (rate, measured / predicted), or None where they agree throughout."""
    measured = sorted((s for s in steps if s.get("offered", 0) > 0 and "mean_us" in s), key=lambda s: s["offered"])
    for s, (_, predicted) in zip(measured, curve):
        ratio = s["mean_us"] / predicted if predicted > 0 and math.isfinite(predicted) else math.inf
        if abs(ratio - 1) > tolerance:
            return s["msgs_per_second"], ratio
    return None
