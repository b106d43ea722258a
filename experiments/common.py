"""What every entry point shares: `--config` by name, the `--scene`/`--data_dir` shorthands, and
one prologue (`run`) for runtime set-up and for turning expected errors into one line.

An entry point defines its flags, then

  def main():
    config = common.config_from_flags()
    ...  # one call into a flag-free module

  if __name__ == '__main__':
    common.run(main, 'train')
"""

import ast
import ctypes
import functools
import logging as python_logging
import os
import re
import sys
import traceback
from typing import Callable

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from vgan_io import files

FLAGS = flags.FLAGS
# Shorthand flags (where an entry point defines them) and the config fields they set.
SHORTHANDS = {'scene': 'data.scene', 'data_dir': 'data.data_dir',
              'tfds_data_dir': 'data.tfds_data_dir', 'checkpoint': 'classifier.gan_checkpoint'}


def _configs():
  """vgan_jax.configs, imported when first needed: prepare_data uses this module too, and its
  worker processes (spawned, so they import the entry module) should not load JAX and Flax."""
  from vgan_jax import configs  # pylint: disable=g-import-not-at-top
  return configs


def define_config_flag(default: str = 'paper') -> flags.FlagHolder:
  """`--config=paper|tiny|test|actions` (or FILE.py[:ARG] with get_config()), overridable as
  `--config.FIELD=VALUE`: ml_collections' config-file flag on `vgan_jax/configs.py`, whose
  `get_config(name)` makes the named configs (`run` expands a bare name to that file)."""
  configs = _configs()
  return config_flags.DEFINE_config_file(
      'config', f'{configs.__file__}:{default}',
      f'Config name ({", ".join(configs.CONFIGS)}) or FILE.py[:ARG] with get_config(); override '
      'fields with --config.FIELD=VALUE.', lock_config=True)


def define_data_flags(scene: bool = True) -> None:
  """`--scene` (unless not `scene`) and `--data_dir`: shorthands for --config.data.scene and
  --config.data.data_dir (saved with the checkpoint like every config field; see `SHORTHANDS`)."""
  if scene:
    flags.DEFINE_string('scene', None, 'Shorthand for --config.data.scene: golf, beach, '
                        'train_station, babies, or the name of a prepared data folder.')
  flags.DEFINE_string('data_dir', None, 'Shorthand for --config.data.data_dir: a folder of '
                      'prepared clips, DATA_DIR/SCENE/*.tfrecord (default: the built-in scenes).')


def define_distributed_flags() -> Callable[[], None]:
  """`--multihost` and `--coordinator_address`, `--num_processes`, `--process_id`; returns the
  function that joins the job those flags describe (nothing without them): call it first."""
  multihost = flags.DEFINE_bool(
      'multihost', False, 'Join a multi-process job found from the cluster\'s environment '
      '(Slurm, Cloud TPU, MPI): run the same command in every process; each reads its own part '
      'of the data.')
  address = flags.DEFINE_string('coordinator_address', None, 'HOST:PORT of process 0, for a '
                                'multi-process job without a cluster JAX detects.')
  processes = flags.DEFINE_integer('num_processes', None, 'Processes of the job (with '
                                   '--coordinator_address).')
  process = flags.DEFINE_integer('process_id', None, 'This process\'s number, 0 to '
                                 '--num_processes - 1 (with --coordinator_address).')

  def join() -> None:
    explicit = (address.value, processes.value, process.value)
    if multihost.value or any(value is not None for value in explicit):
      from vgan_jax import parallel  # pylint: disable=g-import-not-at-top
      parallel.initialize_distributed(*explicit)

  return join


def _expand_config_name(argv: list[str], name: str) -> list[str]:
  """`--config=NAME` (or `--config NAME`) -> `--config=.../vgan_jax/configs.py:NAME`; a bare word
  that is neither a config name nor a .py file ends the program with one line naming it."""
  if not any(arg == '--config' or arg.startswith('--config=') for arg in argv):
    return argv
  configs = _configs()
  expanded, i = [], 0
  while i < len(argv):
    arg = argv[i]
    value = None
    if arg.startswith('--config='):
      value = arg.split('=', 1)[1]
    elif arg == '--config' and i + 1 < len(argv):
      value, i = argv[i + 1], i + 1
    if value is None:
      expanded.append(arg)
    elif value in configs.CONFIGS:
      expanded.append(f'--config={configs.__file__}:{value}')
    elif '.py' not in value:
      sys.exit(f'{name}: unknown config {value!r}: use one of '
               f'{", ".join(configs.CONFIGS)} or a FILE.py[:ARG] with get_config().')
    else:
      expanded.append(f'--config={value}')
    i += 1
  return expanded


_HOME = re.compile(r'(^|(?<=[=,]))~(?=/|$|,)')


def expand_paths(argv: list[str]) -> list[str]:
  """`--flag=VALUE` with `~` (at the start of VALUE or after an '=' or ',' in it, as in
  `--source=real=~/videos`) and `$VARS` expanded: the shell does neither after '='."""
  expanded = []
  for arg in argv:
    if arg.startswith('--') and '=' in arg:
      flag, value = arg.split('=', 1)
      value = _HOME.sub(os.path.expanduser('~').replace('\\', '\\\\'), os.path.expandvars(value))
      arg = f'{flag}={value}'
    expanded.append(arg)
  return expanded


def config_name() -> str:
  """'tiny' for --config=tiny, the file's stem for a config file: part of default workdirs."""
  configs = _configs()
  value = config_flags.get_config_filename(FLAGS['config'])
  if value.startswith(configs.__file__ + ':'):
    return value.split(':', 1)[1]
  return value.rsplit('/', 1)[-1].split('.py')[0]


def config_from_flags() -> ml_collections.ConfigDict:
  """The `--config` flag's config with the `SHORTHANDS` an entry point defines applied,
  validated; ValueError names a bad field or a shorthand that contradicts an override."""
  config = FLAGS.config
  overrides = config_flags.get_override_values(FLAGS['config'])  # keyed by dotted field paths
  for shorthand, field in SHORTHANDS.items():
    if shorthand not in FLAGS or FLAGS[shorthand].value is None:
      continue
    value = FLAGS[shorthand].value
    given = overrides.get(field)
    if given is not None and os.path.normpath(str(given)) != os.path.normpath(value):
      raise ValueError(f'--{shorthand}={value} contradicts --config.{field}={given}.')
    section, name = field.split('.')
    with config.unlocked():
      config[section][name] = value
  _configs().validate(config)
  return config


def default_workdir(config: ml_collections.ConfigDict, prefix: str = '') -> str:
  """runs/PREFIXCONFIG_SCENE, e.g. runs/tiny_beach."""
  return os.path.join('runs', f'{prefix}{config_name()}_{config.data.scene}')


class _DropDiskFullTracebacks(python_logging.Filter):
  """Drops the library records of a full disk: orbax's writer threads and asyncio's unretrieved
  tasks log a traceback per array (a thousand lines); the command's own error says it once."""

  def filter(self, record: python_logging.LogRecord) -> bool:
    if record.levelno < python_logging.ERROR:
      return True
    text = record.getMessage()
    if record.exc_info:
      text += ''.join(traceback.format_exception(*record.exc_info))
    return not files.is_disk_full(Exception(text))


class _DropLibraryInfo(python_logging.Filter):
  """Keeps orbax's INFO lines (several per checkpoint) out of the training log."""

  def filter(self, record: python_logging.LogRecord) -> bool:
    return record.levelno >= python_logging.WARNING or '/orbax/' not in record.pathname


def setup_runtime(cache_dir: str | None = None, persistent_cache: bool = True) -> None:
  """Persistent XLA compilation cache (a restart skips the compile: ~20 s on a 2-core CPU) in
  `cache_dir`, $VGAN_JAX_CACHE or ~/.cache/vgan_jax (VGAN_JAX_CACHE=off: none); and quieter
  library logs."""
  import jax  # pylint: disable=g-import-not-at-top (see `_configs`)
  cache_dir = cache_dir or os.environ.get('VGAN_JAX_CACHE') or os.path.join(
      os.path.expanduser('~'), '.cache', 'vgan_jax', 'xla')
  # jax 0.10.2's CPU client crashed (SIGSEGV) loading an earlier version of the cached paper-size
  # batch-64 train step (the current one loads fine). `off` is the way out should it come back.
  if persistent_cache and cache_dir != 'off':
    jax.config.update('jax_compilation_cache_dir', cache_dir)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  python_logging.getLogger('absl').addFilter(_DropLibraryInfo())


def release_free_host_memory() -> None:
  """Hands the C allocator's free pages back to the OS (glibc's malloc_trim; elsewhere nothing).

  XLA's CPU compiler frees GiBs of heap after compiling a large step (~1.7 GiB for the paper-size
  step at batch 64); glibc would keep it in the process's resident memory.
  """
  try:
    ctypes.CDLL('libc.so.6').malloc_trim(0)
  except (OSError, AttributeError):
    pass


class Stopped(RuntimeError):
  """A stage of a longer job ended before its last step on a stop request (Ctrl-C, SIGTERM):
  what follows it (testing, the next run) must not use the unfinished model. The message says
  where; the same command resumes."""


def run(main: Callable[[], None], name: str, hints: dict[type, str] | None = None,
        persistent_cache: bool = True, jax_runtime: bool = True) -> None:
  """`app.run` with named configs, the runtime set-up (`setup_runtime`, unless not
  `jax_runtime`), and expected errors (ValueError, OSError: bad input, a missing or mismatched
  checkpoint; a `Stopped` stage) as one line `NAME: message` and exit status 1. `hints` appends a
  sentence to errors of a type (e.g. how to make a missing checkpoint)."""

  def app_main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
    if jax_runtime:
      setup_runtime(persistent_cache=persistent_cache)
    else:
      python_logging.getLogger('absl').addFilter(_DropLibraryInfo())
    for handler in python_logging.getLogger().handlers:
      handler.addFilter(_DropDiskFullTracebacks())
    try:
      main()
    except Stopped as error:
      sys.exit(f'{name}: {error}')
    except (ValueError, OSError) as error:  # FileNotFoundError, CheckpointMismatchError too
      if files.is_disk_full(error):
        sys.exit(f'{name}: {files.disk_full_message(error)}; free some space and rerun: it '
                 'goes on from what was saved.')
      hint = next((text for kind, text in (hints or {}).items() if isinstance(error, kind)), '')
      sys.exit(f'{name}: {error}' + (f' {hint}' if hint else ''))

  app.run(app_main, flags_parser=functools.partial(_parse_flags, name=name))


def _parse_flags(argv: list[str], name: str) -> list[str]:
  """absl's parser, after named configs are expanded; a `--config.FIELD=` that names no field (or
  cannot be set) ends the program with one line, not ml_collections' traceback."""
  argv = _expand_config_name(expand_paths(argv), name)
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError, TypeError, ValueError) as error:
    detail = str(error.args[0] if error.args else error)
    # ml_collections nests the repr of a KeyError's message (quotes and all) in its error.
    while len(detail) > 1 and detail[0] == detail[-1] and detail[0] in '\'"':
      try:
        detail = ast.literal_eval(detail)
      except (ValueError, SyntaxError):
        break
    kind = 'an unknown field' if isinstance(error, (AttributeError, KeyError)) else 'a field'
    sys.exit(f'{name}: bad --config override of {kind}: {detail.replace(chr(10), ": ")}')
