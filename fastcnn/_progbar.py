"""Keras's progress bar, drawn the same way: ``125/125 ━━━━━━━━━━━━━━━━━━━━ 2s 10ms/step - accuracy:
0.9 - loss: 0.3``. On a terminal it redraws one line live (bold count, green done part); when
output goes to a file or pipe it writes only each bar's final line, without escape codes."""

import math
import sys
import time


def _format_time(seconds_per_unit, unit_name):
    if seconds_per_unit >= 1 or seconds_per_unit == 0:
        return f" {seconds_per_unit:.0f}s/{unit_name}"
    if seconds_per_unit >= 1e-3:
        return f" {seconds_per_unit * 1e3:.0f}ms/{unit_name}"
    return f" {seconds_per_unit * 1e6:.0f}us/{unit_name}"


def _format_value(value):
    return f" {value:.4f}" if abs(value) > 1e-3 else f" {value:.4e}"


class Progbar:
    """verbose=1: a live bar; verbose=2: one line when finished. Values (running means already)
    are shown as given, as Keras's ProgbarLogger shows them."""

    width = 20

    def __init__(self, target, verbose=1, unit_name="step", interval=0.05, stream=None):
        self.target = target
        self.verbose = verbose
        self.unit_name = unit_name
        self.interval = interval
        self.stream = stream if stream is not None else sys.stdout
        self.dynamic = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._values = {}
        self._seen = 0
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._previous_width = 0

    def _step_duration(self, current, now):
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            duration = (now - self._time_after_first_step) / (current - 1)
        else:
            duration = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return duration

    def update(self, current, values=None, finalize=None):
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or []:
            self._values[name] = float(value)
        self._seen = current
        now = time.time()
        per_step = self._step_duration(current, now)
        metrics = "".join(f" - {name}:{_format_value(value)}" for name, value in self._values.items())
        if self.verbose == 1:
            if not finalize and (not self.dynamic or now - self._last_update < self.interval):
                return
            if self.target is None:
                # A generator of unknown length: Keras writes the count alone, then the time so far.
                plain = (f"%7d/Unknown {now - self._start:.0f}s" % current) + _format_time(per_step, self.unit_name) + metrics
                if self.dynamic:
                    line = (f"\r%7d/Unknown \x1b[1m{now - self._start:.0f}s\x1b[0m" % current
                            + _format_time(per_step, self.unit_name) + metrics)
                    self.stream.write(line + " " * max(0, self._previous_width - len(plain)) + ("\n" if finalize else ""))
                    self._previous_width = len(plain)
                else:
                    self.stream.write(plain + "\n")
                self.stream.flush()
                self._last_update = now
                return
            digits = int(math.log10(self.target)) + 1 if self.target else 1
            count_text = f"%{digits}d/%d" % (current, self.target)
            done = int(self.width * current / self.target) if self.target else self.width
            if finalize:
                timing = f" {now - self._start:.0f}s"
            else:
                eta = per_step * (self.target - current)
                if eta > 3600:
                    timing = " %d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
                elif eta > 60:
                    timing = " %d:%02d" % (eta // 60, eta % 60)
                else:
                    timing = " %ds" % eta
            info = timing + _format_time(per_step, self.unit_name) + metrics
            plain = f"{count_text} {'━' * done}{'━' * (self.width - done)}{info}"
            if self.dynamic:
                line = (
                    f"\r\x1b[1m{count_text}\x1b[0m \x1b[32m{'━' * done}\x1b[0m\x1b[37m{'━' * (self.width - done)}\x1b[0m"
                    f" \x1b[1m{timing.strip()}\x1b[0m{_format_time(per_step, self.unit_name)}{metrics}"
                )
                padding = max(0, self._previous_width - len(plain))
                self.stream.write(line + " " * padding + ("\n" if finalize else ""))
                self._previous_width = len(plain)
            else:
                self.stream.write(plain + "\n")
            self.stream.flush()
        elif self.verbose == 2 and finalize:
            digits = int(math.log10(self.target)) + 1 if self.target else 1
            count_text = f"%{digits}d/%d" % (current, self.target) if self.target is not None else f"{current}/Unknown"
            self.stream.write(
                f"{count_text} - {now - self._start:.0f}s -{_format_time(per_step, self.unit_name)}{metrics}\n"
            )
            self.stream.flush()
        self._last_update = now
