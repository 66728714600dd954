"""A step-by-step adapter: the user calls the model, the solver gets its output.

For users who drive their own loop (as with diffusers' schedulers), without a hidden step counter:
every :class:`Stepper` owns its state, so several can run side by side (threads included).
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import torch

from .sample import SampleResult, sample

__all__ = ["Stepper"]

_DONE = object()


class _Abort(BaseException):
    """Raised inside the worker when the user closes a stepper early."""


class Stepper:
    r"""Run any solver one model call at a time: ask for the request, answer with the model's output.

    ::

        stepper = Stepper(process, x, prediction="eps", solver="unipc", nfe=10)
        while not stepper.done:
            x_in, t = stepper.request       # the state and the (batch,) times to evaluate the model at
            stepper.step(model(x_in, t))    # the model's output of kind `prediction`
        samples = stepper.result.samples

    Every option of :func:`sdeflow.sample` is accepted (``solver``, ``steps``/``nfe``, ``grid``,
    ``seed``, solver options...), and the result is exactly that of ``sample`` with the same model:
    the sampling loop runs in a private worker thread that pauses at each model call until
    :meth:`step` hands the output over. Multi-stage solvers simply ask for more calls. Nothing is
    shared between steppers; :meth:`close` (or the context manager) ends an unfinished one.
    """

    def __init__(self, process, x: torch.Tensor, *, prediction: str, **options: Any) -> None:
        self._requests: queue.Queue = queue.Queue(maxsize=1)
        self._answers: queue.Queue = queue.Queue(maxsize=1)
        self._result: SampleResult | None = None
        self._error: BaseException | None = None
        self._current: Any = None
        self.nfe = 0

        def model(x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            self._requests.put((x_in, t))
            answer = self._answers.get()
            if answer is _DONE:
                raise _Abort()
            return answer

        model.prediction = prediction  # type: ignore[attr-defined]

        def work() -> None:
            try:
                self._result = sample(model, process, x, **options)
            except _Abort:
                pass
            except BaseException as err:  # handed to the user's thread
                self._error = err
            finally:
                self._requests.put(_DONE)

        self._thread = threading.Thread(target=work, name="sdeflow-stepper", daemon=True)
        self._thread.start()
        self._advance()

    def _advance(self) -> None:
        self._current = self._requests.get()
        if self._current is _DONE:
            self._thread.join()
            if self._error is not None:
                err, self._error = self._error, None
                raise err

    @property
    def done(self) -> bool:
        """Whether sampling has finished (then :attr:`result` holds the :class:`SampleResult`)."""
        return self._current is _DONE

    @property
    def request(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_in, t)``: the model input ``(batch, *event)`` and times ``(batch,)`` of the next call."""
        if self.done:
            raise RuntimeError("sampling has finished: read stepper.result")
        return self._current

    def step(self, output: torch.Tensor) -> None:
        """Hand over the model's output for :attr:`request`; runs the solver up to its next model call."""
        if self.done:
            raise RuntimeError("sampling has finished: no model output is expected")
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"the model output must be a torch.Tensor; got {type(output).__name__}")
        self.nfe += 1
        self._answers.put(output)
        self._advance()

    @property
    def result(self) -> SampleResult:
        """The :class:`SampleResult` once :attr:`done`."""
        if not self.done or self._result is None:
            raise RuntimeError("sampling has not finished: keep answering stepper.request with stepper.step(...)")
        return self._result

    def close(self) -> None:
        """Stop an unfinished stepper (its worker thread ends)."""
        if not self.done:
            self._answers.put(_DONE)
            self._current = self._requests.get()
            self._thread.join()
            self._current = _DONE

    def __enter__(self) -> "Stepper":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
