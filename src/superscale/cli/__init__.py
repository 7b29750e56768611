"""The `superscale` command line: parse, call the library, print. No modelling logic here.

Each verb lives in a module of this package and registers itself on `app`. User mistakes
(`SpecError`, `InfeasiblePlan`, bad options) print one line on stderr and exit with code 2,
never a traceback.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from typer.main import get_command

from superscale.cli import app as _app_module
from superscale.errors import InfeasiblePlan, SpecError
from superscale.spec import spec_error_from

app = _app_module.app

# Importing the verb modules registers their commands on `app`.
from superscale.cli import calibrate as _calibrate  # noqa: E402,F401
from superscale.cli import catalog as _catalog  # noqa: E402,F401
from superscale.cli import collective as _collective  # noqa: E402,F401
from superscale.cli import facility as _facility  # noqa: E402,F401
from superscale.cli import search as _search  # noqa: E402,F401
from superscale.cli import serving as _serving  # noqa: E402,F401
from superscale.cli import training as _training  # noqa: E402,F401
from superscale.cli import web as _web  # noqa: E402,F401


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (tests call this directly).

    Option errors (an unknown option, a value out of an option's range) and library
    errors from user input are caught here and printed as one line with exit code 2. A
    validation error that a verb did not translate is user input too; a recursion or
    memory error means an input too deep or too large for the bounds to have caught, and
    is reported as such rather than as a traceback.
    """
    command = _app_module.polish(get_command(app))
    args = list(sys.argv[1:] if argv is None else argv)
    previous = _terminate_cleanly()
    try:
        result = command.main(args=args, prog_name="superscale", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except typer.TyperException as exc:  # the parser's usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `superscale`: the help
            show = getattr(exc, "show", None)
            if show is not None:
                show()
            return 2
        return _fail(f"{_usage_text(exc)} (see: superscale {_verb(args)}--help)")
    except (KeyboardInterrupt, typer.Abort):
        _app_module.err_console.print("aborted")
        return 130
    except (SpecError, InfeasiblePlan) as exc:
        return _fail(str(exc))
    except ValidationError as exc:
        return _fail(str(spec_error_from(exc)))
    except RecursionError:
        return _fail("the input is nested too deeply to process")
    except MemoryError:
        return _fail("the input needs more memory than this machine has; ask for less work")
    except _Terminated:
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return result if isinstance(result, int) else 0


def _usage_text(exc: Exception) -> str:
    format_message = getattr(exc, "format_message", None)
    return str(format_message() if format_message is not None else exc)


def _verb(args: list[str]) -> str:
    first = next((a for a in args if not a.startswith("-")), None)
    return f"{first} " if first else ""


class _Terminated(BaseException):
    """Raised by the SIGTERM handler, so `with` blocks (worker pools, stores) unwind."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated()


def _terminate_cleanly() -> Any:
    """On SIGTERM, unwind as Ctrl-C does (workers stopped, store claims released, no
    leaked semaphores) instead of dying where we stand; only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _fail(message: str) -> int:
    line = " ".join(message.split())  # one line, whatever the message held
    _app_module.err_console.print(f"[bold red]error:[/] {escape(line)}")
    return 2


def entry() -> None:  # pragma: no cover - console-script shim
    raise SystemExit(main())
