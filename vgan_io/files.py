"""Files that appear whole or not at all: written under a temporary name, then renamed.

The temporary name starts with '.' and holds `PARTIAL`, so no glob for the finished files matches
it, and `remove_partial_files` can clear what a killed process left. No heavy imports: this runs
in data-preparation worker processes too.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import re
import socket
import tempfile
from typing import Callable, Iterator

import numpy as np

PARTIAL = '.partial'  # in the names of files still being written
_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str, keep_empty: bool = True,
                keep_extension: bool = True) -> Iterator[str]:
  """Yields a temporary path beside `path`; renamed to `path` only if the block completes (and,
  unless `keep_empty`, if something was written to it).

  `keep_extension` ends the temporary name with `path`'s extension, for writers that pick the
  format from it (OpenCV's VideoWriter, PIL); shards do not, so no glob for them can match it.
  """
  directory, name = os.path.split(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  extension = os.path.splitext(name)[1] if keep_extension else ''
  handle, temporary = tempfile.mkstemp(dir=directory, prefix=f'.{name}.',
                                       suffix=PARTIAL + extension)
  os.close(handle)
  os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes files private; results should not be
  try:
    yield temporary
    if keep_empty or os.path.getsize(temporary):
      os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


# `atomic_path`'s temporary names: '.' + the final name + '.' + mkstemp's random letters + PARTIAL
# (+ the extension).
_PARTIAL_NAME = re.compile(r'\.(?P<name>.+)\.[a-z0-9_]+' + re.escape(PARTIAL) + r'(\.[^.]*)?')


def partial_target(name: str) -> str | None:
  """The name the temporary file `name` would have been renamed to, or None if it is none."""
  match = _PARTIAL_NAME.fullmatch(name)
  return match['name'] if match else None


def remove_partial_files(folder: str, owned: Callable[[str], bool] | None = None) -> list[str]:
  """Deletes the temporary files a killed process left in `folder`; returns their names. With
  `owned`, only those whose final name (`partial_target`) it accepts: the ones of other
  processes still writing to the folder stay."""
  if not os.path.isdir(folder):
    return []
  names = [name for name in os.listdir(folder) if name.startswith('.') and PARTIAL in name]
  if owned is not None:
    names = [name for name in names if (target := partial_target(name)) and owned(target)]
  for name in names:
    os.remove(os.path.join(folder, name))
  return names


def write_text(path: str, text: str) -> None:
  """`text` at `path` (UTF-8), atomically."""
  with atomic_path(path) as temporary:
    with open(temporary, 'w', encoding='utf-8') as file:
      file.write(text)


def write_json(path: str, value) -> None:
  """`value` as indented JSON at `path`, atomically."""
  with atomic_path(path) as temporary:
    with open(temporary, 'w') as file:
      json.dump(value, file, indent=1, sort_keys=True)
      file.write('\n')


def write_npz(path: str, arrays: dict) -> None:
  """Numpy arrays as a compressed .npz at `path`, atomically."""
  with atomic_path(path) as temporary:
    np.savez_compressed(temporary, **arrays)


LOCK = '.lock'  # the lock file of a folder a job writes to (`exclusive_lock`)


class FolderInUseError(ValueError):
  """Another process holds the folder's lock: two jobs writing one folder would collide."""


@contextlib.contextmanager
def exclusive_lock(folder: str, what: str, name: str = LOCK) -> Iterator[None]:
  """Holds FOLDER/NAME (default .lock; created with the folder) for the block: a second process
  asking for it gets FolderInUseError at once, naming the holder's pid, start time and host. The
  kernel releases the lock when its process ends, however it ends (kill -9 included), so none is
  ever left stuck; one that ends normally empties the file. `what` names the job in the message
  ('training run', ...)."""
  with _flock(folder, what, name, shared=False):
    yield


@contextlib.contextmanager
def shared_lock(folder: str, what: str, name: str = LOCK) -> Iterator[None]:
  """Holds FOLDER/NAME in shared mode for the block: any number of processes (on any machine
  whose filesystem supports flock, as NFS and most cluster filesystems do) may hold it together,
  and while one does, `exclusive_lock` on the same file is refused at once (and the other way
  round: asking while an exclusive holder has it raises FolderInUseError naming that holder).
  Shared holders write nothing in the file; say who they are in lock files of their own."""
  with _flock(folder, what, name, shared=True):
    yield


@contextlib.contextmanager
def _flock(folder: str, what: str, name: str, shared: bool) -> Iterator[None]:
  path = os.path.join(folder, name)
  try:
    os.makedirs(folder, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as error:
    if is_disk_full(error):
      raise
    raise OSError(f'{folder}: cannot be created or written to ({error.strerror}).') from None
  try:
    try:
      fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(handle, 200, 0).decode(errors='replace').strip() or 'another process'
      raise FolderInUseError(f'{folder} is in use by another {what} ({holder}); wait for it to '
                             'end, or use another folder.') from None
    # A shared holder clears what the last exclusive one wrote (no exclusive holder can be there
    # now), so it is never shown as the holder; an exclusive holder says who it is.
    os.ftruncate(handle, 0)
    if not shared:
      started = datetime.datetime.now().isoformat(timespec='seconds')
      os.pwrite(handle, f'pid {os.getpid()}, started {started}, host {socket.gethostname()}\n'
                .encode(), 0)
    try:
      yield
    finally:
      if not shared:  # no longer the holder (a killed one leaves its line: stale, harmless)
        os.ftruncate(handle, 0)
  finally:
    os.close(handle)  # releases the lock


NO_SPACE = 'No space left on device'


def is_disk_full(error: BaseException) -> bool:
  """Whether `error` (Python's, TensorFlow's, orbax's or tensorstore's) is a full disk."""
  text = str(error)
  return (getattr(error, 'errno', None) == errno.ENOSPC or NO_SPACE in text or
          "os_error_code='28'" in text)


def disk_full_message(error: BaseException) -> str:
  """One line for a full disk: 'no space left on device writing PATH (N MiB free there)', or
  with the detail an OSError(ENOSPC, 'No space left on device: DETAIL', PATH) gives."""
  path = getattr(error, 'filename', None)
  detail = (getattr(error, 'strerror', None) or '').partition(NO_SPACE + ': ')[2]
  if path and detail:
    return f'no space left on device writing {path}: {detail}'
  if not path:
    quoted = re.findall(r'"(/[^"]+)"', str(error)) or re.findall(r"'(/[^']+)'", str(error))
    path = quoted[-1] if quoted else None
  if not path:
    return f'no space left on device ({str(error).splitlines()[0][:200]})'
  folder = os.path.dirname(path)
  while folder and not os.path.isdir(folder):
    folder = os.path.dirname(folder)
  try:
    stat = os.statvfs(folder or '/')
    free = f' ({stat.f_bavail * stat.f_frsize / 2 ** 20:.1f} MiB free there)'
  except OSError:
    free = ''
  return f'no space left on device writing {path}{free}'
