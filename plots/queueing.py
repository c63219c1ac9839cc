"""Predicted latency and saturation of an echo server from its service demand at low load.

The server is a queue whose servers are its CPUs (c, from the entry's placement) and whose service
time is the CPU it spends per round trip (S, measured at the search's lowest offered rate). Service
times of an echo are nearly constant, so the model is M/D/c: Poisson arrivals (the load
generator's schedule is regular, but 100 connections' replies and the kernel's batching make the
server's arrivals bursty), deterministic service. For c = 1 its mean wait is exact (Pollaczek-
Khinchine with no service variance); for c > 1 it is taken as half of M/M/c's (Erlang C), the usual
approximation. The round trip is then the measured one at low load plus the wait. It saturates at
c / S round trips a second.

What it leaves out is the point: a model whose cost per message changes with load (a thread per
connection switching more, a pool's queue, wake-ups shared by more messages) parts from it, and the
report says where.
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
    """Mean wait in queue of M/D/c: exact for c = 1, half of M/M/c's otherwise."""
    return md1_wait(rate * service, service) if c == 1 else mmc_wait(rate, service, c) / 2


def predict(steps, cpus):
    """(service_us, saturation per second, [(rate, predicted mean us)]) from a capacity search's
    steps (the lowest offered rate gives the service demand and the base round trip), or None."""
    measured = sorted((s for s in steps if s.get("offered", 0) > 0 and "server_cpu_us_per_msg" in s
                       and "mean_us" in s), key=lambda s: s["offered"])
    if not measured or cpus < 1:
        return None
    low = measured[0]
    service = low["server_cpu_us_per_msg"] * 1e-6  # s
    base = low["mean_us"] - mdc_wait(low["msgs_per_second"], service, cpus) * 1e6
    curve = [(s["msgs_per_second"], base + mdc_wait(s["msgs_per_second"], service, cpus) * 1e6) for s in measured]
    return low["server_cpu_us_per_msg"], cpus / service, curve


def parting(steps, curve, tolerance=0.5):
    """The first step whose measured mean is off the prediction by more than `tolerance` (0.5:
    50%), as (rate, measured / predicted), or None where they agree throughout."""
    measured = sorted((s for s in steps if s.get("offered", 0) > 0 and "mean_us" in s), key=lambda s: s["offered"])
    for s, (_, predicted) in zip(measured, curve):
        ratio = s["mean_us"] / predicted if predicted > 0 and math.isfinite(predicted) else math.inf
        if abs(ratio - 1) > tolerance:
            return s["msgs_per_second"], ratio
    return None
