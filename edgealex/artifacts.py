"""Artifact plumbing shared by every stage: atomic writes, hashing, provenance sidecars.

Every artifact edgealex writes (ONNX, Q/DQ model, calibration cache, engine, benchmark result)
appears only when complete: data goes to a temporary file in the destination folder and is then
renamed over the final name, so an interrupted run never leaves a half-written file. Folders of
artifacts (a calibration, a report) are built in a staging folder beside the target and swapped
in at the end (:func:`staging_dir`). A full disk (or any other write failure of the OS) while
writing one is one user error (:func:`disk_error`), the previous outputs stay as they were.
Outputs a long command writes while it runs (a verdict log, a video) are claimed with an
advisory lock (:class:`OutputLock`) so that two processes never write one file.
"""

import contextlib
import datetime
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile

from edgealex.errors import EdgeAlexError, WriteFailed

SIDECAR_SUFFIX = ".json"


def sha256_file(path, chunk_bytes=1 << 20):
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def ensure_dir(path, what="output directory"):
    """Create ``path`` (and parents) or raise a user error that says why not."""
    path = str(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise EdgeAlexError(path, f"cannot create the {what} ({exc.strerror or exc})",
                            "choose a writable location with -o/--out")
    if not os.access(path, os.W_OK):
        raise EdgeAlexError(path, f"the {what} is not writable",
                            "choose a writable location with -o/--out")
    return path


# errno values that mean "the storage cannot take this write" (not a bug): disk full, quota,
# file too large, read-only file system, I/O error, a folder that stopped being writable.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM)


def is_disk_error(exc):
    """True for an OSError whose errno says the storage refused the write (:data:`DISK_ERRNOS`)."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def disk_error(path, exc, what="output", kept="the previous version, if any, is unchanged"):
    """The one user error for a failed write (``exc``: an OSError with a :data:`DISK_ERRNOS` errno)."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    reason = "the disk is full" if full else (exc.strerror or str(exc))
    if full or exc.errno == errno.EFBIG:
        fix = "free space on that disk (df -h) or write to another folder, then run the command again"
    elif exc.errno == errno.EROFS:
        fix = "that file system is mounted read-only: remount it read-write or write to another folder"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        fix = ("check the permissions of the folder and of the file it replaces (ls -l; lsattr shows an "
               "immutable 'i' flag) or write to another folder")
    else:
        fix = "check the disk (dmesg) or write to another folder, then run the command again"
    return WriteFailed(path, f"could not write the {what}: {reason} ({errno.errorcode.get(exc.errno, exc.errno)}); "
                             f"nothing half-written was left, {kept}", fix, os_error=exc)


@contextlib.contextmanager
def atomic_path(final_path, what="output file"):
    """Yield a temporary path next to ``final_path``; rename it over ``final_path`` on success.

    On any exception the temporary file is removed and ``final_path`` is left as it was; a write
    the storage refused (disk full, quota, ...: :data:`DISK_ERRNOS`) becomes :func:`disk_error`.
    """
    final_path = str(final_path)
    folder = os.path.dirname(os.path.abspath(final_path))
    ensure_dir(folder, "folder for the " + what)
    if os.path.isdir(final_path):  # rename() cannot put a file there (EISDIR): say so before any work
        raise EdgeAlexError(final_path, f"is a folder; the {what} cannot be written under that name",
                            "remove or rename that folder, or choose another output path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(final_path), dir=folder)
    except OSError as exc:  # no inode left (a tmpfs's nr_inodes, a quota) fails here, before any byte
        if is_disk_error(exc):
            raise disk_error(final_path, exc, what)
        raise
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, final_path)
        if os.path.lexists(tmp):  # rename() does nothing when both names are links to one file
            os.remove(tmp)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if is_disk_error(exc):
            raise disk_error(final_path, exc, what)
        raise


@contextlib.contextmanager
def staging_dir(final_dir, what="output folder", owned=None):
    """Yield an empty staging folder; its content replaces the previous output only on success.

    On any exception (Ctrl-C, SIGTERM through the CLI's handler, a full disk, a bug) the staging
    folder is removed and ``final_dir`` is left exactly as it was. The swap at the end runs with
    SIGINT/SIGTERM deferred, so an interrupt lands before it or after it, never in the middle. The
    output is locked (:class:`OutputLock`) for the whole block: a second process writing the same
    folder meanwhile gets a user error at once.

    Args:
        final_dir (str): the output folder.
        what (str): what it holds, for messages. Defaults to "output folder".
        owned (callable): ``owned(final_dir)`` -> names of the previous output's files in a folder
            that may hold other things too (a calibration in a user's folder). Then the staging
            folder is a hidden sub-folder of ``final_dir`` (same file system), and at the end those
            files are replaced by the staged ones, other files are left alone. Defaults to None:
            the staging folder is a hidden sibling and the whole folder is swapped.

    Raises:
        EdgeAlexError: the folder cannot be created, another process is writing it, or a write the
            storage refused.
    """
    final_dir = os.path.abspath(str(final_dir))
    if os.path.exists(final_dir) and not os.path.isdir(final_dir):
        raise EdgeAlexError(final_dir, f"exists and is not a folder; the {what} must be one",
                            "remove it or choose another output path")
    if owned is None:
        ensure_dir(os.path.dirname(final_dir), "folder for the " + what)
        home = os.path.dirname(final_dir)
        lock = OutputLock(final_dir, what)
    else:
        home = ensure_dir(final_dir, what)
        lock = OutputLock(final_dir, what, lock_path=final_dir)
    # Two commands writing one folder at once: the second is refused at once (before, both built a
    # stage and their swaps could interleave).
    lock.acquire()
    try:
        stage = tempfile.mkdtemp(prefix="." + os.path.basename(final_dir) + ".staging-", dir=home)
    except OSError as exc:  # e.g. /proc: "writable" for root, yet no folder can be made there
        lock.release()
        raise EdgeAlexError(final_dir, f"cannot write the {what} there ({exc.strerror or exc})",
                            "choose a writable location with -o/--out")
    try:
        yield stage
        with signals_deferred():
            os.chmod(stage, 0o777 & ~_umask())
            if owned is None:
                _swap_folder(stage, final_dir)
            else:
                _swap_files(stage, final_dir, owned(final_dir))
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, WriteFailed) and exc.os_error is not None:  # a file in the stage: name the folder
            raise disk_error(final_dir, exc.os_error, what)
        if is_disk_error(exc):
            raise disk_error(final_dir, exc, what)
        raise
    finally:
        lock.release()


def _swap_folder(stage, final_dir):
    old = None
    if os.path.isdir(final_dir):
        old = tempfile.mkdtemp(prefix="." + os.path.basename(final_dir) + ".old-", dir=os.path.dirname(final_dir))
        os.rmdir(old)
        os.rename(final_dir, old)
    try:
        os.rename(stage, final_dir)
    except BaseException:
        if old is not None:  # put the previous folder back before the error goes on
            os.rename(old, final_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _swap_files(stage, final_dir, previous):
    """Move the previous files aside, the staged ones in, then delete the previous ones. A rename that
    fails half-way (an immutable file, a busy mount point) undoes the ones done: the previous files
    go back where they were and the error goes on, so nothing of the previous output is lost."""
    old = tempfile.mkdtemp(prefix=".old-", dir=final_dir)
    moved, placed = [], []
    try:
        for name in previous:
            os.rename(os.path.join(final_dir, name), os.path.join(old, name))
            moved.append(name)
        for name in os.listdir(stage):
            os.replace(os.path.join(stage, name), os.path.join(final_dir, name))
            placed.append(name)
        os.rmdir(stage)
    except BaseException:
        for name in placed:
            _remove_path(os.path.join(final_dir, name))
        for name in moved:
            os.rename(os.path.join(old, name), os.path.join(final_dir, name))
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _remove_path(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM back for the block (main thread, where supported); they are delivered,
    and raise, right after it."""
    import signal
    import threading

    blocked = None
    if hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread():
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class OutputLock:
    """An advisory lock (``fcntl.flock``) on an output for as long as one process writes it.

    The lock is held on ``.<name>.lock`` beside the output (the output itself may be replaced by a
    rename while it is held), which records the holder's pid. A second process asking for the same
    output gets a user error at once instead of interleaving lines or clobbering a file. Where
    ``fcntl`` does not exist (Windows) nothing is locked.

    Args:
        path (str): the output path.
        what (str): what it is, for the message. Defaults to "output".
        lock_path (str or None): where the lock file goes. Defaults to None: ``.<name>.lock``
            beside the output. An existing folder (an output folder that may sit in a folder the
            user cannot write, see :func:`staging_dir`) is locked itself: no lock file, no inode
            (a full disk has none to spare), no pid in the message.
    """

    def __init__(self, path, what="output", lock_path=None):
        self.path = os.path.abspath(str(path))
        self.what = what
        folder, name = os.path.split(self.path)
        self.lock_path = str(lock_path) if lock_path else os.path.join(folder, "." + name + ".lock")
        self._fd = None
        self._folder = False

    def acquire(self):
        """Take the lock or raise EdgeAlexError naming the process that holds it. Returns self."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on the Linux/Jetson targets
            return self
        if os.path.isdir(self.lock_path):
            return self._acquire_folder(fcntl)
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise EdgeAlexError(self.path, f"cannot create the lock file {self.lock_path} ({exc.strerror or exc})",
                                    "choose a writable location for the output")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_small(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise EdgeAlexError(self.path, f"another process{(' (pid ' + holder + ')') if holder else ''} is "
                                               f"writing this {self.what} right now",
                                    "wait for it to finish, or give this run another output path")
            # The previous holder may have removed the lock file between our open and flock: then
            # we hold a lock on a deleted file and must try again on the current one.
            try:
                current = os.stat(self.lock_path)
            except FileNotFoundError:
                os.close(fd)
                continue
            mine = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) != (current.st_dev, current.st_ino):
                os.close(fd)
                continue
            with contextlib.suppress(OSError):  # the pid is informative only (the disk may be full)
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            self._fd = fd
            return self

    def _acquire_folder(self, fcntl):
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError as exc:
            raise EdgeAlexError(self.path, f"cannot open the folder to lock it ({exc.strerror or exc})",
                                "choose a readable output folder")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise EdgeAlexError(self.path, f"another process is writing this {self.what} right now",
                                "wait for it to finish, or give this command another output folder")
        self._fd, self._folder = fd, True
        return self

    def release(self):
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if not self._folder:
            with contextlib.suppress(OSError):
                os.remove(self.lock_path)  # while still holding it: see acquire()
        os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, exc_type, exc, tb):
        self.release()
        return False


def _read_small(fd):
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def check_output_paths(outputs, inputs=()):
    """Refuse conflicting output paths before anything runs.

    Args:
        outputs (sequence): ``(path, what)`` pairs a command will write.
        inputs (sequence): ``(path, what)`` pairs it reads (a source video, an engine).

    Raises:
        EdgeAlexError: an output given twice, an output that is one of the inputs, an output
            whose name is an existing folder or a FIFO/device/socket, or whose folder does not exist.
    """
    seen = {}
    for path, what in outputs:
        real = os.path.realpath(str(path))
        if os.path.isdir(real):
            raise EdgeAlexError(path, f"the {what} would replace an existing folder", "give a file name, not a folder")
        kind = _special_file(real)
        if kind:  # a FIFO blocks the open until a reader comes (forever, past --duration); none can be pwritten
            raise EdgeAlexError(path, f"is {kind}, not a regular file; the {what} is written as a file",
                                "give a regular file name (to stream results to another program use mqtt:// or "
                                "http://; to discard them, null://)")
        folder = os.path.dirname(real)
        if not os.path.isdir(folder):
            raise EdgeAlexError(path, f"the folder for the {what} does not exist", "create it or pick another path")
        if real in seen:
            raise EdgeAlexError(path, f"given twice (as the {seen[real]} and as the {what})",
                                "give each output once")
        seen[real] = what
        for source, source_what in inputs:
            if source and _same_file(real, source):
                raise EdgeAlexError(path, f"the {what} would overwrite the {source_what} it reads",
                                    "pick another output path")


def _special_file(path):
    """"a FIFO", "a device", "a socket" for such an existing path, else None."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def same_file(path, other):
    """True when ``path`` and ``other`` name one file (hard link, symlink or the same path), also
    for paths that do not exist yet (compared by their resolved names)."""
    return _same_file(os.path.realpath(str(path)), other)


def _same_file(real_path, other):
    other = str(other)
    try:
        if os.path.exists(real_path) and os.path.exists(other):
            return os.path.samefile(real_path, other)
    except OSError:
        pass
    return real_path == os.path.realpath(other)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return str(path)


def write_text_atomic(path, text):
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj):
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    # numpy scalars/arrays without importing numpy here
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value)!r}")


def check_input_file(path, what, fix, folder_fix="pass the file itself"):
    """Refuse an input path that is a folder or where no file is, before anything opens it.

    The one check behind every loader of a model, engine or other input file, so a folder named
    like the file (``model.onnx/``) is called a folder, not missing.

    Args:
        path (str or os.PathLike): the input file.
        what (str): what it should be ("ONNX model", "engine", ...), for the message.
        fix (str): the Note for a missing file (e.g. "build it with `edgealex build`").
        folder_fix (str): the Note for a folder.

    Returns:
        str: ``path`` as a string.

    Raises:
        EdgeAlexError: "is a folder, not a(n) <what> file" or "the <what> does not exist".
    """
    path = str(path)
    if os.path.isdir(path):
        article = "an" if what[:1].lower() in "aeiou" else "a"
        raise EdgeAlexError(path, f"is a folder, not {article} {what} file", folder_fix)
    if not os.path.isfile(path):
        raise EdgeAlexError(path, f"the {what} does not exist", fix)
    return path


def read_json(path, what="JSON file", expect=dict):
    """Read a JSON file or raise a user error naming the file and the problem.

    Args:
        path (str): the file.
        what (str): what it is, for messages.
        expect (type or None): the top-level JSON type the caller reads (``dict``: an object, the
            default for every edgealex manifest and sidecar; ``list``; None: anything). A file of
            another type is refused here, once, instead of failing later on ``.get``.

    Raises:
        EdgeAlexError: missing, unreadable, not JSON, or not of the expected type.
    """
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise EdgeAlexError(path, f"the {what} does not exist", "check the path")
    except IsADirectoryError:
        raise EdgeAlexError(path, f"the {what} is a folder", "pass the JSON file")
    except (ValueError, UnicodeDecodeError) as exc:
        raise EdgeAlexError(path, f"the {what} is not valid JSON ({exc})",
                            "regenerate it; it may be truncated or corrupt")
    if expect is not None and not isinstance(data, expect):
        found = type(data).__name__ if type(data) in (list, dict) else _TYPE_NAMES.get(type(data), "value")
        raise EdgeAlexError(path, "the {} is a JSON {}, not {}".format(
            what, found.replace("an ", "").replace("a ", ""), "an object" if expect is dict else "a list"),
            "regenerate it; it may have been overwritten or corrupted")
    return data


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list",
               dict: "an object", type(None): "null"}


def validate_sidecar(data, source, artifact=None, schema_max=None, fields=None, require_sha256=True,
                     fix="regenerate it with the edgealex command that wrote it", optional_fields=None):
    """The one check every provenance sidecar passes before anything reads a field of it.

    Args:
        data: the parsed JSON.
        source (str): the sidecar path (the error's subject).
        artifact (str or tuple or None): the ``"artifact"`` value(s) it must carry. Defaults to None
            (any).
        schema_max (int or None): newest ``"schema"`` this edgealex reads; when given, ``schema``
            must be an integer (absent means 0). Defaults to None (not checked).
        fields (dict or None): ``{key: type or tuple of types}`` every sidecar of this kind has.
            Defaults to None.
        require_sha256 (bool): ``"sha256"`` must be 64 lowercase hex digits (an empty or missing
            hash would silently skip the file check). Defaults to True.
        fix (str): how to fix a broken sidecar. Defaults to regenerating it.
        optional_fields (dict or None): like ``fields``, for keys a sidecar may leave out (checked
            only when present). Defaults to None.

    Returns:
        dict: ``data`` itself.

    Raises:
        EdgeAlexError: not a JSON object, wrong artifact kind, a schema that is not an integer or is
            newer than ``schema_max``, a bad sha256, a missing field or a field of the wrong type.
    """
    if not isinstance(data, dict):
        raise EdgeAlexError(source, f"the sidecar is a JSON {type(data).__name__}, not an object", fix)
    if artifact is not None:
        kinds = (artifact,) if isinstance(artifact, str) else tuple(artifact)
        if data.get("artifact") not in kinds:
            raise EdgeAlexError(source, "not an edgealex {} sidecar (artifact={!r})".format(
                " or ".join(kinds), data.get("artifact")), fix)
    if schema_max is not None:
        schema = data.get("schema", 0)
        if isinstance(schema, bool) or not isinstance(schema, int):
            raise EdgeAlexError(source, f"the sidecar's schema is {schema!r}, not an integer", fix)
        if schema > schema_max:
            raise EdgeAlexError(source, f"written by a newer edgealex (schema {schema}; this one reads up to "
                                f"{schema_max})", "upgrade edgealex on this machine")
    if require_sha256:
        digest = data.get("sha256")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise EdgeAlexError(source, f"the sidecar's sha256 is {digest!r}, not 64 hex digits, so the file "
                                "it describes cannot be checked", fix)
    checks = [(key, kinds, True) for key, kinds in (fields or {}).items()]
    checks += [(key, kinds, False) for key, kinds in (optional_fields or {}).items()]
    for key, kinds, required in checks:
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if key not in data:
            if not required:
                continue
            raise EdgeAlexError(source, f"the sidecar has no {key!r}", fix)
        value = data[key]
        wrong = isinstance(value, bool) and bool not in kinds
        if wrong or not isinstance(value, kinds):
            raise EdgeAlexError(source, "the sidecar's {!r} is {!r}, not {}".format(
                key, value, " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)), fix)
    return data


def read_sidecar(path, what, **checks):
    """:func:`read_json` + :func:`validate_sidecar` (same keyword arguments)."""
    return validate_sidecar(read_json(path, what, expect=None), str(path), **checks)  # it names the fix


def folder_bytes(path):
    """Bytes held by the files under ``path``, each file counted once however many hard links it
    has (engines built for ONNX Runtime are hard links of their ONNX), symlinks not followed.

    Returns:
        int: the sum of ``st_size`` over distinct (device, inode) pairs; 0 for a missing folder.
    """
    seen, total = set(), 0
    for root, _dirs, files in os.walk(str(path)):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:  # removed while walking
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen and not os.path.islink(os.path.join(root, name)):
                seen.add(key)
                total += st.st_size
    return total


def sidecar_path(artifact_path):
    """``model.onnx`` -> ``model.onnx.json``: the provenance record that travels with an artifact."""
    return str(artifact_path) + SIDECAR_SUFFIX


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")


def environment_summary():
    """Versions and machine facts every provenance record carries (cheap; imports nothing heavy)."""
    from edgealex import __version__

    return {
        "edgealex_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "argv": list(sys.argv),
        "created_at": now_iso(),
    }
