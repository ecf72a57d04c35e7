"""Errors cross process boundaries: every DsgenError survives pickling with all its fields."""

from __future__ import annotations

import inspect
import pickle

import pytest

from dsgen import errors
from dsgen.errors import ConfigError, DsgenError, VideoError


def _all_errors() -> list[type[DsgenError]]:
    out: list[type[DsgenError]] = []
    todo: list[type[DsgenError]] = [DsgenError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def _example(cls: type[DsgenError]) -> DsgenError:
    """An instance built from the constructor's own parameter names."""
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self"]
    args = [f"<{p.name}>" for p in params if p.kind is p.POSITIONAL_OR_KEYWORD
            and p.default is p.empty]
    kwargs = {p.name: f"<{p.name}>" for p in params if p.kind is p.KEYWORD_ONLY}
    return cls(*args, **kwargs)


@pytest.mark.parametrize("cls", _all_errors(), ids=lambda c: c.__name__)
def test_every_error_round_trips_through_pickle(cls: type[DsgenError]) -> None:
    """pickle.loads(pickle.dumps(e)) gives the same class, message, hint and fields."""
    err = _example(cls)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err) and back.__dict__ == err.__dict__
    assert back.exit_code == err.exit_code


def test_the_video_error_a_worker_returns_keeps_its_stage_and_reason() -> None:
    """The issue's case: a probe's VideoError (path, stage, reason, hint) unpickles whole."""
    back = pickle.loads(pickle.dumps(VideoError("/x", "probe", "r", "h")))
    assert (back.path, back.stage, back.reason, back.hint) == ("/x", "probe", "r", "h")


def test_the_family_is_every_error_the_module_defines() -> None:
    """No error class of the module escapes the family (and so the pickling test)."""
    defined = {obj for _, obj in inspect.getmembers(errors, inspect.isclass)
               if issubclass(obj, Exception) and obj.__module__ == errors.__name__}
    assert defined <= set(_all_errors())
    assert ConfigError in defined
