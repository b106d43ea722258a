"""Experiment configs (ml_collections): `paper` is the paper, the others are the same code smaller.

Every size the models use comes from here, so the paper's network and the tiny CPU one share one
code path. Pick a config by name on the command line and override any field:

  python -m experiments.train --config=paper --scene=beach            # the paper, for accelerators
  python -m experiments.train --config=tiny --config.num_steps=300    # a 2-core CPU demo
"""

import ml_collections
from ml_collections.config_dict import placeholder

from vgan_jax import conv
from vgan_jax.models import GENERATORS, SPATIOTEMPORAL_STRIDE, TWO_STREAM_IMPLS

# How strided 3-D convolutions are computed (`vgan_jax/conv`); the parameters are the same
# whichever is used:
#   xla:        XLA's own convolution (cuDNN on GPU).
#   decomposed: 2-D convolutions over stacked time taps and sub-pixel phases.
#   matmul:     im2col / col2im around one matmul (best when one side has few channels).
#   auto:       xla off CPU; on CPU the fastest measured mix per layer (`conv/cpu.py`).
CONV_IMPLS = conv.IMPLS
GENERATOR_INPUTS = ('noise', 'image')
COMPUTE_DTYPES = ('float32', 'bfloat16')
RECONSTRUCTION_LOSSES = ('l1', 'l2')


def paper() -> ml_collections.ConfigDict:
  """The numbers of Vondrick et al. 2016 (see ../shared/DESIGN.md)."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.generator = 'two_stream'  # or 'one_stream'
  config.model.frames = 32  # clip length T
  config.model.size = 64  # frame height = width
  config.model.channels = 3
  config.model.latent_dim = 100
  config.model.width = 64  # channels of the last hidden layer
  # Initialisation of the authors' Torch code: conv N(0, 0.01), BatchNorm scale N(1, 0.02).
  config.model.conv_init_stddev = 0.01
  config.model.batchnorm_scale_stddev = 0.02
  config.model.conv_impl = 'auto'  # see CONV_IMPLS
  # How the two-stream generator's heads are computed: 'fused' (less memory) or 'plain' (Eq. 2 as
  # written); the same parameters and results (models/generator.py).
  config.model.two_stream_impl = 'fused'
  # Activations and convolutions in 'float32' or 'bfloat16' (mixed precision: parameters,
  # optimizer states, BatchNorm statistics and losses stay float32; bf16 needs no loss scaling).
  config.model.compute_dtype = 'float32'
  # What the generator starts from: 'noise' (the GAN, z ~ N(0, I)) or 'image' (future prediction,
  # Section 3.4: an image encoder maps the clip's first frame to the generator's input code).
  config.model.generator_input = 'noise'
  # The image encoder: `encoder_depth` stride-2 4x4 convolutions with encoder_width * 2**i
  # channels, then a linear map to the code. The paper says 5 layers; the authors' code used 4
  # with doubled widths (encoder_depth=4, encoder_width=128).
  config.model.encoder_depth = 5
  config.model.encoder_width = 64

  config.mask_penalty = 0.1  # lambda of the mask sparsity prior, mean |m(z)|
  # Future prediction's generator loss adds reconstruction_weight * distance(first generated
  # frame, input image), 'l1' or 'l2' (the authors' code: L1 with weight 10).
  config.reconstruction_weight = 10.0
  config.reconstruction_loss = 'l1'

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999

  config.batch_size = 64  # global, split over every device of every host
  config.num_steps = 100_000  # iterations of (one D update, one G update)

  config.data = ml_collections.ConfigDict()
  # A built-in scene (beach, golf, train_station, babies) or the name of a prepared data folder:
  # clips are read from DATA_DIR/SCENE/*.tfrecord, else rendered by data_pipeline/synthetic.py.
  config.data.scene = 'beach'
  config.data.data_dir = placeholder(str)  # None: the built-in scenes
  # experiments/evaluate.py only: a TensorFlow Datasets data_dir where `ucf101` is prepared, read
  # in place of a UCF101 folder in data_dir (data_pipeline/tfds_ucf101.py); nothing downloaded.
  config.data.tfds_data_dir = placeholder(str)
  config.data.shuffle_buffer = 1024
  config.data.synthetic_clips = 0  # 0: endless procedural clips; N: cycle over the first N

  # Action recognition (Section 3.3, experiments/evaluate.py): D's trunk with a K-way head,
  # fine-tuned (or a linear head on frozen features) with Adam on random 32-frame windows.
  config.classifier = ml_collections.ConfigDict()
  config.classifier.learning_rate = 1e-4
  config.classifier.batch_size = 32
  config.classifier.num_epochs = 30
  config.classifier.dropout = 0.5  # on the penultimate layer, as the paper
  config.classifier.test_windows = 5  # windows per test video whose predictions are averaged
  # What experiments/evaluate.py runs: the classifier's start ('gan': the discriminator of the GAN
  # checkpoint `gan_checkpoint`; 'random'), what trains ('finetune': every layer; 'linear': a head
  # on frozen features), on which UCF101 splits ('1', '1,2,3'), with which seeded fraction of
  # each class's labels, on stabilized videos or not; `sweep_fractions` for --sweep (Fig. 4b/c).
  config.classifier.init = 'gan'
  config.classifier.gan_checkpoint = placeholder(str)
  config.classifier.mode = 'finetune'
  config.classifier.splits = '1'
  config.classifier.label_fraction = 1.0
  config.classifier.stabilize = False
  config.classifier.sweep_fractions = '0.03125,0.0625,0.125,0.25,0.5,1'

  # The autoencoder + Gaussian mixture baseline (experiments/baseline.py): the mixture is fitted
  # on the codes of the first `gmm_clips` training clips ('diag' or 'full' covariances; the
  # paper: 256 components), seeded with config.seed.
  config.baseline = ml_collections.ConfigDict()
  config.baseline.gmm_clips = 4096
  config.baseline.gmm_components = 256
  config.baseline.gmm_covariance = 'diag'

  # The small-scale replication of Section 3.3 on synthetic actions
  # (experiments/replicate_actions.py): training videos per class (plus 8 test), label fractions
  # and classifier seeds (comma lists).
  config.replication = ml_collections.ConfigDict()
  config.replication.videos_per_class = 24
  config.replication.fractions = '0.125,0.25,1'
  config.replication.seeds = '0,1,2'

  config.log_every = 50  # steps between TensorBoard scalars
  config.sample_every = 1000  # steps between GIF sample grids
  config.num_samples = 16  # clips in a sample grid (a square number reads best)
  # FVD during training (GANs from noise): every `fvd_every` steps (0: never), `fvd_clips`
  # generated clips against as many training clips (cached), their first `fvd_frames` frames.
  # The field reports 2048 clips a side of 16 frames: ~1 hour of I3D on a 2-core CPU.
  config.fvd_every = 0
  config.fvd_clips = 256
  config.fvd_frames = 16
  config.sample_fps = 8  # playback speed of the GIF grids (the paper's videos play at 25)
  config.checkpoint_every = 1000
  config.keep_checkpoints = 3
  return config


def tiny() -> ml_collections.ConfigDict:
  """A 2-core CPU demo: 32x32 pixels, 16 frames, width 16; 1000 steps in about 9 minutes."""
  config = paper()
  config.model.frames = 16
  config.model.size = 32
  config.model.width = 16
  config.batch_size = 16
  config.num_steps = 1000
  config.log_every = 25
  config.sample_every = 100
  config.checkpoint_every = 100
  return config


def test() -> ml_collections.ConfigDict:
  """A net for unit tests: 32x32, 16 frames, width 4, batch 4.

  (At 16x16 D's last BatchNorm would see one position per clip and normalise away what tells real
  from fake; D then barely learns.)
  """
  config = paper()
  config.model.frames = 16
  config.model.size = 32
  config.model.width = 4
  config.batch_size = 4
  config.num_steps = 4
  config.log_every = 1
  config.sample_every = 2
  config.num_samples = 4
  config.checkpoint_every = 2
  config.keep_checkpoints = 2
  config.data.shuffle_buffer = 8
  return config


def actions() -> ml_collections.ConfigDict:
  """The small replication of Section 3.3 on synthetic actions (experiments/replicate_actions.py,
  ~25 minutes on 2 cores): the tiny GAN for 600 steps, classifiers for 40 epochs at lr 1e-3."""
  config = tiny()
  config.num_steps = 600
  config.classifier.num_epochs = 40
  config.classifier.learning_rate = 1e-3
  config.classifier.batch_size = 16
  config.classifier.test_windows = 3
  return config


def comparison() -> ml_collections.ConfigDict:
  """The budget of the generator comparison (experiments/compare_models.py): the tiny nets for
  1500 steps, FVD of 64 clips a side of 16 frames, a 64-component mixture on 1024 clips. Two-stream,
  one-stream and the autoencoder baseline x 3 seeds take about an hour a scene on 2 cores.

    python -m experiments.compare_models --scenes=golf        # about an hour
    python -m experiments.compare_models                      # the 4 built-in scenes, ~4 hours
  """
  config = tiny()
  config.num_steps = 1500
  config.sample_every = 500
  config.checkpoint_every = 500
  config.fvd_clips = 64
  config.baseline.gmm_clips = 1024
  config.baseline.gmm_components = 64
  return config


CONFIGS = {'paper': paper, 'tiny': tiny, 'test': test, 'actions': actions,
           'comparison': comparison}
CLASSIFIER_INITS = ('gan', 'random')
CLASSIFIER_MODES = ('finetune', 'linear')
COVARIANCE_TYPES = ('diag', 'full')


# Fields whose value must be one of a few names.
_CHOICES = (('model.generator', GENERATORS), ('model.two_stream_impl', TWO_STREAM_IMPLS),
            ('model.conv_impl', CONV_IMPLS), ('model.compute_dtype', COMPUTE_DTYPES),
            ('model.generator_input', GENERATOR_INPUTS),
            ('reconstruction_loss', RECONSTRUCTION_LOSSES), ('classifier.init', CLASSIFIER_INITS),
            ('classifier.mode', CLASSIFIER_MODES), ('baseline.gmm_covariance', COVARIANCE_TYPES))


def number_list(field: str, value: str, kind=float) -> list:
  """'1,2,3' -> [1, 2, 3] (`kind` each); ValueError naming the config field otherwise."""
  try:
    items = [kind(item) for item in str(value).split(',') if item.strip()]
  except ValueError:
    items = []
  if not items:
    raise ValueError(f'config.{field}={value!r}: expected a comma list of numbers, e.g. 1,2,3.')
  return items


def get_config(name: str = 'paper') -> ml_collections.ConfigDict:
  """Returns the named config; raises ValueError naming the known ones otherwise."""
  if name not in CONFIGS:
    raise ValueError(f'Unknown config {name!r}; known configs: {", ".join(sorted(CONFIGS))}.')
  return CONFIGS[name]()


def with_defaults(saved: dict) -> ml_collections.ConfigDict:
  """A config saved by an earlier version, completed with today's defaults for the fields it did
  not have yet (so checkpoints from before a field existed still load, meaning what they meant)."""
  config = paper()

  def merge(target: ml_collections.ConfigDict, values: dict) -> None:
    for key, value in values.items():
      if isinstance(value, dict) and isinstance(target.get(key), ml_collections.ConfigDict):
        merge(target[key], value)
      else:
        target[key] = value

  merge(config, saved)
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError, naming the field, when a config cannot build the network."""
  model = config.model
  for field in ('frames', 'size'):
    value = model[field]
    if value < SPATIOTEMPORAL_STRIDE or value % SPATIOTEMPORAL_STRIDE:
      raise ValueError(f'config.model.{field}={value}: must be a positive multiple of '
                       f'{SPATIOTEMPORAL_STRIDE} (four stride-2 layers follow the first).')
  for field, choices in _CHOICES:
    section, name = field.rpartition('.')[::2]
    value = (config[section] if section else config)[name]
    if value not in choices:
      raise ValueError(f'config.{field}={value!r}: must be one of {", ".join(choices)}.')
  if model.encoder_depth < 1 or model.size % 2 ** model.encoder_depth:
    raise ValueError(f'config.model.encoder_depth={model.encoder_depth}: must be at least 1 and '
                     f'2**depth must divide config.model.size={model.size}.')
  if config.reconstruction_weight < 0:
    raise ValueError(f'config.reconstruction_weight={config.reconstruction_weight}: must not be '
                     'negative.')
  for field in ('width', 'latent_dim', 'channels', 'encoder_width'):
    if model[field] < 1:
      raise ValueError(f'config.model.{field}={model[field]}: must be at least 1.')
  if config.batch_size < 1:
    raise ValueError(f'config.batch_size={config.batch_size}: must be at least 1.')
  if config.num_steps < 0:
    raise ValueError(f'config.num_steps={config.num_steps}: must not be negative.')
  for field in ('log_every', 'sample_every', 'checkpoint_every', 'keep_checkpoints',
                'num_samples'):
    if config[field] < 1:
      raise ValueError(f'config.{field}={config[field]}: must be at least 1.')
  if config.fvd_every < 0 or config.fvd_clips < 2 or not 9 <= config.fvd_frames <= model.frames:
    raise ValueError(f'config.fvd_every={config.fvd_every}, fvd_clips={config.fvd_clips}, '
                     f'fvd_frames={config.fvd_frames}: every must not be negative, clips at least '
                     f'2, frames from 9 (I3D) to config.model.frames={model.frames}.')
  if not config.data.scene:
    raise ValueError('config.data.scene is empty: name a built-in scene or a prepared folder.')
  classifier = config.classifier
  if not all(split in (1, 2, 3) for split in number_list('classifier.splits', classifier.splits,
                                                         int)):
    raise ValueError(f'config.classifier.splits={classifier.splits!r}: UCF101 has splits 1, 2 '
                     'and 3.')
  for field, value in (('classifier.label_fraction', [classifier.label_fraction]),
                       ('classifier.sweep_fractions',
                        number_list('classifier.sweep_fractions', classifier.sweep_fractions)),
                       ('replication.fractions',
                        number_list('replication.fractions', config.replication.fractions))):
    if not all(0 < fraction <= 1 for fraction in value):
      raise ValueError(f'config.{field}: fractions must be in (0, 1]; got {value}.')
  number_list('replication.seeds', config.replication.seeds, int)
  optimizer = config.optimizer  # Adam (Kingma and Ba 2015): 0 <= b1, b2 < 1 and a step size > 0
  for name, value, valid in (
      ('optimizer.learning_rate', optimizer.learning_rate, 0 < optimizer.learning_rate),
      ('optimizer.b1', optimizer.b1, 0 <= optimizer.b1 < 1),
      ('optimizer.b2', optimizer.b2, 0 <= optimizer.b2 < 1),
      ('classifier.learning_rate', classifier.learning_rate, 0 < classifier.learning_rate)):
    if not valid:  # b1 = 1 never updates its moment: the first step divides 0 by 0
      raise ValueError(f'config.{name}={value}: Adam needs a learning rate above 0 and b1, b2 in '
                       '[0, 1).')
  baseline = config.baseline
  if baseline.gmm_clips < 1 or baseline.gmm_components < 1:
    raise ValueError(f'config.baseline.gmm_clips={baseline.gmm_clips} and gmm_components='
                     f'{baseline.gmm_components}: must be at least 1.')

