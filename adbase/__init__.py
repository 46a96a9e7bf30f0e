"""The base under shared_data and adcommon: one-line user errors (errors), the command-line runner with its
signal handling (runner), safe file writes (safefiles) and the argument parser (args). It imports neither."""
from adbase.args import RANGES, ArgumentParser, Range, check_number  # noqa: F401
from adbase.errors import Terminated, UserError, printable  # noqa: F401
from adbase.runner import GRACE_ENV, extend_stop_grace, run_cli  # noqa: F401
from adbase.safefiles import (  # noqa: F401
                              DISPOSABLE,
                              atomic_path,
                              check_utf8,
                              default_mode,
                              make_dirs,
                              make_temp_dir,
                              process_alive,
                              remove_created_dirs,
                              remove_stale_temps,
                              write_bytes_atomic,
                              write_text_atomic,
)
