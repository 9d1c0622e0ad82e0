"""Artifact plumbing shared by every stage: atomic writes, hashing, provenance sidecars.

Every artifact edgealex writes (ONNX, Q/DQ model, calibration cache, engine, benchmark result)
appears only when complete: data goes to a temporary file in the destination folder and is then
renamed over the final name, so an interrupted run never leaves a half-written file.
"""

import contextlib
import datetime
import hashlib
import json
import os
import platform
import sys
import tempfile

from edgealex.errors import EdgeAlexError

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


@contextlib.contextmanager
def atomic_path(final_path, what="output file"):
    """Yield a temporary path next to ``final_path``; rename it over ``final_path`` on success.

    On any exception the temporary file is removed and ``final_path`` is left as it was.
    """
    final_path = str(final_path)
    folder = os.path.dirname(os.path.abspath(final_path))
    ensure_dir(folder, "folder for the " + what)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(final_path), dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, final_path)
        if os.path.lexists(tmp):  # rename() does nothing when both names are links to one file
            os.remove(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


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


def read_json(path, what="JSON file"):
    """Read a JSON file or raise a user error naming the file and the problem."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise EdgeAlexError(path, f"the {what} does not exist", "check the path")
    except (ValueError, UnicodeDecodeError) as exc:
        raise EdgeAlexError(path, f"the {what} is not valid JSON ({exc})",
                            "regenerate it; it may be truncated or corrupt")


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
