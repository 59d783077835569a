"""Opening an Optuna storage for ``lgagent sweep --storage URL`` and ``lgagent report --storage URL``.

The URL is SQLAlchemy's (Optuna's relational storage): ``sqlite:///path/study.db`` (the
default, in the sweep directory) or a server that several machines share, e.g.
``postgresql+psycopg://user:password@host:5432/dbname`` (the driver is the ``sweep-db``
extra: ``pip install "lgagent[sweep-db]"``). Whatever goes wrong while opening it (a URL
that does not parse, a dialect or driver that is not installed, a server that does not
answer, a refused login, a missing database) is one line (:class:`~train.errors.BadInput`,
exit 2), with the password hidden.

Several workers starting at once on a new database race to create Optuna's tables (on
PostgreSQL the loser gets a duplicate-type error); opening retries a few times, so only
one of them creates the tables and the others load them.
"""

from __future__ import annotations

import random
import time
import warnings

from train.errors import BadInput

# seconds a PostgreSQL/MySQL connection attempt may take (a host that drops packets would
# otherwise hang the sweep for minutes before the one-line error)
CONNECT_TIMEOUT = 10
TABLE_RACE_TRIES = 6


def shown(url: str) -> str:
    """The URL as an error message shows it: the password replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL that does not parse is shown as given
        return url


def _engine_kwargs(url) -> dict:
    backend = url.get_backend_name()
    if backend in ("postgresql", "mysql") and "connect_timeout" not in url.query:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    return {}


def _stale_callback_arg() -> str:
    """RDBStorage's keyword for the callback of a trial whose heartbeat stopped: optuna 3.x
    calls it ``failed_trial_callback``, newer releases ``heartbeat_stale_trial_callback``."""
    import inspect

    import optuna

    params = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    return ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params
            else "failed_trial_callback")


def stale_callback(storage):
    """The callback :func:`rdb_storage` gave ``storage`` for stale trials (either name)."""
    getter = (getattr(storage, "get_heartbeat_stale_trial_callback", None)
              or storage.get_failed_trial_callback)
    return getter()


def rdb_storage(url: str, *, heartbeat: int | None = None, grace: int | None = None,
                on_stale=None):
    """An :class:`optuna.storages.RDBStorage` on ``url``; BadInput (one line) if it cannot open.

    ``heartbeat``/``grace``/``on_stale``: Optuna's heartbeat (seconds between a running
    trial's heartbeats; a RUNNING trial without one for ``grace`` seconds is stale, and
    ``optuna.storages.fail_stale_trials`` fails it and calls ``on_stale(study, trial)``).
    """
    import optuna
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    from train.training.prefetch import one_line

    where = f"--storage {shown(url)}"
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise BadInput(f"{where}: not a database URL (e.g. postgresql+psycopg://user:password@"
                       "host:5432/dbname, or sqlite:///path/study.db)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for attempt in range(TABLE_RACE_TRIES):
        try:
            with warnings.catch_warnings():  # the heartbeat is an "experimental" argument
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=_engine_kwargs(parsed), heartbeat_interval=heartbeat,
                    grace_period=grace, **{_stale_callback_arg(): on_stale})
        except sqlalchemy.exc.NoSuchModuleError:
            raise BadInput(f"{where}: SQLAlchemy has no database dialect "
                           f"{parsed.drivername!r}") from None
        except ImportError as e:
            cause = e.__cause__ or e
            hint = (' (for PostgreSQL: pip install "lgagent[sweep-db]" and a '
                    "postgresql+psycopg:// URL)")
            raise BadInput(f"{where}: its database driver is not installed: "
                           f"{one_line(cause)}{hint}") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            # another worker is creating the tables right now (CREATE TYPE/TABLE races on a
            # new database): once it has committed, they exist and this open loads them
            if attempt == TABLE_RACE_TRIES - 1:
                raise BadInput(f"{where}: cannot create or read the study's tables: "
                               f"{_db_line(e)}") from None
            time.sleep(0.2 + random.random() * 0.5)
        except sqlalchemy.exc.SQLAlchemyError as e:
            raise BadInput(f"{where}: cannot open the database: {_db_line(e)}") from None
        except (RuntimeError, ValueError) as e:  # e.g. a schema of another Optuna version
            raise BadInput(f"{where}: {one_line(e)}") from None


def _db_line(e) -> str:
    """The driver's own message of a SQLAlchemy error, on one line (without SQLAlchemy's
    ``[SQL: ...]`` and background link)."""
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e)
    lines = [s.strip() for s in text.splitlines() if s.strip() and not s.startswith("(Background")]
    msg = "; ".join(lines) or type(e).__name__
    msg = msg.split("[SQL:")[0].strip().rstrip(";").strip()
    return msg[:300]
