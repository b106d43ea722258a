"""File and video helpers that both the library (`vgan_jax`) and the data side (`data_pipeline`)
use, so that neither imports the other: atomic writes (`files`) and video/image files and grids
(`media`). numpy, OpenCV and Pillow only: no JAX, Flax or TensorFlow.
"""
