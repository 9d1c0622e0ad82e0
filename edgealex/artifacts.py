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
import re
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


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list",
               dict: "an object", type(None): "null"}


def validate_sidecar(data, source, artifact=None, schema_max=None, fields=None, require_sha256=True,
                     fix="regenerate it with the edgealex command that wrote it"):
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
    for key, kinds in (fields or {}).items():
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if key not in data:
            raise EdgeAlexError(source, f"the sidecar has no {key!r}", fix)
        value = data[key]
        wrong = isinstance(value, bool) and bool not in kinds
        if wrong or not isinstance(value, kinds):
            raise EdgeAlexError(source, "the sidecar's {!r} is {!r}, not {}".format(
                key, value, " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)), fix)
    return data


def read_sidecar(path, what, **checks):
    """:func:`read_json` + :func:`validate_sidecar` (same keyword arguments)."""
    return validate_sidecar(read_json(path, what), str(path), **checks)


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
