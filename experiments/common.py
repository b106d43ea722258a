"""What every entry point shares: the `--config` flag (which takes a config name), the compilation
cache and quieter library logs."""

import ctypes
import logging as python_logging
import os

import jax
from absl import flags
from ml_collections import config_flags
from ml_collections.config_flags import config_flags as config_flags_lib

from vgan_jax import configs


class _NamedConfigParser(config_flags_lib.ConfigFileFlagParser):
  """Parses `--config=NAME` (a config of `vgan_jax/configs.py`) or a path `FILE.py[:ARG]`."""

  def parse(self, value):
    if isinstance(value, str) and value in configs.CONFIGS:
      value = f'{configs.__file__}:{value}'
    elif isinstance(value, str) and '.py' not in value:
      raise ValueError(f'unknown config {value!r}: use one of {", ".join(configs.CONFIGS)} or a '
                       'FILE.py[:ARG] with get_config()')
    return super().parse(value)


def define_config_flag(default: str = 'paper') -> flags.FlagHolder:
  """`--config=paper|tiny|test` (or a config file), overridable as `--config.FIELD=VALUE`."""
  # ml_collections has no public hook for config names; its own DEFINE_config_file builds the
  # same flag with the file-only parser.
  flag = config_flags_lib._ConfigFlag(  # pylint: disable=protected-access
      parser=_NamedConfigParser(name='config'), serializer=flags.ArgumentSerializer(),
      name='config', default=default,
      help_string=(f'Config name ({", ".join(configs.CONFIGS)}) or FILE.py[:ARG] with '
                   'get_config(); '
                   'override fields with --config.FIELD=VALUE.'))
  return flags.DEFINE_flag(flag)


def config_name(flag_holder: flags.FlagHolder) -> str:
  """'tiny' for --config=tiny (or .../configs.py:tiny), the file's stem for a config file."""
  value = config_flags.get_config_filename(flags.FLAGS[flag_holder.name])
  if value in configs.CONFIGS:
    return value
  if value.startswith(configs.__file__ + ':'):
    return value.split(':', 1)[1]
  return value.rsplit('/', 1)[-1].split('.py')[0]


class _DropLibraryInfo(python_logging.Filter):
  """Keeps orbax's INFO lines (several per checkpoint) out of the training log."""

  def filter(self, record: python_logging.LogRecord) -> bool:
    return record.levelno >= python_logging.WARNING or '/orbax/' not in record.pathname


def setup_runtime(cache_dir: str | None = None, persistent_cache: bool = True) -> None:
  """Persistent XLA compilation cache (a restart skips the compile: ~20 s on a 2-core CPU) in
  `cache_dir`, $VGAN_JAX_CACHE or ~/.cache/vgan_jax (VGAN_JAX_CACHE=off: none); and quieter
  library logs."""
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
