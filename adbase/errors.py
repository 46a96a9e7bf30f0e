"""A problem the user can fix, and how it reads: UserError (one line, exit code 2), Terminated (SIGTERM)."""
import errno


class UserError(Exception):
    """A problem the user can fix (bad path, unknown category, no network, corrupt file).

    Command-line entry points print it as one line and exit with code 2, no traceback.
    """


# OSErrors that mean the machine refused a file operation the user asked for, not a bug: one line.
_FILE_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EISDIR, errno.ENOTDIR,
                errno.ENAMETOOLONG}


class Terminated(KeyboardInterrupt):
    """SIGTERM, what a process manager sends to stop a run: handled as Ctrl-C is (every ``finally`` and
    ``except BaseException`` cleans up), reported as "terminated" with exit code 143 (128 + 15)."""


def printable(text):
    """``text`` with the bytes of a file name that is not UTF-8 (Python keeps them as lone surrogates)
    shown as ``\\xNN``: safe to print, log and write as UTF-8."""
    text = str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
