"""The autoencoder + Gaussian mixture baseline of the paper, without flags: train an autoencoder
(encoder like D with a 100-d code, decoder the two-stream G) on reconstruction, fit a mixture on
the codes of training clips, decode draws from the mixture.

  networks = build_autoencoder(config)          # modules + optimizer
  state = train(config, workdir, batches_from)  # resumable, checkpointed (orbax)
  codes = encode_clips(networks, state, batches, 4096)
  gmm = fit_gmm(codes, components=256, seed=0)  # sklearn GaussianMixture
  save_gmm(path, gmm, step=int(state.step)); write_samples(workdir, output_dir, 16, seed=0)

The training state is one pytree (`AutoencoderTrainState`), stepped by one pure jitted function,
checkpointed with vgan_jax/checkpoint.py, as the GAN's is. The data arrive through a callable, so
this module never imports the input pipeline (TensorFlow): experiments/baseline.py supplies it.

Loss: `config.reconstruction_loss` ('l1' by default) between the decoded and the input video,
plus the two-stream mask prior `config.mask_penalty * mean|m|` that the GAN's generator has.
Reconstruction alone does not care how a clip is split between the streams; the prior keeps the
decoder's mask sparse (static pixels drawn by the background stream), so the baseline's streams
mean what the GAN's do and the two can be compared stream by stream.

Gaussian mixture: diagonal covariances by default (see `fit_gmm`), saved as plain arrays in an
.npz (no pickle), drawn with an explicit seed.
"""

import contextlib
import dataclasses
import functools
import os
import time
from typing import Any, Callable, Iterator

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from sklearn import mixture
from tqdm import tqdm

from vgan_io import files, media
from vgan_jax import checkpoint, configs, losses, models, parallel, sampling
from vgan_jax.models import GeneratorOutput
from vgan_jax.models import Autoencoder
from vgan_jax.train_state import adam, video_shape
from vgan_jax.train_step import normalize_video

PyTree = Any
GMM_FILE = 'gmm.npz'
COVARIANCE_TYPES = ('diag', 'full')
_TRAIN_FIRST = ('Train one first: python -m experiments.baseline --mode=train --config=tiny '
                '--scene=beach (or --workdir=WORKDIR).')


@flax.struct.dataclass
class AutoencoderTrainState:
  """Everything that changes during autoencoder training (all leaves are arrays).

  `rng` is carried (and checkpointed) like the GAN's, though the reconstruction step draws no
  random numbers: a step that does (noise on the codes, say) needs no new state layout.
  """
  step: jax.Array  # int32 scalar: updates done
  params: PyTree  # {'encoder': ..., 'decoder': ...}
  batch_stats: PyTree
  opt_state: optax.OptState
  rng: jax.Array  # uint32[2] raw PRNG key


@dataclasses.dataclass(frozen=True)
class AutoencoderNetworks:
  """The code that gives an `AutoencoderTrainState` meaning."""
  model: Autoencoder
  optimizer: optax.GradientTransformation
  latent_dim: int
  reconstruction_loss: str  # 'l1' or 'l2'
  mask_penalty: float  # weight of mean|m| for a two-stream decoder


def build_autoencoder(config: ml_collections.ConfigDict) -> AutoencoderNetworks:
  """Encoder (D's trunk + a 100-d code), decoder (`config.model.generator`), the paper's Adam;
  raises ValueError for a config that cannot build one."""
  configs.validate(config)
  if config.model.generator_input != 'noise':
    raise ValueError(f'config.model.generator_input={config.model.generator_input!r}: the '
                     "autoencoder's decoder is the generator from a code; use 'noise'.")
  model = models.build_autoencoder(config.model)
  return AutoencoderNetworks(model=model, optimizer=adam(config.optimizer),
                             latent_dim=config.model.latent_dim,
                             reconstruction_loss=config.reconstruction_loss,
                             mask_penalty=config.mask_penalty)


def create_train_state(networks: AutoencoderNetworks, config: ml_collections.ConfigDict,
                       rng: jax.Array) -> AutoencoderTrainState:
  """Freshly initialised state (the paper's initialisation) for a raw PRNG key `rng`."""
  init_key, rng = jax.random.split(rng)
  variables = networks.model.init(init_key, jnp.zeros((1,) + video_shape(config), jnp.float32),
                                  train=False)
  return AutoencoderTrainState(step=jnp.zeros((), jnp.int32), params=variables['params'],
                               batch_stats=variables['batch_stats'],
                               opt_state=networks.optimizer.init(variables['params']), rng=rng)


def init_train_state(networks: AutoencoderNetworks, config: ml_collections.ConfigDict,
                     rng: jax.Array,
                     sharding: jax.sharding.Sharding | None = None) -> AutoencoderTrainState:
  """`create_train_state` compiled (faster to start on a CPU), placed with `sharding`."""
  return jax.jit(functools.partial(create_train_state, networks, config),
                 out_shardings=sharding)(rng)


def build_for_restore(config: ml_collections.ConfigDict) -> tuple[AutoencoderNetworks, Any]:
  """(networks, abstract state on one device): the `build` of checkpoint.restore_for_inference."""
  networks = build_autoencoder(config)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  shapes = jax.eval_shape(functools.partial(create_train_state, networks, config),
                          jax.random.PRNGKey(0))
  return networks, jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), shapes)


def _variables(state: AutoencoderTrainState) -> dict:
  return {'params': state.params, 'batch_stats': state.batch_stats}


def train_step(networks: AutoencoderNetworks, state: AutoencoderTrainState,
               batch: dict[str, jax.Array]) -> tuple[AutoencoderTrainState, dict[str, jax.Array]]:
  """One Adam update of encoder and decoder together on reconstruction (+ the mask prior).

  `batch['video']` is [B, T, S, S, C], uint8 or float in [-1, 1]. BatchNorm uses the batch's
  statistics (over the global batch when jitted on a sharded batch) and updates its averages.
  """
  target = normalize_video(batch['video'])

  def objective(params):
    (code, output), updates = networks.model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, target, train=True,
        mutable=['batch_stats'])
    reconstruction = losses.reconstruction_loss(output.video, target,
                                                networks.reconstruction_loss)
    penalty = (jnp.zeros(()) if output.mask is None
               else losses.mask_penalty(output.mask, networks.mask_penalty))
    return reconstruction + penalty, (updates['batch_stats'], reconstruction, penalty, code,
                                      output.mask)

  (loss, (batch_stats, reconstruction, penalty, code, mask)), grads = jax.value_and_grad(
      objective, has_aux=True)(state.params)
  updates, opt_state = networks.optimizer.update(grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)
  metrics = {'loss': loss, 'reconstruction_loss': reconstruction,
             # The spread of the codes, which the mixture will model.
             'code_rms': jnp.sqrt(jnp.mean(jnp.square(code)))}
  if mask is not None:
    metrics.update(mask_penalty=penalty, mask_mean=mask.mean())
  return new_state, metrics


def make_train_step(networks: AutoencoderNetworks) -> Callable:
  """`train_step` with its networks bound: a pure (state, batch) -> (state, metrics)."""
  return functools.partial(train_step, networks)


def encode(networks: AutoencoderNetworks, state: AutoencoderTrainState,
           videos: jax.Array) -> jax.Array:
  """Inference mode (BatchNorm running averages): videos [N, T, S, S, C], uint8 or float in
  [-1, 1] -> codes [N, latent_dim]."""
  return networks.model.apply(_variables(state), normalize_video(videos), train=False,
                              method=Autoencoder.encode)


def decode(networks: AutoencoderNetworks, state: AutoencoderTrainState,
           codes: jax.Array) -> GeneratorOutput:
  """Inference mode: codes [N, latent_dim] -> GeneratorOutput (video [N, T, S, S, C], ...)."""
  return networks.model.apply(_variables(state), codes, train=False, method=Autoencoder.decode)


# --- The training loop.


class _NoStop(contextlib.AbstractContextManager):
  """Stands in for experiments.training.StopRequest when nobody can ask to stop."""
  requested = False

  def __exit__(self, *exc_info):
    return False


def _interval_means(metrics: list[dict], interval_start: float,
                    batch_size: int) -> dict[str, float]:
  """Means over a logging interval's steps, and its speed (read after the steps finished)."""
  means = {name: float(np.mean(values)) for name, values in
           jax.device_get(jax.tree.map(lambda *m: jnp.stack(m), *metrics)).items()}
  means['steps_per_second'] = len(metrics) / (time.perf_counter() - interval_start)
  means['clips_per_second'] = means['steps_per_second'] * batch_size
  return means


def train(config: ml_collections.ConfigDict, workdir: str,
          batches_from: Callable[[int, int], Iterator[dict]], *, stop: Any = None,
          writer: Any = None, progress: bool = True) -> AutoencoderTrainState:
  """Trains until `config.num_steps`, resuming from `workdir/checkpoints`; returns the state.

  `batches_from(start_step, batch_size)` gives this host's batches ({'video': [B, T, S, S, C]})
  from `start_step` on (an iterator; closed at the end if it has `close`). `stop` is a context
  manager with a `requested` attribute (experiments.training.StopRequest: Ctrl-C stops after the
  current step, with a checkpoint). `writer` takes `scalar(name, value, step)` and `hparams`
  (flax.metrics.tensorboard.SummaryWriter). Checkpoints every `config.checkpoint_every` steps and
  wherever the run stops.
  """
  networks = build_autoencoder(config)
  mesh = parallel.create_mesh()
  local_batch_size = parallel.process_batch_size(config.batch_size, mesh)
  is_main_process = jax.process_index() == 0
  manager = checkpoint.create_manager(os.path.join(workdir, 'checkpoints'), config)
  batches, writer = None, writer if is_main_process else None
  try:
    state = init_train_state(networks, config, jax.random.PRNGKey(config.seed),
                             parallel.replicated(mesh))
    try:
      state = checkpoint.restore_latest(manager, state, config)
    except checkpoint.CheckpointMismatchError as error:
      raise _shorter(error) from None
    step = start_step = int(state.step)
    if start_step >= config.num_steps:
      logging.info('The autoencoder in %s is trained (step %d of %d).', workdir, start_step,
                   config.num_steps)
      return state
    logging.info('Autoencoder (%s decoder), %d devices, global batch %d, steps %d -> %d, '
                 'workdir %s.', config.model.generator, mesh.devices.size, config.batch_size,
                 start_step, config.num_steps, workdir)
    batches = batches_from(start_step, local_batch_size)
    step_fn = parallel.jit_step(make_train_step(networks), mesh)
    if writer and start_step == 0:
      writer.hparams(config.to_dict())

    pending_metrics, interval_start = [], time.perf_counter()
    with (stop or _NoStop()) as stop_request, tqdm(
        total=config.num_steps, initial=start_step, unit='step', dynamic_ncols=True,
        disable=not (progress and is_main_process)) as bar:
      while step < config.num_steps and not stop_request.requested:
        state, metrics = step_fn(state, parallel.shard_batch(next(batches), mesh))
        step += 1
        pending_metrics.append(metrics)  # device arrays: no wait for the step to finish
        bar.update()
        if step % config.log_every == 0 or step == config.num_steps:
          means = _interval_means(pending_metrics, interval_start, config.batch_size)
          pending_metrics, interval_start = [], time.perf_counter()
          bar.set_postfix(loss=f'{means["loss"]:.4f}', refresh=False)
          logging.info('step %d/%d: %s', step, config.num_steps,
                       ', '.join(f'{k}={v:.4g}' for k, v in sorted(means.items())))
          if writer:
            for name, value in means.items():
              writer.scalar(f'train/{name}', value, step)
        checkpoint.save(manager, step, state, config)
    if manager.latest_step() != step:  # wherever we stopped (the end, or Ctrl-C)
      checkpoint.save(manager, step, state, config, force=True)
    logging.info('%s at step %d; checkpoints in %s.',
                 'Stopped' if step < config.num_steps else 'Done', step, manager.directory)
    return state
  finally:  # on errors too: finish the checkpoint being written, stop the input threads
    manager.wait_until_finished()
    manager.close()
    if batches is not None and hasattr(batches, 'close'):
      batches.close()
    if writer:
      writer.flush()


def _shorter(error: checkpoint.CheckpointMismatchError) -> checkpoint.CheckpointMismatchError:
  """The error of a checkpoint whose arrays are not an autoencoder's, without orbax's listing of
  both trees (tens of kilobytes); other mismatches (model sizes) unchanged."""
  message = str(error)
  if 'does not fit the model' not in message:
    return error
  return checkpoint.CheckpointMismatchError(
      message.split(': ', 1)[0] + ": it holds another kind of state than an autoencoder's (a "
      "GAN's? sample those with experiments.generate); use another --workdir for the baseline.")


def load_model(workdir: str,
               step: int | None = None) -> tuple[ml_collections.ConfigDict, AutoencoderNetworks,
                                                 AutoencoderTrainState]:
  """(config, networks, state) of a trained autoencoder; FileNotFoundError without a checkpoint
  (saying how to train one), CheckpointMismatchError for a work directory of another model."""
  try:
    return checkpoint.restore_for_inference(workdir, step, build=build_for_restore)
  except FileNotFoundError as error:
    raise FileNotFoundError(f'{error} {_TRAIN_FIRST}') from None
  except checkpoint.CheckpointMismatchError as error:
    raise _shorter(error) from None


def encode_clips(networks: AutoencoderNetworks, state: AutoencoderTrainState,
                 batches: Iterator[dict], count: int) -> np.ndarray:
  """The codes [count, latent_dim] (float32) of the first `count` clips of `batches`."""
  if count < 1:
    raise ValueError(f'Cannot fit a mixture on {count} codes: encode at least 1 clip.')
  encode_fn = jax.jit(functools.partial(encode, networks))
  codes, done = [], 0
  while done < count:
    try:
      videos = next(batches)['video']
    except StopIteration:
      raise ValueError(f'The data ran out after {done} clips; {count} were asked for.') from None
    codes.append(np.asarray(encode_fn(state, videos[:count - done])))
    done += len(codes[-1])
  return np.concatenate(codes).astype(np.float32)


# --- The Gaussian mixture.


def fit_gmm(codes: np.ndarray, components: int = 256, seed: int = 0,
            covariance: str = 'diag') -> mixture.GaussianMixture:
  """A Gaussian mixture fitted (EM, k-means start, seeded) on codes [N, D].

  `components` is capped at N (k-means cannot start more clusters than points; the log says so).
  'diag' by default: the paper's 256 components with full covariances in 100-d hold 256 * 5050
  ~ 1.3M covariance numbers, while a few thousand clips give ~16 codes per component: a full
  100 x 100 covariance from 16 points is singular, propped up only by the regulariser, and its
  draws fall off the data. Diagonal ones (200 numbers each) are estimable from that many; 'full'
  is for when N is much larger than components * D.
  """
  codes = np.asarray(codes, np.float64)
  if codes.ndim != 2 or not len(codes):
    raise ValueError(f'fit_gmm takes codes [N, D] with N >= 1; got shape {list(codes.shape)}.')
  if not np.isfinite(codes).all():
    raise ValueError('fit_gmm: the codes hold NaN or infinite values (did training diverge?).')
  if covariance not in COVARIANCE_TYPES:
    raise ValueError(f'covariance={covariance!r}: must be one of {", ".join(COVARIANCE_TYPES)}.')
  if components < 1:
    raise ValueError(f'components={components}: must be at least 1.')
  if components > len(codes):
    logging.info('Fitting %d mixture components instead of %d: there are only %d codes.',
                 len(codes), components, len(codes))
    components = len(codes)
  gmm = mixture.GaussianMixture(n_components=components, covariance_type=covariance,
                                random_state=seed, max_iter=200)
  start = time.perf_counter()
  gmm.fit(codes)
  logging.info('Fitted %d %s Gaussians on %d codes of %d dimensions in %.1f s (%s after %d '
               'iterations, mean log-likelihood %.4g).', components, covariance, len(codes),
               codes.shape[1], time.perf_counter() - start,
               'converged' if gmm.converged_ else 'NOT converged', gmm.n_iter_, gmm.lower_bound_)
  return gmm


def sample_codes(gmm: mixture.GaussianMixture, n: int, seed: int) -> np.ndarray:
  """`n` draws [n, D] (float32) from the mixture, in random component order; the same seed
  gives the same codes. (sklearn's own `sample` takes its seed from the fitted object and
  returns draws sorted by component, which would make every sample grid striped.)"""
  rng = np.random.default_rng(seed)
  weights = np.asarray(gmm.weights_, np.float64)
  chosen = rng.choice(len(weights), size=n, p=weights / weights.sum())
  means = np.asarray(gmm.means_, np.float64)
  noise = rng.standard_normal((n, means.shape[1]))
  covariances = np.asarray(gmm.covariances_, np.float64)
  if gmm.covariance_type == 'diag':
    offsets = noise * np.sqrt(covariances[chosen])
  elif gmm.covariance_type == 'full':
    offsets = np.einsum('nij,nj->ni', np.linalg.cholesky(covariances)[chosen], noise)
  else:
    raise ValueError(f'sample_codes: covariance type {gmm.covariance_type!r} is not one of '
                     f'{", ".join(COVARIANCE_TYPES)}.')
  return (means[chosen] + offsets).astype(np.float32)


def save_gmm(path: str, gmm: mixture.GaussianMixture, **metadata: int) -> None:
  """The mixture's arrays (and integer `metadata`, e.g. the checkpoint step of the encoder) as
  an .npz at `path`, written atomically: plain arrays, no pickled sklearn object."""
  files.write_npz(path, dict(
      {f'meta_{key}': np.asarray(value) for key, value in metadata.items()},
      covariance_type=np.asarray(gmm.covariance_type), weights=gmm.weights_, means=gmm.means_,
      covariances=gmm.covariances_, precisions_cholesky=gmm.precisions_cholesky_))


def load_gmm(path: str) -> tuple[mixture.GaussianMixture, dict[str, int]]:
  """(mixture, metadata) saved by `save_gmm`; FileNotFoundError or ValueError naming the file."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'No Gaussian mixture at {path}.')
  try:
    with np.load(path, allow_pickle=False) as arrays:
      values = {key: arrays[key] for key in arrays.files}
    covariance_type = str(values['covariance_type'])
    if covariance_type not in COVARIANCE_TYPES:
      raise ValueError(f'unknown covariance type {covariance_type!r}')
    gmm = mixture.GaussianMixture(n_components=len(values['weights']),
                                  covariance_type=covariance_type)
    gmm.weights_, gmm.means_ = values['weights'], values['means']
    gmm.covariances_ = values['covariances']
    gmm.precisions_cholesky_ = values['precisions_cholesky']
    cholesky = gmm.precisions_cholesky_
    gmm.precisions_ = (np.square(cholesky) if covariance_type == 'diag'
                       else cholesky @ np.swapaxes(cholesky, -1, -2))
    gmm.converged_, gmm.n_iter_, gmm.lower_bound_ = True, 0, np.nan
  except (KeyError, ValueError, OSError, EOFError) as error:
    raise ValueError(f'{path} is not a Gaussian mixture saved by save_gmm: {error}') from None
  metadata = {key[len('meta_'):]: int(value) for key, value in values.items()
              if key.startswith('meta_')}
  return gmm, metadata


# --- Samples.


def decode_streams(networks: AutoencoderNetworks, state: AutoencoderTrainState,
                   codes: np.ndarray, batch_size: int = 16) -> dict[str, np.ndarray]:
  """Codes [N, D] -> the decoder's raw outputs as float32 numpy arrays (video, and for two
  streams foreground, background, mask), `batch_size` at a time."""
  decode_fn = jax.jit(functools.partial(decode, networks))
  parts = [jax.device_get(decode_fn(state, jnp.asarray(codes[i:i + batch_size])))
           for i in range(0, len(codes), batch_size)]
  return {name: np.concatenate([getattr(p, name) for p in parts]) for name in parts[0]._fields
          if getattr(parts[0], name) is not None}


def write_samples(workdir: str, output_dir: str | None = None, num_samples: int = 16,
                  seed: int = 0, streams: bool = False, fps: float = 25.0, upscale: int = 0,
                  batch_size: int = 16) -> list[str]:
  """Decoded draws of the mixture in `workdir/gmm.npz`, written as experiments/generate.py writes
  a GAN's: sample_NNN.mp4/.gif (and _streams), grid.mp4/.gif, and samples.npz with the codes and
  the raw float outputs. The same seed gives the same videos. Returns the paths."""
  if num_samples < 1 or batch_size < 1 or fps <= 0:
    raise ValueError('num_samples and batch_size must be at least 1, fps above 0.')
  config, networks, state = load_model(workdir)  # first: without a model, a mixture is moot
  gmm_path = os.path.join(workdir, GMM_FILE)
  if not os.path.exists(gmm_path):
    raise FileNotFoundError(f'No Gaussian mixture at {gmm_path}: fit one first with python -m '
                            f'experiments.baseline --mode=fit --workdir={workdir}.')
  gmm, metadata = load_gmm(gmm_path)
  if gmm.means_.shape[1] != networks.latent_dim:
    raise ValueError(f'{gmm_path} models {gmm.means_.shape[1]}-d codes; the autoencoder in '
                     f'{workdir} has {networks.latent_dim}-d ones: refit with --mode=fit.')
  if metadata.get('step', int(state.step)) != int(state.step):
    logging.warning('%s was fitted on the codes of step %d; the checkpoint is at step %d '
                    '(--mode=fit refits).', gmm_path, metadata['step'], int(state.step))
  output_dir = output_dir or os.path.join(workdir, 'generated')
  scale = upscale or sampling.default_scale(config.model.size)
  codes = sample_codes(gmm, num_samples, seed)
  raw = decode_streams(networks, state, codes, batch_size)
  videos = sampling.as_uint8_streams(raw)
  stems = [os.path.join(output_dir, f'sample_{i:03d}') for i in range(num_samples)]
  paths = sampling.write_each(videos, stems, fps, scale, streams)
  paths += media.write_mp4_and_gif(os.path.join(output_dir, 'grid'),
                                      media.video_grid(videos['video'], scale=scale), fps)
  paths.append(os.path.join(output_dir, 'samples.npz'))
  files.write_npz(paths[-1], dict(codes=codes, **raw))
  logging.info('Step %d of %s: wrote %d decoded mixture samples to %s.', int(state.step),
               workdir, num_samples, output_dir)
  return paths

