"""Procedural scenes: the embedded default data, so every entry point runs with no download.

Each scene name has its own look, a static background plus moving foreground, as the paper's
stabilized footage has: a beach (sky, sea with rolling waves, sand, people walking), golf (sky,
trees, striped grass, golfers walking, a ball in flight), a train station (wall, platform, tracks,
a passing train) and babies (a room with a window and a rug, a crawling baby). Colours, sizes,
positions and speeds are drawn per clip; a clip is a pure function of (scene, seed, index), so a
run can be resumed at any clip and two hosts never render the same one.

Everything is rendered directly at the requested size from coordinates in [0, 1]. Each renderer
also returns, per frame, where its moving parts are (`foreground_mask`): everywhere else a pixel
shows the static background, the same in every frame.
"""

import zlib

import cv2
import numpy as np

SCENES = ('beach', 'golf', 'train_station', 'babies')


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
  """Pixel-centre coordinates yy, xx in [0, 1], each [size, size]."""
  axis = (np.arange(size, dtype=np.float32) + 0.5) / size
  return np.meshgrid(axis, axis, indexing='ij')


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
  return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _box(yy, xx, top, left, bottom, right) -> np.ndarray:
  return (yy >= top) & (yy < bottom) & (xx >= left) & (xx < right)


def _jitter(rng: np.random.Generator, color, amount: float = 0.08) -> np.ndarray:
  return np.clip(np.asarray(color, np.float32) + rng.uniform(-amount, amount, 3), 0.0, 1.0)


def _texture(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
  """Static multi-scale brightness noise [size, size, 1] with standard deviation `strength`.

  Drawn on fixed coarse grids and scaled up, so a surface looks the same at every render size and
  has corners and blobs at several scales, as real ground and walls do (what stabilization tracks).
  """
  noise = np.zeros((size, size), np.float32)
  for cells in (4, 8, 16, 32, 64):
    grid = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    noise += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
  return (noise * (strength / max(float(noise.std()), 1e-6)))[..., None]


def _person(frame, yy, xx, cy, cx, height, shirt, trousers, skin=(0.85, 0.65, 0.5)) -> np.ndarray:
  """Paints a standing figure whose feet are at (cy, cx): head, shirt, trousers; returns the
  pixels it covers, bool [size, size]."""
  w = height * 0.18
  head = _ellipse(yy, xx, cy - height * 0.88, cx, height * 0.12, w * 0.75)
  body = _box(yy, xx, cy - height * 0.75, cx - w, cy - height * 0.38, cx + w)
  legs = _box(yy, xx, cy - height * 0.38, cx - w * 0.8, cy, cx + w * 0.8)
  frame[head] = skin
  frame[body] = shirt
  frame[legs] = trousers
  return head | body | legs


def _walkers(rng, count, y_range, height_range):
  """Start positions and speeds (in frame widths per frame) of walking figures."""
  return [dict(y=rng.uniform(*y_range), x=rng.uniform(0.0, 1.0),
               vx=rng.choice([-1, 1]) * rng.uniform(0.008, 0.025),
               height=rng.uniform(*height_range),
               shirt=rng.uniform(0.0, 1.0, 3), trousers=rng.uniform(0.0, 0.5, 3))
          for _ in range(count)]


def _wrap(x: float) -> float:
  """Figures leaving one side come back on the other."""
  return (x + 0.2) % 1.4 - 0.2


def _beach(rng, frames, size):
  yy, xx = _grid(size)
  horizon, shore = rng.uniform(0.28, 0.4), rng.uniform(0.55, 0.68)
  sky = _jitter(rng, (0.55, 0.75, 0.95))[None, None] * (1.0 - 0.3 * yy[..., None])
  sea = _jitter(rng, (0.1, 0.35, 0.6))
  sand = _jitter(rng, (0.85, 0.75, 0.55))
  sand_texture = _texture(rng, size, 0.08)
  sky_texture = _texture(rng, size, 0.06)  # clouds
  wave_length, wave_speed = rng.uniform(0.05, 0.09), rng.uniform(0.1, 0.25)
  walkers = _walkers(rng, rng.integers(1, 4), (shore + 0.15, 0.97), (0.18, 0.3))
  video, moving = [], []
  for t in range(frames):
    frame = np.where((yy < horizon)[..., None], sky + sky_texture, sand + sand_texture)
    waves = 0.12 * np.sin(2 * np.pi * ((yy - horizon) / wave_length - wave_speed * t))
    is_sea = (yy >= horizon) & (yy < shore)
    frame = np.where(is_sea[..., None], sea + waves[..., None] * (yy[..., None] - horizon + 0.3),
                     frame)
    foam = is_sea & (yy > shore - 0.03 - 0.015 * np.sin(2 * np.pi * (xx * 3 + 0.1 * t)))
    frame[foam] = (0.95, 0.95, 0.95)
    mask = is_sea.copy()  # the waves and the foam roll: the sea is never still
    for w in walkers:
      mask |= _person(frame, yy, xx, w['y'], _wrap(w['x'] + w['vx'] * t), w['height'],
                      w['shirt'], w['trousers'])
    video.append(frame)
    moving.append(mask)
  return video, moving


def _golf(rng, frames, size):
  yy, xx = _grid(size)
  tree_line = rng.uniform(0.2, 0.32)
  sky = _jitter(rng, (0.6, 0.78, 0.95))
  grass = _jitter(rng, (0.25, 0.6, 0.2))
  stripe_width, slant = rng.uniform(0.08, 0.15), rng.uniform(-0.5, 0.5)
  stripes = 0.06 * np.sign(np.sin(np.pi * (xx + slant * yy) / stripe_width))[..., None]
  background = np.where((yy < tree_line)[..., None], sky, grass + stripes)
  for _ in range(rng.integers(3, 7)):  # trees along the horizon
    cx, r = rng.uniform(0, 1), rng.uniform(0.05, 0.1)
    background[_ellipse(yy, xx, tree_line, cx, r, r)] = _jitter(rng, (0.1, 0.3, 0.1))
  background = background + _texture(rng, size, 0.05)
  golfers = _walkers(rng, rng.integers(1, 3), (0.6, 0.95), (0.25, 0.4))
  ball_start = np.array([rng.uniform(0.6, 0.9), rng.uniform(0.1, 0.5)])
  ball_velocity = np.array([-rng.uniform(0.03, 0.06), rng.uniform(0.01, 0.03)])
  video, moving = [], []
  for t in range(frames):
    frame = background.copy()
    mask = np.zeros((size, size), bool)
    for g in golfers:
      mask |= _person(frame, yy, xx, g['y'], _wrap(g['x'] + 0.5 * g['vx'] * t), g['height'],
                      (0.95, 0.95, 0.95), g['trousers'])
    by, bx = ball_start + ball_velocity * t + np.array([0.0025 * t * t, 0.0])
    ball = _ellipse(yy, xx, by, bx, 0.02, 0.02)
    frame[ball] = (1.0, 1.0, 1.0)
    video.append(frame)
    moving.append(mask | ball)
  return video, moving


def _train_station(rng, frames, size):
  yy, xx = _grid(size)
  platform_top, track_top = rng.uniform(0.4, 0.5), rng.uniform(0.62, 0.7)
  wall = _jitter(rng, (0.6, 0.6, 0.65))
  background = np.where((yy < platform_top)[..., None], wall, _jitter(rng, (0.75, 0.75, 0.72)))
  background[yy >= track_top] = _jitter(rng, (0.35, 0.3, 0.28), 0.04)  # ballast
  sleepers = (np.sin(2 * np.pi * xx / 0.06) > 0.3) & (yy >= track_top + 0.05)
  background[sleepers] = (0.3, 0.2, 0.12)
  for rail in (track_top + 0.1, track_top + 0.22):
    background[np.abs(yy - rail) < 0.012] = (0.8, 0.8, 0.82)
  background = background + _texture(rng, size, 0.09)
  train_color = rng.uniform(0.2, 0.9, 3)
  length = rng.uniform(1.2, 2.5)
  speed = rng.choice([-1, 1]) * rng.uniform(0.04, 0.09)
  front = rng.uniform(-0.5, 1.5)
  train_top, train_bottom = track_top - rng.uniform(0.3, 0.4), track_top + 0.24
  video, moving = [], []
  for t in range(frames):
    frame = background.copy()
    left = front + speed * t
    body = _box(yy, xx, train_top, left, train_bottom, left + length)
    frame[body] = train_color
    windows = body & (yy > train_top + 0.05) & (yy < train_top + 0.15) & (
        np.sin(2 * np.pi * (xx - left) / 0.12) > 0.0)
    frame[windows] = (0.15, 0.2, 0.3)
    video.append(frame)
    moving.append(body)  # the windows are part of the body
  return video, moving


def _babies(rng, frames, size):
  yy, xx = _grid(size)
  floor_top = rng.uniform(0.55, 0.7)
  background = np.where((yy < floor_top)[..., None], _jitter(rng, (0.9, 0.85, 0.75)),
                        _jitter(rng, (0.6, 0.42, 0.25)) + 0.05 * np.sin(
                            2 * np.pi * xx[..., None] / 0.1))
  wx = rng.uniform(0.1, 0.6)
  background[_box(yy, xx, 0.1, wx, floor_top - 0.2, wx + 0.3)] = _jitter(rng, (0.7, 0.85, 1.0))
  background[_ellipse(yy, xx, floor_top + 0.22, rng.uniform(0.3, 0.7), 0.12, 0.35)] = (
      rng.uniform(0.3, 1.0, 3))
  background = background + _texture(rng, size, 0.05)
  skin = _jitter(rng, (0.95, 0.75, 0.65), 0.05)
  clothes = rng.uniform(0.3, 1.0, 3)
  y0, x0 = rng.uniform(floor_top + 0.1, 0.85), rng.uniform(0.2, 0.8)
  vy, vx = rng.uniform(-0.006, 0.006), rng.choice([-1, 1]) * rng.uniform(0.004, 0.01)
  phase = rng.uniform(0, 2 * np.pi)
  video, moving = [], []
  for t in range(frames):
    frame = background.copy()
    cy = y0 + vy * t + 0.015 * np.sin(0.5 * t + phase)
    cx = x0 + vx * t
    body = _ellipse(yy, xx, cy, cx, 0.08, 0.14)
    head = _ellipse(yy, xx, cy - 0.07, cx + np.sign(vx) * 0.13, 0.065, 0.065)
    frame[body] = clothes
    frame[head] = skin
    video.append(frame)
    moving.append(body | head)
  return video, moving


_RENDERERS = {'beach': _beach, 'golf': _golf, 'train_station': _train_station, 'babies': _babies}


def check_scene(scene: str) -> None:
  """ValueError naming the built-in scenes when `scene` is not one of them."""
  if scene not in _RENDERERS:
    raise ValueError(f'No built-in synthetic scene {scene!r}; the built-in scenes are '
                     f'{", ".join(SCENES)}.')


def _render(scene: str, index: int, frames: int, size: int,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(clip uint8 [frames, size, size, 3], where its moving parts are bool [frames, size, size])."""
  check_scene(scene)
  scene_id = zlib.crc32(scene.encode())  # stable across processes, unlike hash()
  rng = np.random.default_rng([seed, scene_id, int(index)])
  video, moving = _RENDERERS[scene](rng, frames, size)
  return np.round(np.clip(np.stack(video), 0.0, 1.0) * 255).astype(np.uint8), np.stack(moving)


def render_clip(scene: str, index: int, frames: int = 32, size: int = 64,
                seed: int = 0) -> np.ndarray:
  """Clip number `index` of a scene: uint8 [frames, size, size, 3], the same for the same args."""
  return _render(scene, index, frames, size, seed)[0]


def foreground_mask(scene: str, index: int, frames: int = 32, size: int = 64,
                    seed: int = 0) -> np.ndarray:
  """Where the moving parts of `render_clip(scene, index, frames, size, seed)` are, bool
  [frames, size, size]: the figures, the golf ball, the train, the baby, and the beach's sea
  (its waves roll). Wherever it is False the clip shows the static background: a pixel has the
  same value in every frame in which it is False."""
  return _render(scene, index, frames, size, seed)[1]


def shake_matrices(frames: int, size: int, seed: int = 0, max_shift: float = 0.04,
                   max_rotation: float = 2.0, max_scale: float = 0.03,
                   zoom: float = 1.2) -> np.ndarray:
  """Random hand-held camera motion: per-frame [frames, 3, 3] maps original -> shaken pixels.

  Each frame is zoomed by `zoom` about the centre (so the shaken view stays inside the rendered
  one), then rotated by up to `max_rotation` degrees, scaled by up to `max_scale` and shifted by up
  to `max_shift` of the frame size, drawn independently per frame.
  """
  rng = np.random.default_rng([seed, 0x5ABE])
  centre = (size - 1) / 2.0
  matrices = np.empty((frames, 3, 3))
  for t in range(frames):
    angle = rng.uniform(-max_rotation, max_rotation)
    scale = zoom * (1.0 + rng.uniform(-max_scale, max_scale))
    affine = cv2.getRotationMatrix2D((centre, centre), angle, scale)
    affine[:, 2] += rng.uniform(-max_shift, max_shift, 2) * size
    matrices[t] = np.vstack([affine, [0.0, 0.0, 1.0]])
  return matrices


def add_camera_shake(video: np.ndarray, seed: int = 0,
                     **shake) -> tuple[np.ndarray, np.ndarray]:
  """A clip [T, S, S, 3] as a shaking hand-held camera would film it: (shaken video, matrices).

  The matrices [T, 3, 3] map original pixel coordinates to shaken ones (`shake_matrices`); the
  stabilization tests measure the residual motion against them.
  """
  frames, size = video.shape[0], video.shape[1]
  matrices = shake_matrices(frames, size, seed, **shake)
  shaken = np.stack([cv2.warpPerspective(frame, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT)
                     for frame, matrix in zip(video, matrices)])
  return shaken, matrices


def jittered_scene(frames: int = 32, size: int = 128, seed: int = 0, oversample: int = 2,
                   object_speed: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The stabilization test scene: a textured static background and a red square moving right
  by `object_speed` px per frame, filmed by a shaking camera at `oversample` times the size and
  scaled down, as a real camera's sensor would.

  Returns (video uint8 [frames, size, size, 3], shake [frames, 3, 3] mapping scene -> video pixel
  coordinates at `size`, the square's top-left corner [frames, 2] (x, y) in scene coordinates).
  """
  rng = np.random.default_rng([seed, 0x7E57])
  big = size * oversample
  background = 0.5 + _texture(rng, big, 0.15) * np.array([0.9, 0.8, 0.7], np.float32)
  side = max(2, size // 10) * oversample
  corners = np.array([[0.3 * size + object_speed * t, 0.5 * size] for t in range(frames)])
  video = []
  for x, y in corners * oversample:
    frame = background.copy()
    frame[int(y):int(y) + side, int(x):int(x) + side] = (1.0, 0.1, 0.1)
    video.append(frame)
  video = np.round(np.clip(np.stack(video), 0.0, 1.0) * 255).astype(np.uint8)
  shaken, matrices = add_camera_shake(video, seed=seed)
  small = np.stack([cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
                    for frame in shaken])
  # Big -> small pixel coordinates (pixel centres at integers): x_small = (x_big + 0.5) / k - 0.5.
  to_small = np.diag([1.0 / oversample, 1.0 / oversample, 1.0])
  to_small[:2, 2] = 0.5 / oversample - 0.5
  shake = np.array([to_small @ matrix @ np.linalg.inv(to_small) for matrix in matrices])
  return small, shake, corners
